"""Turn a local transformer into an ONNX graph once, offline, and keep the result on disk.

The graph maps ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) to the last hidden
state (an embedder; pooling and normalisation are done in NumPy by the caller, so one export
serves every pooling setting) or to the classification logits (a cross-encoder), with dynamic
batch and sequence axes.

Two exporters, tried in this order:

- ``onnx_graph.build``: writes the graph op by op from ``config.json`` + ``model.safetensors``
  for the BERT / roberta / XLM-R / MPNet shapes (every local model of the catalogue but
  nomic-embed). No torch: this is what lets ``pip install semkit`` run without it. Equal to
  sentence-transformers within 1e-5 (``tests/integration/test_onnx_graph.py``).
- torch (the ``[torch]`` extra), for any other model: torch's TorchScript exporter
  (``dynamo=False``, opset 17) of the model loaded with eager attention, the dynamo exporter as
  the fallback; the result must match torch within 1e-3 or it is refused.

onnxruntime's transformer optimizer (fused Attention/SkipLayerNorm/BiasGelu) was measured and not
used: 0.85x the unfused graph in fp32 and 0.83x in int8 (1 thread, 2,000 STSb sentences); the
session's own ``ORT_ENABLE_ALL`` optimisation (``local._OnnxRunner``) fuses what pays.

int8 is ``quantize.py``'s per-token quantisation of the fp32 graph (its docstring has the recipe
and figures).

Files live under ``SEMKIT_ONNX_DIR`` or ``<cache_dir>/onnx/``, one folder per (content hash of
the weights, recipe version, onnxruntime version, exporter). Each ``.onnx`` file has a ``.json``
sidecar with its sha256; a file that does not match its sidecar is rebuilt, never loaded. Files
are written to a temporary name, fsynced and renamed; a file lock serialises exports of the same
model across processes. Callers get the file's path and onnxruntime loads it from there: no copy
of the graph's bytes is held in Python besides onnxruntime's own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import config
from ..errors import MissingDependency, SemkitError
from .onnx_graph import GRAPH_RECIPE, Head, UnsupportedArchitecture
from .quantize import RECIPE as INT8_RECIPE

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]

RECIPE = "r2-" + INT8_RECIPE
"""Bump when the export or quantisation recipe changes: old files are then ignored."""

LOCK_TIMEOUT_S = 900.0

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ExportFailed(SemkitError):
    """The model could not be turned into a working ONNX graph."""


def onnx_root() -> Path:
    env = os.environ.get("SEMKIT_ONNX_DIR")
    return Path(env).expanduser() if env else config.cache_dir() / "onnx"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


# --- content hash -------------------------------------------------------------------------------

def content_digest(transformer_dir: Path) -> str:
    """sha256 over the files that determine the exported graph: ``config.json`` and the weights.

    Hashing 90 MB to 1.3 GB of weights on every load would dominate start-up, so each file's
    hash is remembered under the ONNX folder keyed by (real path, size, mtime, inode).
    """
    files = [transformer_dir / "config.json"]
    files += [transformer_dir / n for n in _WEIGHT_FILES if (transformer_dir / n).is_file()]
    if len(files) < 2 or not files[0].is_file():
        raise ExportFailed(f"{transformer_dir} has no config.json and weights to export")
    outer = hashlib.sha256()
    for f in files:
        outer.update(f.name.encode() + b"\0" + _file_digest(f).encode() + b"\0")
    return outer.hexdigest()


def _file_digest(path: Path) -> str:
    st = path.stat()
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo = onnx_root() / "digests" / (hashlib.sha256(stamp.encode()).hexdigest()[:32] + ".txt")
    with contextlib.suppress(OSError):
        text = memo.read_text().strip()
        if len(text) == 64:
            return text
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    with contextlib.suppress(OSError):
        _atomic_write(memo, digest.encode())
    return digest


# --- on-disk artefacts --------------------------------------------------------------------------

def _key_dir(digest: str, exporter: str) -> Path:
    # Named by content, not by model name: the same weights under another name or path (a
    # copied folder, a Hugging Face cache snapshot) reuse the export.
    return onnx_root() / f"{digest[:24]}-{RECIPE}-ort{_version('onnxruntime')}-{exporter}"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _verified(model_path: Path) -> Path | None:
    """``model_path`` if it matches its sidecar's checksum; None if missing or corrupt. The
    checksum is streamed (and remembered per size/mtime/inode like the weights' digests), so
    checking a file never holds it in memory."""
    sidecar = model_path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        size = model_path.stat().st_size
    except (OSError, ValueError):
        return None
    if size != meta.get("size") or _file_digest(model_path) != meta.get("sha256"):
        log.warning("cached ONNX model %s does not match its checksum; rebuilding it", model_path)
        return None
    return model_path


def _store(model_path: Path, data: bytes, **meta: Any) -> Path:
    # The model first, then its sidecar: a crash in between leaves a sidecar that does not
    # match, so the file is rebuilt rather than trusted.
    _atomic_write(model_path, data)
    record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "recipe": RECIPE,
              "onnxruntime": _version("onnxruntime"), "created": time.time(), **meta}
    _atomic_write(model_path.with_suffix(".json"), json.dumps(record, indent=1).encode())
    return model_path


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".export.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            yield
    except Timeout:
        raise ExportFailed(
            f"another process has been exporting into {folder} for over {LOCK_TIMEOUT_S:.0f}s; "
            "if no export is running, delete the .export.lock file there and retry"
        ) from None


# --- the cache ----------------------------------------------------------------------------------

CLASSIFIER_FILE = "classifier.fp32.onnx"
"""A cross-encoder's graph, kept beside (never instead of) an embedder export of the same
weights: its output is the classification logits, not the last hidden state."""


def _file_name(head: Head, precision: Precision) -> str:
    if head == "logits":
        if precision != "fp32":
            raise ValueError("cross-encoder graphs are exported in fp32 only")
        return CLASSIFIER_FILE
    return f"model.{precision}.onnx"


def load_or_export(transformer_dir: Path, precision: Precision = "fp32",
                   head: Head = "last_hidden_state") -> Path:
    """The path of the cached ONNX file of ``precision`` for ``transformer_dir``, exporting it on
    first use (torch-free for the shapes ``onnx_graph`` writes). Raises ``MissingDependency``
    when only the torch exporter can export this model and torch is not installed,
    ``ExportFailed`` when no exporter produces a working graph."""
    digest = content_digest(transformer_dir)
    name = _file_name(head, precision)
    # Any exporter's earlier result for these weights is a valid graph: reuse it first.
    done = sorted(onnx_root().glob(_key_dir(digest, "*").name), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in done:
        found = _verified(folder / name)
        if found is not None:
            return found

    reasons: list[str] = []
    for exporter, export in _exporters(transformer_dir, head, reasons):
        folder = _key_dir(digest, exporter)
        with _locked(folder):
            found = _verified(folder / name)  # another process may have finished meanwhile
            if found is not None:
                return found
            fp32_path = _verified(folder / _file_name(head, "fp32"))
            if fp32_path is None and precision == "int8" and exporter.startswith("graph"):
                # The graph builder's int8 comes straight from its in-memory fp32 graph: no fp32
                # file written, fsynced and parsed back (half of the first run); fp32 is
                # exported on its own if it is ever asked for.
                log.info("exporting %s to int8 ONNX with %s (once; cached in %s)", transformer_dir, exporter, folder)
                try:
                    int8 = _export_graph_int8(transformer_dir, head=head, digest=digest)
                except UnsupportedArchitecture as exc:
                    reasons.append(f"{exporter}: {exc}")
                    log.info("%s cannot export %s: %s", exporter, transformer_dir, exc)
                    continue
                return _store(folder / name, int8, exporter=exporter, source=str(transformer_dir), head=head)
            if fp32_path is None:
                log.info("exporting %s to ONNX with %s (once; cached in %s)", transformer_dir, exporter, folder)
                try:
                    fp32 = export(transformer_dir, folder)
                except UnsupportedArchitecture as exc:
                    reasons.append(f"{exporter}: {exc}")
                    log.info("%s cannot export %s: %s", exporter, transformer_dir, exc)
                    continue
                fp32_path = _store(folder / _file_name(head, "fp32"), fp32, exporter=exporter,
                                   source=str(transformer_dir), head=head)
                del fp32  # the int8 step reads the file: no second copy of the graph held meanwhile
            if precision == "fp32":
                return fp32_path
            log.info("quantising %s to int8 (once)", transformer_dir)
            int8 = _quantize_int8(fp32_path, _vocab_size(transformer_dir))
            return _store(folder / name, int8, exporter=exporter, source=str(transformer_dir), head=head)
    if importlib.util.find_spec("torch") is None:
        raise MissingDependency("torch", "torch", f"Exporting {transformer_dir} to ONNX ({'; '.join(reasons)})")
    raise ExportFailed(f"no exporter can export {transformer_dir} to ONNX: " + "; ".join(reasons))


def load_or_export_classifier(model_dir: Path) -> Path:
    """The path of the fp32 ONNX graph of the Hugging Face sequence-classification model in
    ``model_dir`` (``input_ids`` / ``attention_mask`` [/ ``token_type_ids``] → ``logits`` of
    shape ``(batch, num_labels)``), cached like the embedders' graphs. Only fp32: a reranker
    scores tens of pairs a query, where int8's speed-up matters less than its error."""
    return load_or_export(model_dir, "fp32", head="logits")


Exporter = Callable[[Path, Path], bytes]


def _exporters(transformer_dir: Path, head: Head, reasons: list[str]) -> Iterator[tuple[str, Exporter]]:
    """(cache label, export function) of each exporter that may handle the model, in order of
    preference; why one is skipped goes to ``reasons``."""
    if importlib.util.find_spec("google.protobuf") is not None and importlib.util.find_spec("safetensors") is not None:
        yield f"graph{GRAPH_RECIPE}", functools.partial(_export_graph, head=head)
    else:
        reasons.append("the graph builder needs the protobuf and safetensors packages")
    if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("transformers") is not None:
        yield f"torch{_version('torch')}", functools.partial(_export_torch, head=head)
    else:
        reasons.append("the torch exporter needs torch and transformers: pip install 'semkit[torch]'")


# --- export without torch -----------------------------------------------------------------------

def _checked_run(graph: Path | bytes, transformer_dir: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The exported ``graph``'s output on a batch of two sample inputs (and those inputs): it
    must load, run, and give finite values of the expected batch size."""
    try:
        session = _session(graph)
        sample = _sample_inputs([i.name for i in session.get_inputs()], _vocab_size(transformer_dir))
        got = session.run(None, sample)[0]
        del session
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ExportFailed(f"the graph written for {transformer_dir} does not run: {exc}") from None
    if got.shape[0] != 2 or not np.isfinite(got).all():
        raise ExportFailed(f"the graph written for {transformer_dir} gives {got.shape} / non-finite values")
    return got, sample


def _export_graph(transformer_dir: Path, workdir: Path, *, head: Head) -> bytes:
    """``onnx_graph.build``, then a run in onnxruntime: the graph loads and gives finite values
    of the expected shape (its equality to torch is what the tests prove)."""
    from .onnx_graph import build

    # The check session reads the graph from a scratch file while no Python copy of its bytes is
    # alive: onnxruntime's own copies are the first run's peak, ours would add 90 MB to it.
    scratch = workdir / f".check-{os.getpid()}.onnx"
    scratch.write_bytes(build(transformer_dir, head))
    try:
        _checked_run(scratch, transformer_dir)
        return scratch.read_bytes()
    finally:
        scratch.unlink(missing_ok=True)


def _vocab_size(transformer_dir: Path) -> int:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return int(json.loads((transformer_dir / "config.json").read_text())["vocab_size"])
    return 1000


# --- export with torch --------------------------------------------------------------------------

def _export_torch(transformer_dir: Path, workdir: Path, *, head: Head) -> bytes:
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    auto = AutoModelForSequenceClassification if head == "logits" else AutoModel
    try:
        model = auto.from_pretrained(str(transformer_dir), attn_implementation="eager")
    except (ValueError, TypeError):
        model = auto.from_pretrained(str(transformer_dir))
    model.eval()
    names = _input_names(model)

    class Output(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return getattr(self.inner(**dict(zip(names, args, strict=True))), head)

    wrapper = Output(model).eval()
    sample = _sample_inputs(names, int(getattr(model.config, "vocab_size", 1000)),
                            int(getattr(model.config, "type_vocab_size", 0) or 0))
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    with torch.no_grad():
        expected = wrapper(*args).numpy()
    # Padded positions of a hidden state are garbage by design (masked out of pooling); logits
    # are compared whole (``...`` selects everything).
    compared = sample["attention_mask"].astype(bool) if head == "last_hidden_state" else ...

    errors: list[str] = []
    for dynamo in (False, True):
        fd, tmp = tempfile.mkstemp(prefix=".export.", suffix=".onnx", dir=workdir)
        os.close(fd)
        try:
            _torch_export(torch, wrapper, args, names, tmp, dynamo, head)
            data = Path(tmp).read_bytes()
            got = _session(data).run(None, sample)[0]
            err = float(np.abs(got[compared] - expected[compared]).max())
            if not err < 1e-3:
                raise ExportFailed(f"exported graph differs from torch by {err:.2g}")
            return data
        except Exception as exc:  # any exporter failure: try the other one, then give up
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {exc}")
            log.info("ONNX export with dynamo=%s failed: %s", dynamo, exc)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    raise ExportFailed(f"could not export {transformer_dir} to ONNX: " + "; ".join(errors))


def _input_names(model: Any) -> list[str]:
    import inspect

    params = inspect.signature(model.forward).parameters
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", None):
        names.append("token_type_ids")
    return names


def _sample_inputs(names: list[str], vocab_size: int, type_vocab_size: int = 0) -> dict[str, np.ndarray]:
    """Two rows of 11 ids inside the vocabulary whatever its size (a tiny test model has ~200
    tokens), one of them padded so the mask path is exercised, and a second segment when the
    model has two token types."""
    rng = np.random.default_rng(0)
    low = min(1000, max(1, vocab_size // 2))
    ids = rng.integers(low, max(low + 1, min(vocab_size, 20000)), size=(2, 11), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    types = np.zeros_like(ids)
    if type_vocab_size > 1:
        types[:, 6:] = 1
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {n: out[n] for n in names}


def _torch_export(torch: Any, wrapper: Any, args: tuple[Any, ...], names: list[str], path: str,
                  dynamo: bool, output: Head) -> None:
    """Export ``wrapper`` to ``path``; inputs are dynamic in batch and sequence, and so is a
    hidden state; logits are dynamic in batch only."""
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about constant-folded Python values
        if dynamo:
            from torch.export import Dim

            batch, seq = Dim("batch"), Dim("sequence", max=8192)
            torch.onnx.export(
                wrapper, args, path, input_names=names, output_names=[output],
                dynamic_shapes=tuple({0: batch, 1: seq} for _ in names), dynamo=True,
                external_data=False, verbose=False,
            )
        else:
            axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
            axes[output] = {0: "batch", 1: "sequence"} if output == "last_hidden_state" else {0: "batch"}
            torch.onnx.export(
                wrapper, args, path, input_names=names, output_names=[output],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )


def _session(model: bytes | Path) -> Any:
    """A session for the export's checks (a few rows): unoptimised, without the memory arena or
    prepacked weights, since those cost a second copy of the weights at the first run's peak
    and pay only over many batches (``local._OnnxRunner`` is the session that serves)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.enable_cpu_mem_arena = False
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


# --- int8 ---------------------------------------------------------------------------------------

KNOWN_INT8_GRAPHS: dict[tuple[str, str, str], str] = {
    # all-MiniLM-L6-v2 as bundled (config.json + model.safetensors)
    ("efe4a5984877a5e64a2da8f9b84e03308a8f62b987d56a1abfd9e93fde9ed985", f"{RECIPE}-graph{GRAPH_RECIPE}",
     "last_hidden_state"): "4cabf09dc150bb6ed8520c86892b3f09f19eab4774bb451ca1bd6f14061227f9",
}
"""sha256 of the int8 graph the checked route produces, by (``content_digest`` of the weights,
recipes, head). The graph builder and the quantiser are deterministic NumPy code, so when the
first run's quick build hashes to the recorded value it *is* the graph the checks passed on
(``tests/integration/test_onnx_graph.py`` re-derives the value through the checked route): the
two onnxruntime check sessions and the fp32 serialisation they need, half of the first run, are
skipped. Any other result falls back to the checked route. Update the value when a recipe bumps."""


def _export_graph_int8(transformer_dir: Path, *, head: Head, digest: str | None = None) -> bytes:
    """``onnx_graph``'s graph quantised without a round trip through the fp32 file, checked as
    ``_export_graph`` + ``_quantize_int8`` check theirs: the fp32 graph runs (finite values, batch
    of 2) and the int8 graph stays close to it; or, for weights in ``KNOWN_INT8_GRAPHS``, built
    directly and accepted when its sha256 is the recorded one."""
    from .onnx_graph import build_model
    from .onnx_proto import load_from_string
    from .quantize import quantize_per_token

    known = KNOWN_INT8_GRAPHS.get((digest or "", f"{RECIPE}-graph{GRAPH_RECIPE}", head))
    if known is not None:
        quick = quantize_per_token(build_model(transformer_dir, head)).SerializeToString()
        if hashlib.sha256(quick).hexdigest() == known:
            return quick
        del quick
        log.warning("the int8 graph of %s differs from the recorded one; checking it the slow way",
                    transformer_dir)
    fp32 = build_model(transformer_dir, head).SerializeToString()  # the proto is freed here
    ref, sample = _checked_run(fp32, transformer_dir)
    # Parsed back from the bytes rather than kept from build_model: the proto and the session
    # alive together would be two extra copies of the weights at the first run's peak.
    model = load_from_string(fp32)
    del fp32
    data = quantize_per_token(model).SerializeToString()
    del model
    _check_int8(data, sample, ref)
    return data


def _check_int8(data: bytes, sample: dict[str, np.ndarray], ref: np.ndarray) -> None:
    got = _session(data).run(None, sample)[0]
    mask = sample["attention_mask"].astype(bool)
    a, b = ref[mask], got[mask]
    cos = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
    if not cos > 0.9:
        raise ExportFailed(f"int8 quantisation broke the model (cosine {cos:.3f} to fp32)")


def _quantize_int8(fp32_path: Path, vocab_size: int) -> bytes:
    """The int8 graph of the fp32 file (``quantize.py``'s per-token recipe: deterministic),
    refused unless it stays close to fp32 on a random batch. One step at a time, so the first
    run's peak holds one copy of the graph: the fp32 reference output first (then its session is
    gone), then the file parsed once and rewritten in place, then the int8 session."""
    from .onnx_proto import load
    from .quantize import quantize_per_token

    reference = _session(fp32_path)
    # ids below the model's vocabulary size (a fixed 20,000 made small vocabularies fail here)
    sample = _sample_inputs([i.name for i in reference.get_inputs()], vocab_size)
    ref = reference.run(None, sample)[0]
    del reference
    model = load(fp32_path)
    data = quantize_per_token(model).SerializeToString()
    del model
    _check_int8(data, sample, ref)
    return data
