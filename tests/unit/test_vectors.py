from __future__ import annotations

import numpy as np
import pytest

from semkit import vectors
from semkit.errors import DimensionMismatch, InvalidInput


def test_cosine_of_two_vectors_is_a_float() -> None:
    assert vectors.cosine([1, 0], [1, 0]) == pytest.approx(1.0)
    assert vectors.cosine([1, 0], [0, 1]) == pytest.approx(0.0)
    assert vectors.cosine([1, 1], [-1, -1]) == pytest.approx(-1.0)


def test_pairwise_matrices_match_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(3, 8))
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors.cosine(a, b), na @ nb.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vectors.dot(a, b), a @ b.T, rtol=1e-5, atol=1e-5)
    expected = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    np.testing.assert_allclose(vectors.l2(a, b), expected, rtol=1e-4, atol=1e-4)


def test_scores_are_higher_is_better_for_every_metric() -> None:
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    items = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]], dtype=np.float32)
    assert np.argmax(vectors.scores(q, items, "cosine")[0]) in (0, 2)
    assert np.argmax(vectors.scores(q, items, "dot")[0]) == 2
    assert np.argmax(vectors.scores(q, items, "l2")[0]) == 0


def test_normalize_leaves_zero_rows_alone() -> None:
    out = vectors.normalize([[3, 4], [0, 0]])
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0]])


def test_matryoshka_truncation_renormalises() -> None:
    v = vectors.normalize(np.arange(1, 9, dtype=np.float32))
    t = vectors.truncate(v, 4)
    assert t.shape == (1, 4)
    assert np.linalg.norm(t) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InvalidInput, match="cannot truncate"):
        vectors.truncate(v, 9)


def test_dimension_mismatch_is_typed() -> None:
    with pytest.raises(DimensionMismatch) as info:
        vectors.cosine([1, 2, 3], [1, 2])
    assert info.value.expected == 3 and info.value.got == 2
    with pytest.raises(DimensionMismatch):
        vectors.as_matrix([[1, 2]], dimensions=3)


@pytest.mark.parametrize("bad", [[[1, 2], [3]], [["a", "b"]], [[np.nan, 1.0]], np.zeros((2, 2, 2))])
def test_bad_vectors_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidInput):
        vectors.as_matrix(bad)


def test_int8_roundtrip_is_close() -> None:
    rng = np.random.default_rng(1)
    v = vectors.normalize(rng.normal(size=(100, 384)))
    codes, scale = vectors.quantize_int8(v)
    assert codes.dtype == np.int8
    back = vectors.dequantize_int8(codes, scale)
    cos = (vectors.normalize(back) * v).sum(1)
    assert cos.min() > 0.99


def test_binary_quantisation_preserves_neighbours_roughly() -> None:
    rng = np.random.default_rng(2)
    v = vectors.normalize(rng.normal(size=(200, 256)))
    noisy = vectors.normalize(v + 0.1 * rng.normal(size=v.shape))
    codes, noisy_codes = vectors.quantize_binary(v), vectors.quantize_binary(noisy)
    assert codes.shape == (200, 32)
    nearest = vectors.hamming(noisy_codes[:20], codes).argmin(axis=1)
    assert (nearest == np.arange(20)).mean() >= 0.9


def test_bytes_per_vector() -> None:
    assert vectors.bytes_per_vector(384, "float32") == 1536
    assert vectors.bytes_per_vector(384, "float16") == 768
    assert vectors.bytes_per_vector(384, "int8") == 384
    assert vectors.bytes_per_vector(384, "binary") == 48
    assert vectors.bytes_per_vector(385, "binary") == 49


@pytest.mark.parametrize(
    ("texts", "message"),
    [([], "no texts"), ([""], "empty"), (["ok", "   "], "item 1"), (["ok", 3], "item 1 is a int"),
     (None, "list of strings")],
)
def test_check_texts_says_what_is_wrong(texts: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        vectors.check_texts(texts)  # type: ignore[arg-type]


def test_a_lone_string_is_one_text() -> None:
    assert vectors.check_texts("hello") == ["hello"]


def test_normalising_huge_finite_vectors_keeps_their_direction() -> None:
    from semkit.vectors import normalize

    big = np.array([[1e20, -2e20, 3e20], [3e38, 3e38, 0.0]], dtype=np.float32)
    unit = normalize(big)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    assert np.allclose(unit[0], np.array([1, -2, 3]) / np.sqrt(14), atol=1e-6)


def test_values_beyond_float32_are_a_clear_error() -> None:
    from semkit.errors import InvalidInput
    from semkit.vectors import as_matrix

    with pytest.raises(InvalidInput, match="float32's range"):
        as_matrix([[1e39, 0.0]])
