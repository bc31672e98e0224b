"""``Collection.search`` / ``search_many`` on the embedded store: records read with the hits,
the record cache kept consistent with SQLite across connections, and batches equal to loops."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from semkit.collection import Collection, Hit
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


def _answers(hits_per_query: list[list[Hit]]) -> list[list[tuple[str, str | None, dict[str, object]]]]:
    return [[(h.id, h.text, h.metadata) for h in hits] for hits in hits_per_query]


def test_unfiltered_batches_equal_single_searches_through_deletions(folder: tuple[Path, int]) -> None:
    col = _open(folder)
    _, x = _data()
    queries = x[:30] + 0.2
    gone: set[str] = set()
    # No deletions, then 60, then 30 more: tombstones (below the compaction fraction), the
    # second bitmap replacing the first between two searches. Every answer must stay full:
    # a deleted record found by the graph would be dropped when its row is read, leaving k-1.
    for delete in ([], [f"r{i}" for i in range(0, 300, 5)], [f"r{i}" for i in range(1, 300, 10)]):
        if delete:
            col.delete(delete)
        gone |= set(delete)
        batch = col.search_many(queries, k=7)
        singles = [col.search(q, k=7) for q in queries]
        assert _answers(batch) == _answers(singles)
        assert [h.score for hits in batch for h in hits] == \
            pytest.approx([h.score for hits in singles for h in hits], abs=1e-6)
        assert all(len(hits) == 7 and not gone & {h.id for h in hits} for hits in batch)
    assert col.count() == 400 - len(gone)


def test_a_search_leaves_earlier_answers_untouched(folder: tuple[Path, int]) -> None:
    col = _open(folder)
    _, x = _data()
    held = col.store.query("c", x[1:2] / np.linalg.norm(x[1]), 5)[0]
    ids, scores = list(held.ids), held.scores.copy()
    first = col.search(x[1], k=5)
    second = col.search(x[2], k=5)
    assert held.ids == ids and np.array_equal(held.scores, scores)
    assert [h.id for h in first] == ids and [h.score for h in first] == pytest.approx(scores.tolist(), abs=1e-6)
    assert first[0].id == "r1" and second[0].id == "r2"


def test_a_query_of_huge_values_is_normalised_without_warnings(folder: tuple[Path, int]) -> None:
    col = _open(folder)
    _, x = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 squares of 1e20 overflow: no RuntimeWarning may escape
        huge = col.search(x[3] * np.float32(1e20), k=4)
    plain = col.search(x[3], k=4)
    assert [h.id for h in huge] == [h.id for h in plain]
    assert [h.score for h in huge] == pytest.approx([h.score for h in plain], abs=1e-5)
    assert huge[0].id == "r3" and huge[0].score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(InvalidInput, match="NaN or infinite"):
        col.search(np.where(np.arange(D) == 2, np.float32(np.inf), x[3]))


def test_records_without_metadata_get_their_own_empty_dict(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "bare", exact_threshold=0)
    col = Database(store).collection("c", model=None, dimensions=D)
    ids, x = _data(50)
    col.upsert(ids, vectors=x, texts=[f"text {i}" for i in ids])
    for _ in range(2):  # the second round reads the record cache
        hits = col.search(x[4], k=3)
        assert [h.metadata for h in hits] == [{}, {}, {}]
        assert len({id(h.metadata) for h in hits}) == 3
        hits[0].metadata["leaked"] = True  # the caller's dict: must reach no other hit or search
    assert all(h.metadata == {} for q in x[:10] for h in col.search(q, k=5))
    store.close()
