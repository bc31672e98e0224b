"""Export a local transformer to ONNX once, offline, and keep the result on disk.

The exported graph maps ``input_ids`` / ``attention_mask`` (/ ``token_type_ids``) to the last
hidden state with dynamic batch and sequence axes; pooling and normalisation are done in NumPy
by the caller, so one export serves every pooling setting.

Recipe (measured on this project's 2 vCPU machine — an AMD EPYC with AVX-512 and VNNI, not the
Zen 3 of FACTS.md — with ``benchmarks/embed_throughput.py`` and ``benchmarks/quality_sts.py``):

- fp32: torch's TorchScript exporter (``dynamo=False``, opset 17) of the model loaded with eager
  attention; the dynamo exporter is the fallback when it fails. onnxruntime's transformer
  optimizer (fused Attention/SkipLayerNorm/BiasGelu) was measured and not used: 0.85x the
  unfused graph in fp32 and 0.83x in int8 (same run, 1 thread, 2,000 STSb sentences).
- int8: ``quantize_dynamic`` with int8 weights and per-channel scales on every weight MatMul
  (and the embedding Gathers). Measured on STSb test / SICK-R: per-channel 81.87 / 77.57 (fp32
  82.03 / 77.58), mean cosine to fp32 0.992, 1.9x fp32 speed; per-tensor scales drop mean
  cosine to 0.958; ``reduce_range`` to 0.861; keeping the feed-forward output projections in
  fp32 (``INT8_FFN_OUTPUT_FP32``) raises cosine to 0.995 but scores no better on STS and is only
  1.46x fp32. Dynamic quantisation scales activations per batch, so an int8 vector depends a
  little on its batch-mates (cosine ~0.993 between the same text alone and in a batch of 32).

Files live under ``SEMKIT_ONNX_DIR`` or ``<cache_dir>/onnx/``, one folder per (content hash of
the weights, recipe version, exporter and onnxruntime versions). Each ``.onnx`` file has a
``.json`` sidecar with its sha256; a file that does not match its sidecar is rebuilt, never
loaded. Files are written to a temporary name, fsynced and renamed; a file lock serialises
exports of the same model across processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import config
from ..errors import MissingDependency, SemkitError

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]

INT8_FFN_OUTPUT_FP32 = False
"""Keep the feed-forward output projections in fp32 in the int8 model (see the docstring)."""

RECIPE = "r2" + ("-ffn2fp32" if INT8_FFN_OUTPUT_FP32 else "")
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
    return onnx_root() / f"{digest[:24]}-{RECIPE}-ort{_version('onnxruntime')}-torch{exporter}"


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


def _read_verified(model_path: Path) -> bytes | None:
    """The model's bytes if they match the sidecar's checksum; None if missing or corrupt."""
    sidecar = model_path.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        data = model_path.read_bytes()
    except (OSError, ValueError):
        return None
    if len(data) != meta.get("size") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        log.warning("cached ONNX model %s does not match its checksum; rebuilding it", model_path)
        return None
    return data


def _store(model_path: Path, data: bytes, **meta: Any) -> None:
    # The model first, then its sidecar: a crash in between leaves a sidecar that does not
    # match, so the file is rebuilt rather than trusted.
    _atomic_write(model_path, data)
    record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "recipe": RECIPE,
              "onnxruntime": _version("onnxruntime"), "created": time.time(), **meta}
    _atomic_write(model_path.with_suffix(".json"), json.dumps(record, indent=1).encode())


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


def load_or_export(transformer_dir: Path, precision: Precision) -> bytes:
    """The serialised ONNX model of ``precision`` for ``transformer_dir``, exporting it on first
    use. Raises ``MissingDependency`` when an export is needed and torch is not installed,
    ``ExportFailed`` when the export does not produce a graph that matches torch."""
    digest = content_digest(transformer_dir)
    torch_available = importlib.util.find_spec("torch") is not None
    exporter = _version("torch") if torch_available else None
    name = f"model.{precision}.onnx"

    candidates = [_key_dir(digest, exporter)] if exporter else []
    # Without torch an existing export made by any torch version is still a valid graph.
    candidates += sorted(onnx_root().glob(_key_dir(digest, "*").name),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        data = _read_verified(folder / name)
        if data is not None:
            return data
    if exporter is None:
        raise MissingDependency("torch", "local", "Exporting a model to ONNX (done once per model)")

    folder = _key_dir(digest, exporter)
    with _locked(folder):
        data = _read_verified(folder / name)  # another process may have finished meanwhile
        if data is not None:
            return data
        fp32 = _read_verified(folder / "model.fp32.onnx")
        if fp32 is None:
            log.info("exporting %s to ONNX (once; cached in %s)", transformer_dir, folder)
            fp32 = _export_fp32(transformer_dir, folder)
            _store(folder / "model.fp32.onnx", fp32, torch=exporter, source=str(transformer_dir))
        if precision == "fp32":
            return fp32
        log.info("quantising %s to int8 (once)", transformer_dir)
        int8 = _quantize_int8(fp32, folder)
        _store(folder / "model.int8.onnx", int8, torch=exporter, source=str(transformer_dir))
        return int8


# --- export -------------------------------------------------------------------------------------

def _export_fp32(transformer_dir: Path, workdir: Path) -> bytes:
    import torch
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(transformer_dir), attn_implementation="eager")
    except (ValueError, TypeError):
        model = AutoModel.from_pretrained(str(transformer_dir))
    model.eval()
    names = _input_names(model)

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    wrapper = LastHidden(model).eval()
    sample = _sample_inputs(names, int(getattr(model.config, "vocab_size", 1000)))
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    with torch.no_grad():
        expected = wrapper(*args).numpy()

    errors: list[str] = []
    for dynamo in (False, True):
        fd, tmp = tempfile.mkstemp(prefix=".export.", suffix=".onnx", dir=workdir)
        os.close(fd)
        try:
            _torch_export(torch, wrapper, args, names, tmp, dynamo)
            data = Path(tmp).read_bytes()
            _check_against(data, sample, expected)
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
    if "token_type_ids" in params and getattr(model.config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


def _sample_inputs(names: list[str], vocab_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, max(1001, min(vocab_size, 20000)), size=(2, 11), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0  # one padded row, so the mask path is exercised
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: out[n] for n in names}


def _torch_export(torch: Any, wrapper: Any, args: tuple[Any, ...], names: list[str], path: str,
                  dynamo: bool, output: str = "last_hidden_state",
                  output_axes: dict[int, str] | None = None) -> None:
    """Export ``wrapper`` to ``path``; inputs are dynamic in batch and sequence, the output in
    ``output_axes`` (default: batch and sequence, as a hidden state is)."""
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
            axes[output] = output_axes or {0: "batch", 1: "sequence"}
            torch.onnx.export(
                wrapper, args, path, input_names=names, output_names=[output],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _check_against(data: bytes, sample: dict[str, np.ndarray], expected: np.ndarray) -> None:
    got = _session(data).run(None, sample)[0]
    mask = sample["attention_mask"].astype(bool)
    # Padded positions are garbage by design (they are masked out of pooling).
    err = float(np.abs(got[mask] - expected[mask]).max())
    if not err < 1e-3:
        raise ExportFailed(f"exported graph differs from torch by {err:.2g}")


# --- int8 ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantiser logs dozens of lines per model through the *root* logger (one
    per skipped MatMul); drop those while it runs, leave everything else alone."""

    def not_quantizer(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(not_quantizer)
    try:
        yield
    finally:
        root.removeFilter(not_quantizer)


def _quantize_int8(fp32: bytes, workdir: Path) -> bytes:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(fp32)
    keep_fp32 = [
        n.name for n in model.graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ] if INT8_FFN_OUTPUT_FP32 else []
    with tempfile.TemporaryDirectory(prefix=".quant.", dir=workdir) as tmp, _quiet_root_logger():
        out = Path(tmp) / "int8.onnx"
        quantize_dynamic(model, out, weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=keep_fp32)
        data = out.read_bytes()
    names = [i.name for i in model.graph.input]
    sample = _sample_inputs(names, 20000)
    ref = _session(fp32).run(None, sample)[0]
    got = _session(data).run(None, sample)[0]
    mask = sample["attention_mask"].astype(bool)
    a, b = ref[mask], got[mask]
    cos = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
    if not cos > 0.9:
        raise ExportFailed(f"int8 quantisation broke the model (cosine {cos:.3f} to fp32)")
    return data


# --- sequence-classification heads (cross-encoders) ---------------------------------------------

CLASSIFIER_FILE = "classifier.fp32.onnx"
"""A cross-encoder's graph, kept beside (never instead of) an embedder export of the same
weights: its output is the classification logits, not the last hidden state."""


def load_or_export_classifier(model_dir: Path) -> bytes:
    """The fp32 ONNX graph of the Hugging Face sequence-classification model in ``model_dir``
    (``input_ids`` / ``attention_mask`` [/ ``token_type_ids``] → ``logits`` of shape
    ``(batch, num_labels)``), exported once with torch and cached like the embedders' graphs
    (content digest, checksummed sidecar, atomic write, cross-process lock). Only fp32: a
    reranker scores tens of pairs a query, where int8's speed-up matters less than its error."""
    digest = content_digest(model_dir)
    torch_available = importlib.util.find_spec("torch") is not None
    exporter = _version("torch") if torch_available else None
    candidates = [_key_dir(digest, exporter)] if exporter else []
    candidates += sorted(onnx_root().glob(_key_dir(digest, "*").name),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        data = _read_verified(folder / CLASSIFIER_FILE)
        if data is not None:
            return data
    if exporter is None:
        raise MissingDependency("torch", "local", "Exporting a cross-encoder to ONNX (done once per model)")
    folder = _key_dir(digest, exporter)
    with _locked(folder):
        data = _read_verified(folder / CLASSIFIER_FILE)
        if data is not None:
            return data
        log.info("exporting cross-encoder %s to ONNX (once; cached in %s)", model_dir, folder)
        data = _export_classifier(model_dir, folder)
        _store(folder / CLASSIFIER_FILE, data, torch=exporter, source=str(model_dir), head="logits")
        return data


def _export_classifier(model_dir: Path, workdir: Path) -> bytes:
    import torch
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    except (ValueError, TypeError):
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    model.eval()
    names = _input_names(model)

    class Logits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args, strict=True))).logits

    wrapper = Logits(model).eval()
    sample = _classifier_sample(names, int(getattr(model.config, "vocab_size", 1000)))
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    with torch.no_grad():
        expected = wrapper(*args).numpy()

    errors: list[str] = []
    for dynamo in (False, True):
        fd, tmp = tempfile.mkstemp(prefix=".export.", suffix=".onnx", dir=workdir)
        os.close(fd)
        try:
            _torch_export(torch, wrapper, args, names, tmp, dynamo, output="logits", output_axes={0: "batch"})
            data = Path(tmp).read_bytes()
            got = _session(data).run(None, sample)[0]
            err = float(np.abs(got - expected).max())
            if not err < 1e-3:
                raise ExportFailed(f"exported graph's logits differ from torch by {err:.2g}")
            return data
        except Exception as exc:  # any exporter failure: try the other one, then give up
            errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {exc}")
            log.info("cross-encoder ONNX export with dynamo=%s failed: %s", dynamo, exc)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    raise ExportFailed(f"could not export cross-encoder {model_dir} to ONNX: " + "; ".join(errors))


def _classifier_sample(names: list[str], vocab_size: int) -> dict[str, np.ndarray]:
    # Ids inside the vocabulary whatever its size (a tiny test model has ~200 tokens), a padded
    # row so the mask path is traced, and a second segment so token_type_ids is not constant.
    rng = np.random.default_rng(0)
    low = min(1000, max(1, vocab_size // 2))
    ids = rng.integers(low, max(low + 1, min(vocab_size, 20000)), size=(2, 11), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    types = np.zeros_like(ids)
    types[:, 6:] = 1
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {n: out[n] for n in names}
