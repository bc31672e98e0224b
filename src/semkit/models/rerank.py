"""Cross-encoder rerankers from a local folder, run through ONNX like the embedders.

A cross-encoder reads the query and a passage together and outputs how relevant the passage
is; it is far slower than comparing vectors, so search uses it only to re-score the few best
candidates (see ``semkit.apps.search``'s ``rerank=``).

The folder is a Hugging Face sequence-classification model: ``config.json`` naming a
``*ForSequenceClassification`` architecture with one or two labels, the weights
(``model.safetensors`` or ``pytorch_model.bin``) and a fast-tokenizer ``tokenizer.json``.
sentence-transformers ``CrossEncoder.save(...)`` folders and Hugging Face downloads of
cross-encoders (``cross-encoder/ms-marco-MiniLM-L6-v2``, ``BAAI/bge-reranker-base``...) have
this layout. Nothing is downloaded: the folder must be on disk.

The graph is exported once with torch (``onnx_export.load_or_export_classifier``) and cached by
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


def _session(model: bytes, threads: int) -> Any:
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


__all__ = ["MAX_LENGTH", "CrossEncoder", "probabilities"]
