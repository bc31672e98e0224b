"""The embedding cache's logic: hits, misses, resumability, isolation and recovery.

The inner embedder here is a small deterministic stand-in that counts what it is asked to
embed: these tests check what the cache sends to a model, not the model (the real bundled
model is exercised in tests/integration/test_cache_multiprocess.py).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

import semkit
from semkit.errors import InvalidInput
from semkit.models.base import BaseEmbedder, Embedder, EmbeddingResult
from semkit.models.cache import FILENAME, CachedEmbedder, EmbeddingCache, cache_key
from semkit.types import Kind


class CountingEmbedder(BaseEmbedder):
    """Vectors derived from sha256(kind, text); records every call it receives."""

    def __init__(self, name: str = "fake", dimensions: int = 8, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.id = f"test:{name}@{dimensions}"
        self.dimensions = dimensions
        self.max_tokens = 512
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        self.calls.append(list(texts))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError(f"provider failed on call {len(self.calls)}")
        vecs = np.stack([expected_vector(t, kind, self.dimensions, self.id) for t in texts])
        tokens = sum(len(t.split()) for t in texts)
        self.meter.add(tokens=tokens, items=len(texts), requests=1)
        return EmbeddingResult(vectors=vecs, tokens=tokens)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


def expected_vector(text: str, kind: str, dims: int = 8, model: str = "test:fake@8") -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{model}|{kind}|{text}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return v / np.linalg.norm(v)


def corpus(n: int, prefix: str = "sentence") -> list[str]:
    return [f"{prefix} number {i}" for i in range(n)]


@pytest.fixture
def cache(tmp_path: Path) -> EmbeddingCache:
    c = EmbeddingCache.open(tmp_path / "cache")
    yield c
    c.close()


def test_second_pass_over_same_corpus_makes_zero_inner_calls(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    texts = corpus(600)
    first = emb.embed_result(texts)
    assert first.cached == 0
    assert sorted(inner.embedded) == sorted(texts)
    calls_after_first = len(inner.calls)

    second = emb.embed_result(texts)
    assert len(inner.calls) == calls_after_first  # not one more call
    assert second.cached == 600
    assert second.tokens == 0
    np.testing.assert_array_equal(first.vectors, second.vectors)
    # cost reflects real provider work only; the cached rows are counted separately
    assert inner.meter.items == 600
    assert emb.meter is inner.meter
    assert emb.meter.cached_items == 600


def test_a_fresh_cache_object_on_the_same_folder_sees_the_vectors(tmp_path: Path) -> None:
    texts = corpus(50)
    with EmbeddingCache.open(tmp_path) as c1:
        CachedEmbedder(CountingEmbedder(), c1).embed(texts)
    inner = CountingEmbedder()
    with EmbeddingCache.open(tmp_path) as c2:
        result = CachedEmbedder(inner, c2).embed_result(texts)
    assert inner.calls == []
    assert result.cached == 50


def test_partial_overlap_embeds_only_new_texts(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    emb.embed(corpus(10))
    inner.calls.clear()
    texts = [*corpus(10)[5:], "new one", "new two"]
    result = emb.embed_result(texts)
    assert inner.embedded == ["new one", "new two"]
    assert result.cached == 5
    expected = np.stack([expected_vector(t, "document") for t in texts])
    np.testing.assert_allclose(result.vectors, expected, rtol=0, atol=0)


def test_duplicates_within_one_call_are_embedded_once_and_order_is_kept(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    texts = ["b", "a", "b", "c", "a", "b"]
    result = emb.embed_result(texts)
    assert inner.embedded == ["b", "a", "c"]
    assert result.cached == 0
    expected = np.stack([expected_vector(t, "document") for t in texts])
    np.testing.assert_array_equal(result.vectors, expected)
    assert result.vectors.dtype == np.float32


def test_order_preserved_when_hits_and_misses_interleave(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    emb.embed(["x1", "x3", "x5"])
    texts = ["x0", "x1", "x2", "x3", "x4", "x5", "x1"]
    result = emb.embed_result(texts)
    expected = np.stack([expected_vector(t, "document") for t in texts])
    np.testing.assert_array_equal(result.vectors, expected)
    assert result.cached == 4  # x1, x3, x5, x1


def test_kinds_do_not_collide(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    doc = emb.embed(["same text"], kind="document")
    query = emb.embed_result(["same text"], kind="query")
    assert query.cached == 0
    assert len(inner.calls) == 2
    assert not np.array_equal(doc, query.vectors)
    np.testing.assert_array_equal(query.vectors[0], expected_vector("same text", "query"))


def test_fingerprints_do_not_collide(cache: EmbeddingCache) -> None:
    a, b = CountingEmbedder("model-a"), CountingEmbedder("model-b")
    va = CachedEmbedder(a, cache).embed(["hello"])
    result = CachedEmbedder(b, cache).embed_result(["hello"])
    assert result.cached == 0
    assert b.embedded == ["hello"]
    assert not np.array_equal(va, result.vectors)


def test_run_that_fails_half_way_resumes_without_repaying(cache: EmbeddingCache) -> None:
    texts = corpus(1000)
    failing = CountingEmbedder(fail_on_call=3)
    emb = CachedEmbedder(failing, cache, chunk_size=256)
    with pytest.raises(RuntimeError, match="call 3"):
        emb.embed(texts)
    assert len(failing.calls) == 3
    done = failing.calls[0] + failing.calls[1]
    assert len(done) == 512

    rerun = CountingEmbedder()
    result = CachedEmbedder(rerun, cache, chunk_size=256).embed_result(texts)
    assert sorted(rerun.embedded) == sorted(set(texts) - set(done))
    assert result.cached == 512
    expected = np.stack([expected_vector(t, "document") for t in texts])
    np.testing.assert_array_equal(result.vectors, expected)


def test_invalid_input_is_rejected_before_anything_is_embedded(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    with pytest.raises(InvalidInput, match="item 1"):
        emb.embed(["fine", "   "])
    with pytest.raises(InvalidInput, match="kind"):
        emb.embed(["fine"], kind="passage")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not a string"):
        emb.embed(["fine", 3])
    with pytest.raises(InvalidInput):
        emb.embed([])
    assert inner.calls == []
    assert cache.stats().entries == 0


def test_lone_string_is_one_text(cache: EmbeddingCache) -> None:
    emb = CachedEmbedder(CountingEmbedder(), cache)
    assert emb.embed("just one").shape == (1, 8)


def test_protocol_attributes_come_from_the_inner_embedder(cache: EmbeddingCache) -> None:
    inner = CountingEmbedder("m", dimensions=5)
    emb = CachedEmbedder(inner, cache)
    assert (emb.id, emb.dimensions, emb.max_tokens, emb.modalities, emb.fingerprint) == (
        inner.id, 5, 512, frozenset({"text"}), inner.fingerprint)
    assert emb.inner is inner
    assert emb.normalized is True  # provider-specific attributes read through
    assert isinstance(emb, Embedder)


def test_vectors_round_trip_bit_exact(cache: EmbeddingCache) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((300, 384)).astype(np.float32)
    vecs[0, :3] = [np.float32(1e-38), np.float32(-0.0), np.float32(3.4e38)]
    texts = corpus(300)
    cache.put_many("fp", "document", texts, vecs)
    back = cache.get_many("fp", "document", texts)
    assert all(v is not None for v in back)
    np.testing.assert_array_equal(np.stack(back), vecs)  # type: ignore[arg-type]


def test_get_many_batches_large_lookups(cache: EmbeddingCache) -> None:
    texts = corpus(1234)  # more than two LOOKUP_CHUNKs
    vecs = np.arange(1234 * 2, dtype=np.float32).reshape(1234, 2)
    cache.put_many("fp", "query", texts, vecs)
    back = cache.get_many("fp", "query", [*texts, "missing"])
    assert back[-1] is None
    np.testing.assert_array_equal(np.stack(back[:-1]), vecs)  # type: ignore[arg-type]
    assert cache.get_many("fp", "document", texts[:3]) == [None, None, None]


def test_text_with_lone_surrogate_gets_a_key(cache: EmbeddingCache) -> None:
    text = "broken \udcff byte"
    cache.put_many("fp", "document", [text], np.ones((1, 2)))
    assert cache.get_many("fp", "document", [text])[0] is not None
    assert cache_key("fp", "document", text) != cache_key("fp", "document", "broken  byte")


def test_put_many_rejects_mismatched_vectors(cache: EmbeddingCache) -> None:
    with pytest.raises(InvalidInput, match="one vector per text"):
        cache.put_many("fp", "document", ["a", "b"], np.ones((1, 4)))


def test_stats_and_clear(cache: EmbeddingCache) -> None:
    a, b = CountingEmbedder("a"), CountingEmbedder("b")
    CachedEmbedder(a, cache).embed(corpus(30))
    CachedEmbedder(b, cache).embed(corpus(20))
    CachedEmbedder(b, cache).embed(corpus(5), kind="query")
    stats = cache.stats()
    assert stats.path == cache.path
    assert stats.path.name == FILENAME
    assert stats.entries == 55
    assert stats.per_fingerprint == {a.fingerprint: 30, b.fingerprint: 25}
    assert stats.bytes > 55 * 8 * 4
    assert stats.disabled is None

    assert cache.clear(b.fingerprint) == 25
    assert cache.stats().per_fingerprint == {a.fingerprint: 30}
    assert cache.clear("never-seen") == 0
    assert cache.clear() == 30
    assert cache.stats().entries == 0
    cache.vacuum()

    again = CountingEmbedder("a")
    assert CachedEmbedder(again, cache).embed_result(corpus(3)).cached == 0
    assert len(again.embedded) == 3


def test_open_uses_semkit_cache_dir(isolated_cache: Path) -> None:
    cache = EmbeddingCache.open()
    assert cache.path == isolated_cache / FILENAME
    assert cache.path.exists()
    cache.close()


def test_model_wraps_in_cache_by_default(isolated_cache: Path) -> None:
    from semkit.models import registry

    registry.register("countingtest", lambda name, **opts: CountingEmbedder(name))
    emb = semkit.model("countingtest:x")
    assert isinstance(emb, CachedEmbedder)
    assert emb.cache.path == isolated_cache / FILENAME
    emb.embed(["a", "b"])
    assert semkit.model("countingtest:x").embed_result(["a", "b"]).cached == 2
    assert not isinstance(semkit.model("countingtest:x", cache=False), CachedEmbedder)


def test_garbage_cache_file_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(b"this is not a database " * 500)
    inner = CountingEmbedder()
    with caplog.at_level(logging.WARNING, logger="semkit.models.cache"):
        cache = EmbeddingCache.open(tmp_path)
        result = CachedEmbedder(inner, cache).embed_result(["a", "b"])
    assert result.vectors.shape == (2, 8)
    moved = list(tmp_path.glob(f"{FILENAME}.corrupt-*"))
    assert len(moved) == 1
    assert moved[0].read_bytes().startswith(b"this is not a database")
    assert "moved it to" in caplog.text
    assert cache.stats().entries == 2  # the fresh cache works
    cache.close()


def test_corrupt_pages_found_during_use_are_recovered(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    texts = corpus(2000)
    with EmbeddingCache.open(tmp_path) as cache:
        CachedEmbedder(CountingEmbedder(dimensions=64), cache).embed(texts)
    # Fold the WAL into the main file, then overwrite its middle with junk (a torn disk write).
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray((tmp_path / FILENAME).read_bytes())
    assert len(data) > 200_000
    data[100_000:len(data) - 4096] = b"\xa5" * (len(data) - 4096 - 100_000)
    (tmp_path / FILENAME).write_bytes(bytes(data))

    inner = CountingEmbedder(dimensions=64)
    with caplog.at_level(logging.WARNING, logger="semkit.models.cache"), \
            EmbeddingCache.open(tmp_path) as cache:
        result = CachedEmbedder(inner, cache).embed_result(texts)
        expected = np.stack([expected_vector(t, "document", 64, inner.id) for t in texts])
        np.testing.assert_array_equal(result.vectors, expected)
        assert list(tmp_path.glob(f"{FILENAME}.corrupt-*"))
        assert "unreadable" in caplog.text
        # everything lost was re-embedded and is cached again in the fresh file
        assert cache.stats().entries == 2000
        assert CachedEmbedder(CountingEmbedder(dimensions=64), cache).embed_result(texts).cached == 2000


def test_unusable_cache_location_disables_cache_but_embedding_works(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="semkit.models.cache"):
        cache = EmbeddingCache.open(blocker)
    assert cache.disabled is not None
    assert "embedding continues without a cache" in caplog.text
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, cache)
    emb.embed(["a"])
    emb.embed(["a"])
    assert len(inner.calls) == 2
    assert cache.stats().disabled is not None
    assert cache.clear() == 0


def test_newer_schema_is_left_alone(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / FILENAME)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    cache = EmbeddingCache.open(tmp_path)
    assert cache.disabled is not None and "newer semkit" in cache.disabled
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_threads_share_one_cache_object(cache: EmbeddingCache) -> None:
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            emb = CachedEmbedder(CountingEmbedder(), cache, chunk_size=16)
            for _ in range(3):
                texts = corpus(100, prefix=f"t{offset % 2}")
                out = emb.embed(texts)
                np.testing.assert_array_equal(out[5], expected_vector(texts[5], "document"))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.stats().entries == 200


def test_non_text_items_pass_through_to_multimodal_embedders(cache: EmbeddingCache) -> None:
    class ImageEmbedder(CountingEmbedder):
        modalities = frozenset({"text", "image"})

        def embed_result(self, items, kind="document"):  # type: ignore[no-untyped-def]
            self.calls.append([repr(i) for i in items])
            return EmbeddingResult(vectors=np.zeros((len(items), self.dimensions), np.float32))

    inner = ImageEmbedder()
    emb = CachedEmbedder(inner, cache)
    image = object()
    assert emb.embed_result([image, "a caption"]).vectors.shape == (2, 8)
    assert len(inner.calls) == 1
    assert cache.stats().entries == 0
