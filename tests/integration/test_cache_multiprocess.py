"""The embedding cache under real concurrency (separate processes) and with the real model."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import traceback
from pathlib import Path

import numpy as np
import pytest

from semkit.models.base import BaseEmbedder, EmbeddingResult
from semkit.models.cache import CachedEmbedder, EmbeddingCache
from semkit.types import Kind
from tests.support.shared_data import shared

PROCESSES = 4
PER_PROCESS = 1500
STRIDE = 700  # neighbours overlap by 800 texts, so the same keys are written concurrently


def hashed_vector(text: str, kind: str, dims: int = 96) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{kind}|{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dims).astype(np.float32)


class HashEmbedder(BaseEmbedder):
    """Deterministic vectors from the text's hash: every process agrees on every vector."""

    id = "test:hash@96"
    dimensions = 96
    max_tokens = 512

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        return EmbeddingResult(vectors=np.stack([hashed_vector(t, kind) for t in texts]))


def texts_of(worker: int) -> list[str]:
    start = worker * STRIDE
    return [f"shared text {i}" for i in range(start, start + PER_PROCESS)]


def _worker(cache_dir: str, worker: int, barrier: mp.synchronize.Barrier, results: mp.Queue) -> None:
    try:
        cache = EmbeddingCache.open(cache_dir)
        if cache.disabled:
            raise RuntimeError(f"cache disabled in worker {worker}: {cache.disabled}")
        emb = CachedEmbedder(HashEmbedder(), cache, chunk_size=25)  # many small write transactions
        texts = texts_of(worker)
        barrier.wait(timeout=120)
        for start in range(0, len(texts), 100):
            part = texts[start:start + 100]
            for kind in ("document", "query"):
                out = emb.embed(part, kind=kind)  # type: ignore[arg-type]
                expected = np.stack([hashed_vector(t, kind) for t in part])
                if not np.array_equal(out, expected):
                    raise AssertionError(f"worker {worker} read back a wrong vector")
        # reread everything this worker wrote: all of it must be served from the cache now
        again = emb.embed_result(texts)
        cache.close()
        results.put((worker, None, again.cached))
    except BaseException:
        results.put((worker, traceback.format_exc(), 0))


@pytest.mark.slow
def test_processes_writing_overlapping_sets_concurrently(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), i, barrier, results)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    failures = [tb for _, tb, _ in outcomes if tb]
    assert not failures, "\n".join(failures)
    assert sorted(cached for *_, cached in outcomes) == [PER_PROCESS] * PROCESSES

    everything = sorted({t for w in range(PROCESSES) for t in texts_of(w)})
    assert len(everything) == (PROCESSES - 1) * STRIDE + PER_PROCESS
    with EmbeddingCache.open(tmp_path) as cache:
        stats = cache.stats()
        assert stats.entries == 2 * len(everything)  # no entry lost, none duplicated
        assert stats.per_fingerprint == {HashEmbedder.id: 2 * len(everything)}
        for kind in ("document", "query"):
            back = cache.get_many(HashEmbedder.id, kind, everything)
            assert all(v is not None for v in back)
            expected = np.stack([hashed_vector(t, kind) for t in everything])
            np.testing.assert_array_equal(np.stack(back), expected)  # type: ignore[arg-type]
    assert not list(tmp_path.glob("*.corrupt-*"))


def stsb_sentences(n: int) -> list[str]:
    sentences: list[str] = []
    with shared("stsbenchmark/sts-test.csv").open(encoding="utf-8") as fh:
        for line in fh:
            fields = line.rstrip("\n").split("\t")
            for s in fields[5:7]:
                if s not in sentences:
                    sentences.append(s)
            if len(sentences) >= n:
                return sentences[:n]
    return sentences


@pytest.mark.slow
def test_real_model_second_run_is_served_from_cache(tmp_path: Path) -> None:
    try:
        import semkit.models.local
    except ImportError as exc:
        pytest.skip(f"the local embedder (semkit.models.local) is not available: {exc}")
    import semkit

    texts = stsb_sentences(200)
    assert len(set(texts)) == 200

    first_model = semkit.model("local", cache_dir=str(tmp_path))
    assert isinstance(first_model, CachedEmbedder)
    first = first_model.embed_result(texts)
    assert first.cached == 0
    assert first.vectors.shape == (200, 384)
    first_model.cache.close()

    # a new model object, as a second run of a program would create
    second_model = semkit.model("local", cache_dir=str(tmp_path))
    items_before = second_model.meter.items
    second = second_model.embed_result(texts)
    assert second.cached == 200
    assert second_model.meter.items == items_before  # the model itself did no work
    np.testing.assert_array_equal(second.vectors, first.vectors)
    stats = second_model.cache.stats()
    assert stats.per_fingerprint == {second_model.fingerprint: 200}
    second_model.cache.close()


def _forked_child(cache: EmbeddingCache, results: mp.Queue) -> None:
    try:
        emb = CachedEmbedder(HashEmbedder(), cache)
        out = emb.embed_result(["from parent", "from child"])
        cache.close()
        results.put((None, out.cached))
    except BaseException:
        results.put((traceback.format_exc(), 0))


def test_cache_object_survives_fork(tmp_path: Path) -> None:
    cache = EmbeddingCache.open(tmp_path)
    emb = CachedEmbedder(HashEmbedder(), cache)
    emb.embed(["from parent"])
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_forked_child, args=(cache, results))
    child.start()
    error, cached = results.get(timeout=120)
    child.join(timeout=60)
    assert error is None, error
    assert cached == 1  # the child used its own connection and saw the parent's row
    # the parent's connection is intact after the child closed its own
    result = emb.embed_result(["from parent", "from child"])
    assert result.cached == 2
    assert cache.stats().entries == 2
    cache.close()
