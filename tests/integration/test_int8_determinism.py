"""Deterministic local vectors: a text's vector does not depend on its batch-mates, on the real
bundled MiniLM and real sentences, for the default precision and for int8 and fp32 explicitly;
and the cache never mixes precisions and hands all misses of a call to the model as one stream.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmarks._data import real_sentences

from semkit.models.base import BaseEmbedder, EmbeddingResult, Stream
from semkit.models.cache import CachedEmbedder, EmbeddingCache
from semkit.models.local import DEFAULT_PRECISION, LocalEmbedder, load_local
from semkit.models.quantize import cpu_has_int8_dot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return real_sentences(160)


@pytest.fixture(scope="module", params=["default", "int8", "fp32"])
def model(request: pytest.FixtureRequest) -> LocalEmbedder:
    precision = None if request.param == "default" else request.param
    return load_local("all-MiniLM-L6-v2", precision=precision, batch_size=16)


def test_vector_is_bit_identical_alone_and_in_any_batch(model: LocalEmbedder, sentences: list[str]) -> None:
    batched = model.embed(sentences)
    alone = np.concatenate([model.embed([t]) for t in sentences[:40]])
    # other batch-mates: reversed order, and mixed with very long and very short texts
    rng = np.random.default_rng(7)
    order = rng.permutation(len(sentences))
    shuffled = np.empty_like(batched)
    shuffled[order] = model.embed([sentences[i] for i in order])
    noisy = model.embed([*sentences[:40], "ok", " ".join(sentences[40:60])])[:40]
    assert np.array_equal(alone, batched[:40])
    assert np.array_equal(shuffled, batched)
    assert np.array_equal(noisy, batched[:40])


def test_int8_is_close_to_fp32(sentences: list[str]) -> None:
    fp32 = load_local("all-MiniLM-L6-v2", precision="fp32").embed(sentences)
    int8 = load_local("all-MiniLM-L6-v2", precision="int8").embed(sentences)
    cos = (fp32 * int8).sum(axis=1)
    assert cos.mean() > 0.995
    assert cos.min() > 0.97


def test_default_precision_follows_the_cpu() -> None:
    assert ("int8" if cpu_has_int8_dot() else "fp32") == DEFAULT_PRECISION
    assert load_local("all-MiniLM-L6-v2").precision == DEFAULT_PRECISION


def test_cache_never_mixes_precisions(tmp_path: Path, sentences: list[str]) -> None:
    cache = EmbeddingCache.open(tmp_path)
    fp32 = load_local("all-MiniLM-L6-v2", precision="fp32")
    int8 = load_local("all-MiniLM-L6-v2", precision="int8")
    assert fp32.fingerprint != int8.fingerprint
    CachedEmbedder(fp32, cache).embed(sentences[:20])
    result = CachedEmbedder(int8, cache).embed_result(sentences[:20])
    assert result.cached == 0
    np.testing.assert_array_equal(result.vectors, int8.embed(sentences[:20]))
    assert set(cache.stats().per_fingerprint) == {fp32.fingerprint, int8.fingerprint}


def test_cache_hands_all_misses_to_the_model_as_one_stream(tmp_path: Path, sentences: list[str]) -> None:
    many = real_sentences(700)
    model = load_local("all-MiniLM-L6-v2", batch_size=16)
    cached = CachedEmbedder(model, EmbeddingCache.open(tmp_path))
    cached.embed(many[:100])
    before = model.meter.requests
    result = cached.embed_result(many)
    assert model.meter.requests == before + 1  # one call for the 600 misses, not 256 at a time
    assert result.cached == 100
    np.testing.assert_array_equal(result.vectors, model.embed(many))


class _FailsAfterPieces(BaseEmbedder):
    """Streams pieces of 10 texts (vector = text length) and fails after ``good`` pieces."""

    id = "test:fails@2"
    dimensions = 2
    max_tokens = 100

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def _embed_texts(self, texts: list[str], kind: str) -> EmbeddingResult:  # type: ignore[override]
        return EmbeddingResult(np.array([[len(t), 1.0] for t in texts], dtype=np.float32))

    def _stream_texts(self, texts: list[str], kind: str, piece: int = 10) -> Stream:  # type: ignore[override]
        for n, start in enumerate(range(0, len(texts), 10)):
            if n == self.good:
                raise RuntimeError("the model crashed")
            yield start, self._embed_texts(texts[start:start + 10], kind)


def test_pieces_are_cached_as_they_arrive(tmp_path: Path) -> None:
    cache = EmbeddingCache.open(tmp_path)
    texts = [f"text number {i}" for i in range(50)]
    with pytest.raises(RuntimeError, match="crashed"):
        CachedEmbedder(_FailsAfterPieces(good=3), cache).embed(texts)
    assert cache.stats().entries == 30  # the three pieces computed before the crash were kept
    result = CachedEmbedder(_FailsAfterPieces(good=99), cache).embed_result(texts)
    assert result.cached == 30
    np.testing.assert_array_equal(result.vectors[:, 0], [len(t) for t in texts])
