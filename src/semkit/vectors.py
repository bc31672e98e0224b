"""Vector arithmetic shared by every layer: similarity, normalisation, truncation, quantisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import DimensionMismatch, InvalidInput
from .types import Matrix, Metric


def as_matrix(vectors: Any, dimensions: int | None = None) -> Matrix:
    """Coerce a vector or a batch of vectors to a C-contiguous 2-D float32 array.

    Raises ``InvalidInput`` for ragged or non-numeric input, and ``DimensionMismatch`` when
    ``dimensions`` is given and does not match.
    """
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, reported just below
            arr = np.asarray(vectors, dtype=np.float32)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(
            f"vectors must be numeric and all of one length ({exc}); pass a list of equal-length "
            "lists of floats or a 2-D NumPy array"
        ) from None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidInput(f"vectors must be 1-D or 2-D, got an array of shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInput("vectors contain NaN, infinite values, or values beyond float32's range (±3.4e38); "
                           "drop or fix those rows")
    if dimensions is not None and arr.shape[1] != dimensions:
        raise DimensionMismatch(dimensions, arr.shape[1])
    return np.ascontiguousarray(arr)


def normalize(vectors: Any) -> Matrix:
    """Scale rows to unit L2 length (zero rows stay zero)."""
    arr = as_matrix(vectors)
    # float64 norms: squaring a float32 component near 1e20 overflows to inf, and x / inf
    # would store the vector as all zeros.
    norms = np.linalg.norm(arr.astype(np.float64), axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (arr / norms).astype(np.float32, copy=False)


def truncate(vectors: Any, dimensions: int, renormalize: bool = True) -> Matrix:
    """Matryoshka truncation: keep the first ``dimensions`` components, then renormalise."""
    arr = as_matrix(vectors)
    if not 0 < dimensions <= arr.shape[1]:
        raise InvalidInput(
            f"cannot truncate {arr.shape[1]}-dimensional vectors to {dimensions}; "
            f"choose 1..{arr.shape[1]}"
        )
    out = np.ascontiguousarray(arr[:, :dimensions])
    return normalize(out) if renormalize else out


def cosine(a: Any, b: Any) -> np.ndarray | float:
    """Cosine similarity. Two vectors give a float; matrices give the (len(a), len(b)) matrix."""
    return _pairwise(a, b, "cosine")


def dot(a: Any, b: Any) -> np.ndarray | float:
    return _pairwise(a, b, "dot")


def l2(a: Any, b: Any) -> np.ndarray | float:
    """Euclidean distance (not squared)."""
    return _pairwise(a, b, "l2")


def scores(queries: Matrix, items: Matrix, metric: Metric) -> np.ndarray:
    """Similarity scores where higher is better for every metric (L2 is negated distance)."""
    if metric == "l2":
        return -_l2_matrix(queries, items)
    if metric == "cosine":
        return normalize(queries) @ normalize(items).T
    return queries @ items.T


def _pairwise(a: Any, b: Any, metric: Metric) -> np.ndarray | float:
    scalar = np.ndim(a) == 1 and np.ndim(b) == 1
    left, right = as_matrix(a), as_matrix(b)
    if left.shape[1] != right.shape[1]:
        raise DimensionMismatch(left.shape[1], right.shape[1])
    if metric == "l2":
        result = _l2_matrix(left, right)
    elif metric == "cosine":
        result = normalize(left) @ normalize(right).T
    else:
        result = left @ right.T
    return float(result[0, 0]) if scalar else result


def _l2_matrix(a: Matrix, b: Matrix) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


# --- quantisation -------------------------------------------------------------------------


def to_float16(vectors: Any) -> np.ndarray:
    return as_matrix(vectors).astype(np.float16)


def quantize_int8(vectors: Any, scale: float | None = None) -> tuple[np.ndarray, float]:
    """Symmetric int8 quantisation with one scale for the whole matrix.

    Returns the int8 codes and the scale; ``dequantize_int8(codes, scale)`` approximates the
    input. Unit vectors from one model share a range, so one global scale loses little.
    """
    arr = as_matrix(vectors)
    if scale is None:
        peak = float(np.abs(arr).max()) if arr.size else 1.0
        scale = peak / 127.0 if peak > 0 else 1.0
    codes = np.clip(np.rint(arr / scale), -127, 127).astype(np.int8)
    return codes, scale


def dequantize_int8(codes: np.ndarray, scale: float) -> Matrix:
    return (codes.astype(np.float32) * np.float32(scale)).astype(np.float32)


def quantize_binary(vectors: Any) -> np.ndarray:
    """One bit per dimension (sign), packed into uint8: 32x smaller than float32."""
    return np.packbits(as_matrix(vectors) > 0, axis=1)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between packed binary codes, shape (len(a), len(b))."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


def bytes_per_vector(dimensions: int, dtype: str) -> int:
    """Raw storage of one vector, without index overhead."""
    if dtype == "float32":
        return 4 * dimensions
    if dtype == "float16":
        return 2 * dimensions
    if dtype == "int8":
        return dimensions
    if dtype == "binary":
        return (dimensions + 7) // 8
    raise InvalidInput(f"unknown dtype {dtype!r}; use float32, float16, int8 or binary")


def check_texts(texts: Sequence[Any] | str, *, allow_empty_list: bool = False) -> list[str]:
    """Validate a batch of texts: a list of non-empty strings (a lone string is one text)."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence):
        raise InvalidInput(
            f"texts must be a list of strings, got {type(texts).__name__}"
        )
    if not texts and not allow_empty_list:
        raise InvalidInput("no texts to embed: pass at least one non-empty string")
    out: list[str] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(
                f"item {i} is a {type(text).__name__}, not a string; convert it with str() "
                "or drop it"
            )
        if not text.strip():
            raise InvalidInput(
                f"item {i} is an empty or blank string; embeddings of nothing are meaningless, "
                "drop it before embedding"
            )
        out.append(text)
    return out
