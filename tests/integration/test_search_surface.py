"""``Collection.search`` / ``search_many`` on the embedded store: records read with the hits,
the record cache kept consistent with SQLite across connections, and batches equal to loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semkit.collection import Collection
from semkit.database import Database
from semkit.errors import DimensionMismatch, InvalidInput
from semkit.store.embedded import EmbeddedStore

D = 32


def _data(n: int = 400, seed: int = 0) -> tuple[list[str], np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)
    return [f"r{i}" for i in range(n)], x


@pytest.fixture(params=[0, 10_000], ids=["hnsw", "exact"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "store"
    with EmbeddedStore(path) as store:
        col = Database(store).collection("c", model=None, dimensions=D)
        ids, x = _data()
        col.upsert(ids, vectors=x, texts=[f"text {i}" for i in ids], metadata=[{"i": n} for n in range(len(ids))])
    return path, request.param


def _open(folder: tuple[Path, int], **options: int) -> Collection:
    path, exact_threshold = folder
    store = EmbeddedStore(path, exact_threshold=exact_threshold, **options)
    return Database(store).collection("c", model=None, dimensions=D)


def test_hits_carry_text_and_metadata_and_match_the_store_query(folder: tuple[Path, int]) -> None:
    col = _open(folder)
    _, x = _data()
    hits = col.search(x[5], k=8)
    answer = col.store.query("c", x[5:6] / np.linalg.norm(x[5]), 8)[0]
    assert [h.id for h in hits] == answer.ids
    assert [h.score for h in hits] == pytest.approx(answer.scores.tolist(), abs=1e-6)
    assert hits[0].id == "r5" and hits[0].text == "text r5" and hits[0].metadata == {"i": 5}
    with_vectors = col.search(x[5], k=3, include_vectors=True)
    assert np.allclose(with_vectors[0].vector, x[5] / np.linalg.norm(x[5]), atol=1e-6)


def test_search_many_equals_one_search_per_query(folder: tuple[Path, int]) -> None:
    col = _open(folder)
    _, x = _data()
    queries = x[:25] + 0.3
    batch = col.search_many(queries, k=6, where={"i": {"$gte": 10}})
    singles = [col.search(q, k=6, where={"i": {"$gte": 10}}) for q in queries]
    assert [[(h.id, h.text, h.metadata) for h in hits] for hits in batch] == \
        [[(h.id, h.text, h.metadata) for h in hits] for hits in singles]
    assert col.search_many(np.zeros((0, D), np.float32)) == []
    with pytest.raises(DimensionMismatch):
        col.search_many(np.ones((2, D + 1), np.float32))
    with pytest.raises(InvalidInput, match="search_many"):
        col.search(x[:2])
    with pytest.raises(InvalidInput, match="NaN"):
        col.search(np.full(D, np.nan))


def test_cached_records_follow_writes_of_another_connection(folder: tuple[Path, int]) -> None:
    reader, writer = _open(folder), _open(folder)
    _, x = _data()
    first = reader.search(x[7], k=3)
    assert first[0].metadata == {"i": 7}
    first[0].metadata["i"] = "mutated by the caller"  # must not leak into the cache
    assert reader.search(x[7], k=3)[0].metadata == {"i": 7}

    writer.upsert(["r7"], metadata=[{"i": 7, "seen": True}])  # metadata only: same row, same pk
    assert reader.search(x[7], k=3)[0].metadata == {"i": 7, "seen": True}
    writer.upsert(["r7"], texts=["new text"], vectors=x[7:8])  # a new row
    assert reader.search(x[7], k=3)[0].text == "new text"
    writer.delete(["r7"])
    assert "r7" not in {h.id for h in reader.search(x[7], k=3)}


def test_record_cache_can_be_turned_off(folder: tuple[Path, int]) -> None:
    cached, uncached = _open(folder), _open(folder, record_cache=0)
    _, x = _data()
    for q in x[:20]:
        assert [(h.id, h.text, h.metadata) for h in cached.search(q, k=5)] == \
            [(h.id, h.text, h.metadata) for h in uncached.search(q, k=5)]
