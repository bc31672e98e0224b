"""The ``VectorStore`` contract, run against every backend (see conftest.py).

``MemoryStore`` is the reference; answers are checked against NumPy brute force and against
``filters.matches``, never against another backend's output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from semkit.errors import CollectionNotFound, DimensionMismatch, InvalidInput, SemkitError, StoreError
from semkit.store import filters
from semkit.store.base import CollectionSpec, Neighbors, Record, VectorStore
from semkit.types import Metric
from tests.contract.conftest import DIMS, Loaded, unique

TOL = 1e-4


# --- reference answers --------------------------------------------------------------------


def reference_scores(queries: np.ndarray, stored: np.ndarray, metric: Metric) -> np.ndarray:
    q = queries.astype(np.float64)
    x = stored.astype(np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        return q @ x.T
    if metric == "dot":
        return q @ x.T
    return -np.sqrt(np.maximum((q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * q @ x.T, 0))


def assert_exact_top_k(got: Neighbors, eligible: dict[str, float], k: int, what: str = "") -> None:
    """``got`` is a correct top-k among ``eligible`` (id → reference score), ties allowed."""
    want = min(k, len(eligible))
    assert len(got.ids) == len(got.scores), what
    assert len(got.ids) == want, f"{what}: {len(got.ids)} results, expected {want}"
    assert len(set(got.ids)) == len(got.ids), f"{what}: duplicate ids {got.ids}"
    outside = [i for i in got.ids if i not in eligible]
    assert not outside, f"{what}: ids that do not match the filter: {outside[:5]}"
    scores = np.asarray(got.scores, dtype=np.float64)
    ref = np.array([eligible[i] for i in got.ids])
    assert np.allclose(scores, ref, rtol=TOL, atol=TOL), f"{what}: scores {scores[:5]} vs {ref[:5]}"
    assert np.all(np.diff(scores) <= TOL), f"{what}: scores not best-first: {scores}"
    if want:
        kth_best = sorted(eligible.values(), reverse=True)[want - 1]
        assert ref.min() >= kth_best - TOL, f"{what}: missed a better match (worst {ref.min()} < {kth_best})"


def eligible_scores(loaded: Loaded, metric: Metric, query: np.ndarray, where: Any) -> dict[str, float]:
    node = filters.parse(where)
    row = reference_scores(query[None, :], loaded.stored(metric), metric)[0]
    return {i: float(row[n]) for n, i in enumerate(loaded.ids) if filters.matches(node, loaded.metadata[n])}


def create(store: VectorStore, dims: int = 4, metric: Metric = "cosine", **kw: Any) -> str:
    name = unique()
    store.create_collection(CollectionSpec(name=name, dimensions=dims, metric=metric, **kw))
    return name


def unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


# --- collections --------------------------------------------------------------------------


def test_create_get_list_drop(store: VectorStore) -> None:
    spec = CollectionSpec(name=unique(), dimensions=7, metric="dot", embedder="test:hash@7",
                          dtype="float32", normalized=False, options={"note": "kept"})
    store.create_collection(spec)
    got = store.get_collection(spec.name)
    assert got is not None
    assert got.name == spec.name
    assert got.fingerprint() == spec.fingerprint()
    assert dict(got.options) == {"note": "kept"}
    assert spec.name in {s.name for s in store.list_collections()}
    store.drop_collection(spec.name)
    assert store.get_collection(spec.name) is None
    assert spec.name not in {s.name for s in store.list_collections()}


def test_create_existing_collection_is_an_error(store: VectorStore) -> None:
    name = create(store)
    with pytest.raises(StoreError):
        store.create_collection(CollectionSpec(name=name, dimensions=4))


def test_missing_collection(store: VectorStore) -> None:
    missing = unique("missing")
    assert store.get_collection(missing) is None
    with pytest.raises(CollectionNotFound):
        store.drop_collection(missing)
    with pytest.raises(CollectionNotFound):
        store.upsert(missing, ["a"], np.ones((1, 4), np.float32))
    with pytest.raises(CollectionNotFound):
        store.count(missing)
    with pytest.raises(CollectionNotFound):
        store.query(missing, np.ones((1, 4), np.float32), 3)


def test_rename_replaces_the_target_atomically(store: VectorStore) -> None:
    old = create(store, dims=3, embedder="test:new@3")
    target = create(store, dims=3, embedder="test:old@3")
    store.upsert(old, ["n1", "n2"], np.eye(3, dtype=np.float32)[:2], ["new one", "new two"])
    store.upsert(target, ["o1"], np.eye(3, dtype=np.float32)[2:], ["old"])
    store.rename_collection(old, target)
    assert store.get_collection(old) is None
    spec = store.get_collection(target)
    assert spec is not None and spec.name == target and spec.embedder == "test:new@3"
    assert store.count(target) == 2
    assert [r.id for r in store.get(target, ["n1", "n2", "o1"])] == ["n1", "n2"]
    hits = store.query(target, np.array([[1, 0, 0]], np.float32), 5)[0]
    assert hits.ids[0] == "n1" and "o1" not in hits.ids


def test_rename_to_a_free_name(store: VectorStore) -> None:
    old = create(store)
    new = unique()
    store.upsert(old, ["a"], np.ones((1, 4), np.float32))
    store.rename_collection(old, new)
    assert store.get_collection(old) is None
    assert store.count(new) == 1
    with pytest.raises(CollectionNotFound):
        store.rename_collection(unique("missing"), unique())


# --- writes -------------------------------------------------------------------------------


def test_upsert_get_round_trip(store: VectorStore) -> None:
    name = create(store, dims=3, metric="l2")
    meta = {"title": "Ünïcödé ✓", "year": 2021, "price": 9.5, "ok": True, "none": None,
            "tags": ["a", "b"], "author": {"name": "ada", "age": 36}}
    store.upsert(name, ["a", "b"], np.array([[1, 2, 3], [4, 5, 6]], np.float32),
                 ["first text", None], [meta, {}])
    a, b = store.get(name, ["a", "b"], include_vectors=True)
    assert (a.id, a.text, a.metadata) == ("a", "first text", meta)
    assert (b.id, b.text, b.metadata) == ("b", None, {})
    assert a.vector is not None and a.vector.dtype == np.float32
    assert np.allclose(a.vector, [1, 2, 3], atol=1e-6)
    assert np.allclose(b.vector, [4, 5, 6], atol=1e-6)
    without = store.get(name, ["a"])[0]
    assert without.vector is None and without.metadata == meta


def test_cosine_collections_compare_directions(store: VectorStore) -> None:
    name = create(store, dims=2, metric="cosine")
    store.upsert(name, ["long", "short"], np.array([[10, 0.5], [0.1, 0.1]], np.float32))
    got = store.get(name, ["long"], include_vectors=True)[0]
    assert np.allclose(unit(got.vector), unit([10, 0.5]), atol=1e-6)
    hits = store.query(name, np.array([[1, 1]], np.float32), 2)[0]
    assert hits.ids == ["short", "long"]
    assert np.allclose(hits.scores, [1.0, float(unit([10, 0.5]) @ unit([1, 1]))], atol=TOL)


def test_upsert_is_idempotent_and_replaces_whole_records(store: VectorStore) -> None:
    name = create(store, dims=2, metric="dot")
    store.upsert(name, ["a", "b"], np.array([[1, 0], [0, 1]], np.float32), ["A", "B"],
                 [{"k": 1, "old": True}, {"k": 2}])
    store.upsert(name, ["a", "b"], np.array([[1, 0], [0, 1]], np.float32), ["A", "B"],
                 [{"k": 1, "old": True}, {"k": 2}])
    assert store.count(name) == 2
    store.upsert(name, ["a"], np.array([[0, 3]], np.float32), ["A2"], [{"k": 9}])
    assert store.count(name) == 2
    a = store.get(name, ["a"], include_vectors=True)[0]
    assert (a.text, a.metadata) == ("A2", {"k": 9})
    assert np.allclose(a.vector, [0, 3])
    hits = store.query(name, np.array([[0, 1]], np.float32), 1)[0]
    assert hits.ids == ["a"] and np.isclose(hits.scores[0], 3.0, atol=TOL)


def test_get_keeps_the_order_asked_and_skips_missing(store: VectorStore) -> None:
    name = create(store)
    ids = [f"id{i}" for i in range(20)]
    store.upsert(name, ids, np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32))
    asked = ["id7", "nope", "id3", "id19", "id0"]
    assert [r.id for r in store.get(name, asked)] == ["id7", "id3", "id19", "id0"]
    assert store.get(name, []) == []


def test_texts_returns_existing_ids_only(store: VectorStore) -> None:
    name = create(store)
    store.upsert(name, ["a", "b"], np.ones((2, 4), np.float32), ["alpha", None])
    assert store.texts(name, ["a", "b", "c"]) == {"a": "alpha", "b": None}


def test_update_metadata_keeps_vector_and_text(store: VectorStore) -> None:
    name = create(store, dims=2, metric="dot")
    store.upsert(name, ["a", "b"], np.array([[1, 2], [3, 4]], np.float32), ["A", "B"], [{"x": 1}, {"x": 2}])
    assert store.update_metadata(name, ["a", "zz"], [{"y": "new"}, {"y": "ignored"}]) == 1
    a, b = store.get(name, ["a", "b"], include_vectors=True)
    assert (a.text, a.metadata) == ("A", {"y": "new"})
    assert np.allclose(a.vector, [1, 2])
    assert b.metadata == {"x": 2}
    assert store.count(name, filters.parse({"y": "new"})) == 1
    assert store.count(name, filters.parse({"x": 1})) == 0
    assert store.get(name, ["zz"]) == []


def test_zero_row_upsert(store: VectorStore) -> None:
    name = create(store)
    store.upsert(name, [], np.zeros((0, 4), np.float32), [], [])
    assert store.count(name) == 0


@pytest.mark.parametrize(
    "vectors, error",
    [
        (np.ones((2, 5), np.float32), DimensionMismatch),
        (np.array([[1, 2, 3, 4], [np.nan, 0, 0, 0]], np.float32), SemkitError),
        (np.ones((3, 4), np.float32), SemkitError),  # three vectors for two ids
    ],
    ids=["wrong-dims", "nan", "length"],
)
def test_bad_upsert_writes_nothing(store: VectorStore, vectors: np.ndarray, error: type) -> None:
    name = create(store)
    store.upsert(name, ["keep"], np.ones((1, 4), np.float32), ["kept"], [{"v": 1}])
    with pytest.raises(error):
        store.upsert(name, ["keep", "new"], vectors, ["changed", "new"], [{"v": 2}, {"v": 3}])
    assert store.count(name) == 1
    assert store.get(name, ["keep"])[0].metadata == {"v": 1}


def test_query_with_wrong_dimensions(store: VectorStore) -> None:
    name = create(store)
    store.upsert(name, ["a"], np.ones((1, 4), np.float32))
    with pytest.raises(DimensionMismatch):
        store.query(name, np.ones((1, 3), np.float32), 1)


def test_unicode_ids_and_texts(store: VectorStore) -> None:
    name = create(store, dims=2)
    ids = ["dóc-é", "日本語", "emoji-🙂", "with space", "quote'\"", "a" * 200]
    texts = ["café crème", "東京の天気", "🙂 smile", "plain", "it's \"quoted\"", "long"]
    store.upsert(name, ids, np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32), texts,
                 [{"i": i} for i in range(6)])
    got = store.get(name, list(reversed(ids)))
    assert [r.id for r in got] == list(reversed(ids))
    assert [r.text for r in got] == list(reversed(texts))
    assert store.texts(name, ids) == dict(zip(ids, texts, strict=True))
    assert sorted(store.query(name, np.ones((1, 2), np.float32), 10)[0].ids) == sorted(ids)
    assert store.delete(name, ids=["日本語", "emoji-🙂"]) == 2
    assert store.count(name) == 4


# --- delete -------------------------------------------------------------------------------


def _small(store: VectorStore) -> str:
    name = create(store, dims=2)
    ids = [f"d{i}" for i in range(10)]
    store.upsert(name, ids, np.random.default_rng(2).normal(size=(10, 2)).astype(np.float32),
                 None, [{"n": i, "even": i % 2 == 0} for i in range(10)])
    return name


def test_delete_by_ids(store: VectorStore) -> None:
    name = _small(store)
    assert store.delete(name, ids=["d1", "d2", "missing"]) == 2
    assert store.count(name) == 8
    assert store.get(name, ["d1", "d2"]) == []
    assert store.delete(name, ids=["d1"]) == 0
    assert store.delete(name, ids=[]) == 0
    assert "d1" not in store.query(name, np.ones((1, 2), np.float32), 10)[0].ids


def test_delete_by_filter(store: VectorStore) -> None:
    name = _small(store)
    assert store.delete(name, where=filters.parse({"n": {"$gte": 7}})) == 3
    assert store.count(name) == 7
    assert store.count(name, filters.parse({"n": {"$gte": 7}})) == 0


def test_delete_by_ids_and_filter_is_the_intersection(store: VectorStore) -> None:
    name = _small(store)
    assert store.delete(name, ids=["d0", "d1", "d2", "d3"], where=filters.parse({"even": True})) == 2
    assert sorted(r.id for r in store.get(name, ["d0", "d1", "d2", "d3"])) == ["d1", "d3"]


def test_delete_needs_ids_or_filter(store: VectorStore) -> None:
    name = _small(store)
    with pytest.raises(InvalidInput):
        store.delete(name)
    assert store.count(name) == 10


def test_deleted_and_replaced_records_leave_the_search(store: VectorStore) -> None:
    # Approximate indexes are derived data: they must never answer with stale records.
    name = create(store, dims=8)
    rng = np.random.default_rng(3)
    ids = [f"s{i}" for i in range(300)]
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    store.upsert(name, ids, vectors)
    query = vectors[:1]
    assert store.query(name, query, 1)[0].ids == ["s0"]
    store.delete(name, ids=["s0"])
    assert "s0" not in store.query(name, query, 10)[0].ids
    store.upsert(name, ["s5"], query)
    first = store.query(name, query, 1)[0]
    assert first.ids == ["s5"] and np.isclose(first.scores[0], 1.0, atol=TOL)


# --- search -------------------------------------------------------------------------------


def test_empty_collection_query(store: VectorStore) -> None:
    name = create(store)
    answers = store.query(name, np.ones((2, 4), np.float32), 5)
    assert len(answers) == 2
    assert all(a.ids == [] and len(a.scores) == 0 for a in answers)
    assert store.count(name) == 0
    assert list(store.scan(name)) == []


def test_k_larger_than_count_returns_everything(store: VectorStore) -> None:
    name = _small(store)
    got = store.query(name, np.ones((1, 2), np.float32), 50)[0]
    assert sorted(got.ids) == sorted(f"d{i}" for i in range(10))
    got = store.query(name, np.ones((1, 2), np.float32), 50, where=filters.parse({"even": True}))[0]
    assert sorted(got.ids) == ["d0", "d2", "d4", "d6", "d8"]


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_exact_query_matches_brute_force(loaded: Loaded, metric: Metric) -> None:
    queries = np.random.default_rng(4).normal(size=(8, DIMS)).astype(np.float32)
    answers = loaded.store.query(loaded.names[metric], queries, 10, exact=True)
    assert len(answers) == len(queries)
    ref = reference_scores(queries, loaded.stored(metric), metric)
    for n, got in enumerate(answers):
        eligible = {i: float(ref[n, j]) for j, i in enumerate(loaded.ids)}
        assert_exact_top_k(got, eligible, 10, f"{metric} query {n}")


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_approximate_query_has_high_recall(loaded: Loaded, metric: Metric) -> None:
    queries = np.random.default_rng(5).normal(size=(20, DIMS)).astype(np.float32)
    answers = loaded.store.query(loaded.names[metric], queries, 10)
    ref = reference_scores(queries, loaded.stored(metric), metric)
    recall = []
    for n, got in enumerate(answers):
        assert len(got.ids) == 10 and len(set(got.ids)) == 10
        truth = {loaded.ids[j] for j in np.argsort(-ref[n])[:10]}
        recall.append(len(truth & set(got.ids)) / 10)
    assert np.mean(recall) >= 0.9, f"recall@10 {np.mean(recall):.2f}"


FILTERS: list[Any] = [
    {"year": 2010},
    {"year": {"$eq": 2010}},
    {"year": {"$ne": 2010}},
    {"year": {"$gt": 2015}},
    {"year": {"$gte": 2015}},
    {"year": {"$lt": 2005}},
    {"year": {"$lte": 2005}},
    {"year": {"$gte": 2005, "$lt": 2010}},
    {"year": {"$in": [2001, 2002.0, "2003"]}},
    {"year": {"$nin": [2001, 2002]}},
    {"year": 1999},
    {"price": {"$gt": 50.5}},
    {"price": {"$lte": 10}},
    {"price": {"$ne": 50}},
    {"price": {"$exists": False}},
    {"tag": "Gamma"},
    {"tag": {"$in": ["alpha", "épsilon"]}},
    {"tag": {"$nin": ["alpha", "beta"]}},
    {"tag": {"$gt": "a"}},
    {"tag": {"$lt": "delta"}},
    {"tag": {"$gte": "Gamma", "$lte": "beta"}},
    {"flag": True},
    {"flag": False},
    {"flag": {"$ne": True}},
    {"flag": 1},
    {"flag": {"$in": [True, 0]}},
    {"author.name": "ada"},
    {"author.name": {"$in": ["chloé", "Bob"]}},
    {"author.age": {"$gte": 40}},
    {"author.name": {"$exists": True}},
    {"author.name": {"$ne": "ada"}},
    {"author": {"$exists": False}},
    {"author": "anonymous"},
    {"note": None},
    {"note": {"$ne": None}},
    {"note": {"$exists": True}},
    {"note": {"$exists": False}},
    {"note": {"$in": [None, "x"]}},
    {"note": {"$nin": [None, "x"]}},
    {"note": {"$gt": "m"}},
    {"mixed": 3},
    {"mixed": "3"},
    {"mixed": True},
    {"mixed": None},
    {"mixed": {"$gt": 2}},
    {"mixed": {"$gte": "2"}},
    {"mixed": {"$ne": 3}},
    {"mixed": {"$in": [3, "3", False]}},
    {"mixed": {"$nin": [3, "x", None]}},
    {"rare": True},
    {"tag": "alpha", "flag": True},
    {"$or": [{"tag": "alpha"}, {"year": {"$lt": 2003}}]},
    {"$and": [{"tag": {"$ne": "beta"}}, {"flag": True}]},
    {"$or": [{"author.age": {"$lt": 30}}, {"$and": [{"price": {"$exists": False}}, {"year": 2020}]}]},
    {"$and": [{"$or": [{"flag": False}, {"note": None}]}, {"year": {"$gte": 2012}}]},
]
FILTER_IDS = [str(f).replace(" ", "") for f in FILTERS]


@pytest.mark.parametrize("where", FILTERS, ids=FILTER_IDS)
def test_filtered_query_is_the_exact_top_k_among_matches(loaded: Loaded, where: Any) -> None:
    queries = np.random.default_rng(6).normal(size=(3, DIMS)).astype(np.float32)
    node = filters.parse(where)
    for metric in ("cosine", "l2"):
        answers = loaded.store.query(loaded.names[metric], queries, 10, where=node)
        for n, got in enumerate(answers):
            eligible = eligible_scores(loaded, metric, queries[n], where)
            assert_exact_top_k(got, eligible, 10, f"{metric} {where} query {n}")


@pytest.mark.parametrize("where", FILTERS, ids=FILTER_IDS)
def test_count_with_filter(loaded: Loaded, where: Any) -> None:
    node = filters.parse(where)
    expected = sum(filters.matches(node, m) for m in loaded.metadata)
    assert loaded.store.count(loaded.names["cosine"], node) == expected


def test_selective_filter_still_returns_k(loaded: Loaded) -> None:
    where = {"rare": True}
    assert loaded.store.count(loaded.names["dot"], filters.parse(where)) == 20
    query = np.random.default_rng(7).normal(size=(1, DIMS)).astype(np.float32)
    got = loaded.store.query(loaded.names["dot"], query, 10, where=filters.parse(where))[0]
    assert_exact_top_k(got, eligible_scores(loaded, "dot", query[0], where), 10, "1% filter")


def test_scan_covers_everything_exactly_once(loaded: Loaded) -> None:
    name = loaded.names["l2"]
    seen: list[str] = []
    sizes = []
    by_id = dict(zip(loaded.ids, range(len(loaded.ids)), strict=True))
    for batch in loaded.store.scan(name, batch_size=333):
        sizes.append(len(batch))
        for record in batch[:5]:
            n = by_id[record.id]
            assert record.vector is not None
            assert np.allclose(record.vector, loaded.vectors[n], atol=1e-5)
            assert record.text == loaded.texts[n] and record.metadata == loaded.metadata[n]
        seen.extend(r.id for r in batch)
    assert max(sizes) <= 333
    assert len(seen) == len(set(seen)) == len(loaded.ids)
    assert set(seen) == set(loaded.ids)


def test_scan_with_filter_and_without_vectors(loaded: Loaded) -> None:
    where = {"tag": {"$in": ["beta", "Gamma"]}}
    node = filters.parse(where)
    expected = {i for i, m in zip(loaded.ids, loaded.metadata, strict=True) if filters.matches(node, m)}
    records = [r for b in loaded.store.scan(loaded.names["cosine"], 250, include_vectors=False, where=node)
               for r in b]
    assert {r.id for r in records} == expected and len(records) == len(expected)
    assert all(r.vector is None for r in records)


def test_several_queries_at_once(loaded: Loaded) -> None:
    queries = np.random.default_rng(8).normal(size=(3, DIMS)).astype(np.float32)
    together = loaded.store.query(loaded.names["dot"], queries, 5, exact=True)
    alone = [loaded.store.query(loaded.names["dot"], queries[n:n + 1], 5, exact=True)[0] for n in range(3)]
    assert [a.ids for a in together] == [a.ids for a in alone]


# --- keyword search -----------------------------------------------------------------------


def test_keyword_query(store: VectorStore) -> None:
    name = create(store, dims=2)
    texts = ["the quick brown fox", "a lazy dog sleeps", "quick quick quick fox jumps",
             "nothing to see", "Fox news about foxes"]
    store.upsert(name, [f"t{i}" for i in range(5)], np.ones((5, 2), np.float32), texts,
                 [{"n": i} for i in range(5)])
    try:
        got = store.keyword_query(name, "quick fox", 10)
    except NotImplementedError:
        pytest.skip("this backend has no keyword search")
    assert set(got.ids) >= {"t0", "t2"}
    assert "t1" not in got.ids and "t3" not in got.ids
    assert set(got.ids[:2]) == {"t0", "t2"}
    assert np.all(np.diff(np.asarray(got.scores, dtype=np.float64)) <= TOL)
    assert all(s > 0 for s in got.scores)
    filtered = store.keyword_query(name, "quick fox", 10, where=filters.parse({"n": {"$gt": 0}}))
    assert "t0" not in filtered.ids and filtered.ids[0] == "t2"
    assert store.keyword_query(name, "zebra", 10).ids == []
    assert len(store.keyword_query(name, "fox", 1).ids) == 1


def test_records_are_copies(store: VectorStore) -> None:
    name = create(store)
    meta = {"a": {"b": 1}}
    store.upsert(name, ["x"], np.ones((1, 4), np.float32), ["t"], [meta])
    meta["a"]["b"] = 2  # the caller's dict changing must not change the store
    got = store.get(name, ["x"])[0]
    assert got.metadata == {"a": {"b": 1}}
    got.metadata["a"]["b"] = 3
    assert store.get(name, ["x"])[0].metadata == {"a": {"b": 1}}
    assert isinstance(got, Record)


def test_one_store_shared_by_threads(store: VectorStore) -> None:
    # The server calls one store from a thread pool: concurrent writes and reads must all land.
    import threading

    name = create(store, dims=4)
    errors: list[BaseException] = []
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(4, 50, 4)).astype(np.float32)

    def write(t: int) -> None:
        try:
            for start in range(0, 50, 10):
                ids = [f"t{t}-{i}" for i in range(start, start + 10)]
                store.upsert(name, ids, vectors[t, start:start + 10], None, [{"t": t}] * 10)
                store.query(name, vectors[t, start:start + 1], 3)
                store.count(name, filters.parse({"t": t}))
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert store.count(name) == 200
    assert all(store.count(name, filters.parse({"t": t})) == 50 for t in range(4))
    first = store.query(name, vectors[2, 7:8], 1, exact=True)[0]
    assert first.ids == ["t2-7"]


@pytest.mark.parametrize("label", ["Docs", "my-docs", "docs.v2", "with space", "café"])
def test_collection_names_round_trip_or_are_refused(store: VectorStore, label: str) -> None:
    # A backend may refuse a name it cannot hold (InvalidInput), but never mangle it.
    name = f"{label}_{unique()}"
    try:
        store.create_collection(CollectionSpec(name=name, dimensions=2))
    except InvalidInput:
        return
    assert store.get_collection(name) is not None
    assert name in {s.name for s in store.list_collections()}
    store.upsert(name, ["a"], np.ones((1, 2), np.float32))
    assert store.count(name) == 1
    assert store.get_collection(name.lower() if name != name.lower() else name.upper()) is None


# --- filters at the sizes users reach: every backend accepts what the others accept ---------

def _nested_and(depth: int) -> dict[str, Any]:
    where: dict[str, Any] = {"year": {"$gte": 2005}}
    for _ in range(depth - 1):
        where = {"$and": [where, {"tag": {"$ne": "beta"}}]}
    return where


def _large_filters(n: int) -> dict[str, Any]:
    """Filters past SQLite's old limits (997 values, expression depth 1,000) with ``n`` values."""
    return {
        "in-numbers": {"year": {"$in": list(range(1000, 1000 + n))}},
        "in-strings": {"tag": {"$in": [f"t{i}" for i in range(n)] + ["alpha", "épsilon"]}},
        "in-mixed-kinds": {"mixed": {"$in": [3, "3", True, None, 2.0, *range(100, 100 + n)]}},
        "nin": {"year": {"$nin": list(range(2000, 2010)) + list(range(5000, 5000 + n))}},
        "or": {"$or": [{"year": 1990 + i % 30} for i in range(n)]},
        "and-30-deep": _nested_and(30),
        "huge-int": {"year": {"$lt": 10**300}},
    }


