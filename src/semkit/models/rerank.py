"""Rerankers: re-score search's few best candidates more carefully than one vector can.

Two kinds (see ``semkit.apps.search``'s ``rerank=``):

- ``CrossEncoder(folder)``: a cross-encoder from a local folder, run through ONNX like the
  embedders. It reads the query and a passage together and outputs how relevant the passage
  is; it is far slower than comparing vectors, so search uses it only on the few best
  candidates.
- ``SentenceWindows(model=None)``: no extra model; the collection's own embedder scores the
  candidates' sentences one by one against the query, blended with the search's own score
  (see the class for the formula and the figures).

Cross-encoders:

The folder is a Hugging Face sequence-classification model: ``config.json`` naming a
``*ForSequenceClassification`` architecture with one or two labels, the weights
(``model.safetensors`` or ``pytorch_model.bin``) and a fast-tokenizer ``tokenizer.json``.
sentence-transformers ``CrossEncoder.save(...)`` folders and Hugging Face downloads of
cross-encoders (``cross-encoder/ms-marco-MiniLM-L6-v2``, ``BAAI/bge-reranker-base``...) have
this layout. Nothing is downloaded: the folder must be on disk.

The graph is written once (``onnx_export.load_or_export_classifier``: built from the safetensors
without torch for BERT/RoBERTa/XLM-R/MPNet, else exported with torch) and cached by
the weights' content hash; afterwards only onnxruntime and ``tokenizers`` run.

Score: ``sigmoid(logit)`` for a one-label model (what sentence-transformers' ``CrossEncoder``
returns by default for those), the softmax probability of the last label for a two-label one
(``[not relevant, relevant]``). Either way it is in [0, 1], higher is more relevant.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput, ModelNotAvailable
from ..vectors import normalize
from .base import Embedder

log = logging.getLogger(__name__)

MAX_LENGTH = 512
"""Longest (query, passage) pair in tokens; longer pairs lose the end of the passage first."""
DEFAULT_BATCH_SIZE = 16

_LAYOUT = ("a Hugging Face sequence-classification model: config.json (architecture "
           "*ForSequenceClassification, 1 or 2 labels), model.safetensors or pytorch_model.bin, "
           "and tokenizer.json (e.g. a sentence-transformers CrossEncoder saved with .save(folder))")


class CrossEncoder:
    """A cross-encoder reranker read from ``folder``; ``score(query, passages)`` gives one
    relevance in [0, 1] per passage.

    ``max_length``: token limit of a pair (default: the model's, at most 512). ``threads``:
    onnxruntime intra-op threads (default 1: a server answers several queries at once).
    """

    kind = "cross-encoder"

    def __init__(self, folder: str | Path, *, max_length: int | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, threads: int = 1) -> None:
        self.folder = Path(folder).expanduser()
        config = _read_config(self.folder)
        self.num_labels = _num_labels(config, self.folder)
        self.max_length = _max_length(config, self.folder, max_length)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = batch_size
        self._tokenizer = _load_tokenizer(self.folder, config, self.max_length)
        from .onnx_export import content_digest, load_or_export_classifier

        digest = content_digest(self.folder)
        self.id = f"cross-encoder:{self.folder.resolve().name}#sha={digest[:12]}"
        self._session = _session(load_or_export_classifier(self.folder), threads)
        self._inputs = [i.name for i in self._session.get_inputs()]

    def __repr__(self) -> str:
        return f"CrossEncoder({str(self.folder)!r}, labels={self.num_labels}, max_length={self.max_length})"

    def logits(self, query: str, passages: Sequence[str | None]) -> np.ndarray:
        """The model's raw output for each (query, passage) pair: shape ``(n, num_labels)``."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("the reranker needs a non-empty text query")
        texts = ["" if p is None else str(p) for p in passages]
        out = np.empty((len(texts), self.num_labels), dtype=np.float32)
        # Longest first, so each batch pads to lengths close to its own.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            encodings = self._tokenizer.encode_batch([(query, texts[i]) for i in rows])
            feeds = {
                "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
            }
            out[rows] = self._session.run(None, {k: feeds[k] for k in self._inputs})[0]
        return out

    def score(self, query: str, passages: Sequence[str | None]) -> np.ndarray:
        """Relevance of each passage to ``query`` in [0, 1] (float64, one per passage)."""
        if len(passages) == 0:
            return np.zeros(0, dtype=np.float64)
        return probabilities(self.logits(query, passages))


def probabilities(logits: np.ndarray) -> np.ndarray:
    """One relevance in [0, 1] per row of logits: the sigmoid of a single logit, or the softmax
    probability of the last of two labels."""
    z = np.asarray(logits, dtype=np.float64)
    if z.shape[1] == 1:
        # exp of a negative number only: no overflow for large |logit|
        x = z[:, 0]
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    return p[:, -1] / p.sum(axis=1)


# --- embedding-only reranking ------------------------------------------------------------------

WINDOWS = "windows"
"""The name ``--rerank`` takes for ``SentenceWindows`` (anything else is a cross-encoder folder)."""


WINDOW_SENTENCES = 1
"""Sentences per window (``SentenceWindows``); chosen on SciFact's train queries."""
FUSED_WEIGHT = 0.7
"""Weight of the search's own (fused) score in ``SentenceWindows``' score; the best window's
cosine has the rest. Chosen on SciFact's train queries."""


class SentenceWindows:
    """An embedding-only reranker: no model beyond the collection's own.

    A long passage's vector averages everything it says, so a passage with one sentence that
    answers the query exactly can lose to one that is vaguely about the topic throughout.
    This reranker splits each candidate into windows of ``window`` consecutive sentences,
    embeds them with ``model`` (the collection's; through its persistent embedding cache when
    it has one, so a passage's windows are embedded once) and scores::

        fused_weight · fused + (1 − fused_weight) · max(0, best window cosine)

    where ``fused`` is the search's own score of the candidate (``search`` passes it; without it
    the score is the best window's cosine alone). Both parts are in [0, 1], so the score is too.

    SciFact, bundled MiniLM, nDCG@10 of the default search → reranked: train (where ``window``
    and ``fused_weight`` were chosen) 73.78 → 74.43, test 72.72 → 73.60; no change on the small
    sets of ``benchmarks/relevance_small.py`` (docs/apps.md#search-reranking).

    ``model=None`` (what ``semkit search --rerank windows`` and ``semkit serve --rerank windows``
    use) takes the model of the collection searched (``for_collection``). Cost: the first search
    that meets a passage embeds its sentences (about as many short texts as the passage has
    sentences; a paid API model bills them); later searches read them from the cache.
    """

    kind = WINDOWS
    uses_fused = True
    """``search`` passes the candidates' own scores as ``fused=`` (``semkit.apps.search``'s ``Reranker``)."""

    def __init__(self, model: Embedder | None = None, *, window: int = WINDOW_SENTENCES,
                 fused_weight: float = FUSED_WEIGHT) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidInput(f"window is a number of sentences >= 1, got {window!r}")
        if isinstance(fused_weight, bool) or not isinstance(fused_weight, (int, float)) \
                or not 0.0 <= fused_weight <= 1.0:
            raise InvalidInput(f"fused_weight is in [0, 1] (the search's own score's share), got {fused_weight!r}")
        self.model = model
        self.window = window
        self.fused_weight = float(fused_weight)

    @property
    def id(self) -> str:
        model = self.model.id if self.model is not None else "the collection's model"
        return f"sentence-windows({model}, window={self.window}, fused_weight={self.fused_weight})"

    def __repr__(self) -> str:
        return f"SentenceWindows({self.model.id if self.model is not None else None!r}, window={self.window}, " \
               f"fused_weight={self.fused_weight})"

    def for_collection(self, col: Any) -> SentenceWindows:
        """This reranker, with the collection's model when it has none of its own."""
        if self.model is not None:
            return self
        model = getattr(col, "model", None)
        if model is None:
            raise InvalidInput(
                f"collection {getattr(col, 'name', '?')!r} stores your own vectors and has no model, so the "
                "sentence-windows reranker has nothing to embed sentences with; rerank with a cross-encoder "
                "folder instead, or pass SentenceWindows(model)")
        return SentenceWindows(model, window=self.window, fused_weight=self.fused_weight)

    def score(self, query: str, passages: Sequence[str | None],
              fused: Sequence[float] | None = None) -> np.ndarray:
        """Relevance of each passage to ``query`` in [0, 1] (float64, one per passage)."""
        if self.model is None:
            raise InvalidInput("SentenceWindows() has no model: give it one (SentenceWindows(model)) or let "
                               "search bind the collection's (search(..., rerank=SentenceWindows()))")
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("the reranker needs a non-empty text query")
        if fused is not None and len(fused) != len(passages):
            raise InvalidInput(f"fused has {len(fused)} scores for {len(passages)} passages")
        if len(passages) == 0:
            return np.zeros(0, dtype=np.float64)
        windows = [sentence_windows(p, self.window) if p else [] for p in passages]
        flat = [w for ws in windows for w in ws]
        best = np.zeros(len(passages), dtype=np.float64)
        if flat:
            q = normalize(self.model.embed([query], "query"))[0]
            cosines = normalize(self.model.embed(flat, "document")) @ q
            start = 0
            for n, ws in enumerate(windows):
                if ws:
                    best[n] = max(0.0, float(cosines[start:start + len(ws)].max()))
                    start += len(ws)
        best = np.minimum(best, 1.0)
        if fused is None:
            return best
        prior = np.clip(np.asarray(fused, dtype=np.float64), 0.0, 1.0)
        return self.fused_weight * prior + (1.0 - self.fused_weight) * best


def sentence_windows(text: str, window: int) -> list[str]:
    """``text`` as overlapping runs of ``window`` consecutive sentences (stride 1); a text of
    ``window`` sentences or fewer is one window, itself."""
    # The chunker's own sentence boundaries, so windows break where chunks do.
    from ..ingest.chunking import _SENTENCE, _split_spans

    spans = _split_spans(text, 0, len(text), _SENTENCE)
    if len(spans) <= window:
        return [text] if text.strip() else []
    return [text[spans[i][0]:spans[i + window - 1][1]] for i in range(len(spans) - window + 1)]


def load_reranker(spec: str) -> CrossEncoder | SentenceWindows:
    """The reranker a CLI or server option names: ``windows`` (``SentenceWindows`` with the
    searched collection's model) or a cross-encoder folder (a folder called ``windows`` is
    ``./windows``)."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInput(f"--rerank takes '{WINDOWS}' or a cross-encoder folder, got {spec!r}")
    if spec.strip().lower() == WINDOWS:
        return SentenceWindows()
    return CrossEncoder(spec)


# --- reading the folder ---------------------------------------------------------------------


def _read_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise ModelNotAvailable(f"cross-encoder folder {folder} does not exist; it must be {_LAYOUT}. "
                                "Nothing is downloaded: download or save the model there first")
    missing = [name for name in ("config.json", "tokenizer.json") if not (folder / name).is_file()]
    if not any((folder / n).is_file() for n in ("model.safetensors", "pytorch_model.bin")):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise ModelNotAvailable(f"{folder} is not a cross-encoder folder: it has no {', '.join(missing)}. "
                                f"It must be {_LAYOUT}")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelNotAvailable(f"{folder / 'config.json'} is not readable JSON ({exc}); it must be {_LAYOUT}") \
            from None
    if not isinstance(config, dict):
        raise ModelNotAvailable(f"{folder / 'config.json'} is not a JSON object; it must be {_LAYOUT}")
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise ModelNotAvailable(
            f"{folder} holds {', '.join(map(str, architectures)) or 'a model with no architectures entry'}, "
            f"not a cross-encoder: config.json must name a *ForSequenceClassification architecture. "
            "An embedding model (sentence-transformers bi-encoder) cannot rerank; use mmr= for "
            "an embedding-only re-ranking")
    return config


def _num_labels(config: dict[str, Any], folder: Path) -> int:
    labels = config.get("id2label")
    n = len(labels) if isinstance(labels, dict) and labels else int(config.get("num_labels", 2))
    if n not in (1, 2):
        raise ModelNotAvailable(
            f"{folder} classifies into {n} labels; a reranker needs 1 (a relevance logit) or 2 "
            "(not relevant / relevant)")
    return n


def _max_length(config: dict[str, Any], folder: Path, requested: int | None) -> int:
    limits = [MAX_LENGTH]
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve padding_idx + 1 positions (514 positions → 512 tokens).
        offset = int(config.get("pad_token_id") or 0) + 1 if config.get("model_type") in ("roberta", "xlm-roberta") \
            else 0
        limits.append(positions - offset)
    tok_config = _read_json(folder / "tokenizer_config.json") or {}
    declared = tok_config.get("model_max_length")
    if isinstance(declared, int) and 0 < declared < 1_000_000:  # HF writes 1e30 for "no limit"
        limits.append(declared)
    limit = min(limits)
    if requested is None:
        return limit
    if isinstance(requested, bool) or not isinstance(requested, int) or not 8 <= requested <= limit:
        raise InvalidInput(f"max_length must be an integer in [8, {limit}] for {folder}, got {requested!r}")
    return requested


def _load_tokenizer(folder: Path, config: dict[str, Any], max_length: int) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises plain Exception subclasses of its own
        raise ModelNotAvailable(f"{folder / 'tokenizer.json'} cannot be loaded by the tokenizers library "
                                f"({exc}); it must be a fast-tokenizer file") from None
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    pad_id, pad_token = _pad(tokenizer, config, folder)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def _pad(tokenizer: Any, config: dict[str, Any], folder: Path) -> tuple[int, str]:
    declared = (tokenizer.padding or {}).get("pad_token") if tokenizer.padding else None
    tok_config = _read_json(folder / "tokenizer_config.json") or {}
    for token in (declared, tok_config.get("pad_token"), "[PAD]", "<pad>"):
        if isinstance(token, dict):  # older tokenizer_config.json: {"content": "<pad>", ...}
            token = token.get("content")
        if isinstance(token, str) and tokenizer.token_to_id(token) is not None:
            return int(tokenizer.token_to_id(token)), token
    pad_id = config.get("pad_token_id")
    if isinstance(pad_id, int):
        return pad_id, tokenizer.id_to_token(pad_id) or "[PAD]"
    # Padded positions are masked out, so any id is correct; 0 is every BERT's [PAD].
    return 0, tokenizer.id_to_token(0) or "[PAD]"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _session(model: bytes | Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # see local._OnnxRunner
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelNotAvailable(f"onnxruntime cannot load the exported cross-encoder: {exc}") from None


__all__ = ["FUSED_WEIGHT", "MAX_LENGTH", "WINDOWS", "WINDOW_SENTENCES", "CrossEncoder", "SentenceWindows",
           "load_reranker", "probabilities", "sentence_windows"]
