"""Matryoshka truncation of local models: ``dimensions=`` keeps a vector's first components and
re-normalises them.

Only models trained with a Matryoshka loss keep their quality when truncated; the catalogue
lists the sizes each was trained for (``ModelInfo.matryoshka_dimensions``). Any other model is
refused with the measured cost, unless ``matryoshka=True`` says otherwise: for a folder outside
the catalogue it declares the model trained for truncation (any size is then accepted); for a
catalogue model not trained for it, it forces the truncation with a warning.

Measured loss for all-MiniLM-L6-v2, which was not trained for truncation
(``benchmarks/quality_sts.py --truncate 256,128,64``, cosine Spearman x100, ONNX fp32):
STSb test 82.03 at 384 (native), 81.89 at 256, 80.68 at 128, 79.21 at 64; SICK-R 77.58, 77.32,
76.67, 75.43. The refusal message quotes these figures, so whoever forces the truncation
(``matryoshka=True``) knows what it costs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..types import Kind, Matrix
from ..vectors import check_texts
from .base import STREAM_PIECE, Embedder, EmbedderWrapper, EmbeddingResult, Stream, check_kind, embed_stream
from .catalog import ModelInfo

log = logging.getLogger(__name__)

MEASURED_LOSS: dict[str, dict[int, float]] = {
    # model name -> {dimensions: STSb test cosine Spearman x100}; the native size included
    "all-MiniLM-L6-v2": {384: 82.03, 256: 81.89, 128: 80.68, 64: 79.21},
}
"""STSb of catalogue models not trained for truncation, at truncated sizes (module docstring)."""


def _loss_note(name: str, dimensions: int) -> str:
    scores = MEASURED_LOSS.get(name)
    if not scores:
        return ""
    native = max(scores)
    near = min(scores, key=lambda d: abs(d - dimensions))
    return (f" (measured on STSb: {scores[native]:.2f} at its native {native} dimensions, "
            f"{scores[near]:.2f} truncated to {near})")


def check_truncation(info: ModelInfo | None, name: str, native: int, dimensions: object, *,
                     declared: bool | None) -> int:
    """``dimensions`` when the model ``name`` (catalogue entry ``info``, or None for a folder
    outside the catalogue) may be truncated to it, else ``InvalidInput`` saying what to do."""
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= native:
        raise InvalidInput(f"dimensions must be an integer from 1 to {native} (the model's size) for "
                           f"{name}, got {dimensions!r}")
    if info is not None and info.accepts_dimensions(dimensions):
        return dimensions
    if info is not None and info.matryoshka_dimensions and not declared:
        info.check_dimensions(dimensions)  # raises, listing the trained sizes
    if declared:
        if info is not None:
            log.warning("%s was not trained for %d dimensions; truncating because matryoshka=True%s",
                        name, dimensions, _loss_note(info.name, dimensions))
        return dimensions
    if info is None:
        raise InvalidInput(
            f"{name} is not in the catalogue, so semkit does not know whether it was trained for "
            f"Matryoshka truncation; if it was, pass matryoshka=True with dimensions={dimensions}, "
            "else omit dimensions= (a model not trained for it loses quality when truncated)")
    raise InvalidInput(
        f"{info.spec} was not trained for Matryoshka truncation, so {dimensions}-dimensional "
        f"vectors would lose quality{_loss_note(info.name, dimensions)}. Omit dimensions=, choose a "
        "model trained for truncation "
        "(`semkit models` lists their sizes, e.g. nomic-embed-text-v1.5: 64-512), or pass "
        "matryoshka=True to truncate anyway")


def truncate(vectors: Matrix, dimensions: int, normalize: bool = True) -> Matrix:
    """The first ``dimensions`` components of each row, re-normalised to unit length."""
    head = np.array(vectors[:, :dimensions], dtype=np.float32)
    if normalize:
        head /= np.maximum(np.linalg.norm(head, axis=1, keepdims=True), 1e-12)
    return head


class Truncated(EmbedderWrapper):
    """``inner``'s vectors cut to their first ``dimensions`` components and re-normalised; built
    by ``load_local(..., dimensions=...)`` after ``check_truncation`` allowed it."""

    def __init__(self, inner: Embedder, dimensions: int) -> None:
        super().__init__(inner)
        self._dimensions = dimensions
        spec = inner.id.rpartition("@")[0] or inner.id
        self._id = f"{spec}@{dimensions}"
        self._normalize = bool(getattr(inner, "normalized", True))

    @property
    def id(self) -> str:
        return self._id

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def fingerprint(self) -> str:
        return f"{self.inner.fingerprint},truncated={self._dimensions}"

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        check_kind(kind)
        result = self.inner.embed_result(items, kind)
        return result.with_vectors(truncate(result.vectors, self._dimensions, self._normalize))

    def embed_stream(self, items: Sequence[Any], kind: Kind = "document", *,
                     piece: int = STREAM_PIECE) -> Stream:
        check_kind(kind)
        for start, result in embed_stream(self.inner, check_texts(items), kind, piece):
            yield start, result.with_vectors(truncate(result.vectors, self._dimensions, self._normalize))

    def __repr__(self) -> str:
        return f"<Truncated to {self._dimensions} of {self.inner!r}>"