LARGE_FILTER_NAMES = list(_large_filters(1))


@pytest.mark.parametrize("name", LARGE_FILTER_NAMES)
def test_large_filters_answer_as_the_reference_does(loaded: Loaded, backend: str, name: str) -> None:
    # Qdrant's local mode evaluates payload filters in pure Python (values x records): a
    # smaller list keeps it to seconds; the SQL backends get lists past SQLite's old limits.
    where = _large_filters(300 if backend == "qdrant" else 1200)[name]
    node = filters.parse(where)
    expected = sum(filters.matches(node, m) for m in loaded.metadata)
    assert loaded.store.count(loaded.names["cosine"], node) == expected
    query = np.random.default_rng(8).normal(size=(1, DIMS)).astype(np.float32)
    got = loaded.store.query(loaded.names["l2"], query, 10, where=node)[0]
    assert_exact_top_k(got, eligible_scores(loaded, "l2", query[0], where), 10, f"large filter {name}")


@pytest.mark.parametrize("where", [
    _nested_and(40),
    {"year": 10**400},
    {"tag": "\ud800"},
    {"$or": [{"year": i} for i in range(5000)]},
    {"year": {"$in": list(range(100_001))}},
], ids=["too-deep", "int-beyond-double", "lone-surrogate", "too-many-clauses", "in-too-long"])
def test_filters_beyond_the_limits_are_invalid_filter_errors(where: Any) -> None:
    with pytest.raises(filters.InvalidFilter):
        filters.parse(where)


def test_creating_an_existing_collection_is_collection_exists(store: VectorStore) -> None:
    from semkit.errors import CollectionExists

    spec = CollectionSpec(name=unique("twice"), dimensions=DIMS)
    store.create_collection(spec)
    with pytest.raises(CollectionExists):
        store.create_collection(spec)


def test_first_use_creation_racing_another_process_opens_its_collection(tmp_path: Any) -> None:
    """Two processes open the same new collection at once: the loser of the creation race opens
    the winner's collection instead of failing (seen with 200 processes on one store)."""
    import semkit
    from semkit.store.embedded import EmbeddedStore

    db = semkit.connect(tmp_path / "kb")
    other = EmbeddedStore(tmp_path / "kb")
    real_create = db._store.create_collection

    def create_after_the_other_process(spec: CollectionSpec) -> None:
        other.create_collection(spec)  # the other process wins the race
        real_create(spec)

    db._store.create_collection = create_after_the_other_process  # type: ignore[method-assign]
    col = db.collection("side", model=None, dimensions=DIMS)
    assert col.name == "side" and col.dimensions == DIMS
    other.close()
    db.close()
