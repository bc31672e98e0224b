"""The official ``pinecone`` SDK against a real ``semkit serve``: each collection is an index host
(``/pinecone/<collection>``), namespaces are collections, errors raise the SDK's own classes.

Answers are checked against a brute-force NumPy computation over the vectors the test sent, so a
route that returned the wrong records, order, scores or metadata fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from semkit.store import filters
from tests.support.server import RunningServer, serve

pinecone = pytest.importorskip("pinecone", reason="the pinecone SDK is not installed (dev extra)")

DIMS = 48
N = 240
GROUPS = ("news", "sport", "science")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(str(tmp_path_factory.mktemp("pinecone") / "kb"), preload=False) as running:
        yield running


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return server.state.keys.create(name="pinecone")[0]


def rest(server: RunningServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def create_index(server: RunningServer, key: str, name: str, metric: str, dims: int = DIMS) -> Any:
    """A collection made the semkit way, then addressed by the SDK as an index host."""
    with rest(server, key) as client:
        r = client.post("/v1/collections", json={"name": name, "model": None, "dimensions": dims, "metric": metric})
        assert r.status_code == 201, r.text
    return pinecone.Pinecone(api_key=key).Index(host=f"{server.url}/pinecone/{name}")


def corpus(seed: int = 7) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(N, DIMS)).astype(np.float32)
    ids = [f"v{i:03d}" for i in range(N)]
    metadata: list[dict[str, Any]] = [{"group": GROUPS[i % 3], "n": i} for i in range(N)]
    for i in range(0, N, 10):
        metadata[i]["flagged"] = True
    return ids, vectors, metadata


def brute_force(query: np.ndarray, vectors: np.ndarray, metadata: list[dict[str, Any]], ids: list[str],
                k: int, where: dict[str, Any] | None) -> list[tuple[str, float]]:
    """The dot-product top ``k`` among the records ``where`` matches (semkit's reference semantics)."""
    node = filters.parse(where)
    keep = [i for i, m in enumerate(metadata) if filters.matches(node, m)]
    scores = vectors[keep] @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [(ids[keep[j]], float(scores[j])) for j in order]


WHERES: list[dict[str, Any] | None] = [
    None,
    {"group": "news"},
    {"group": {"$in": ["news", "science"]}, "n": {"$gte": 100}},
    {"$or": [{"n": {"$lt": 20}}, {"flagged": {"$exists": True}}]},
    {"group": {"$ne": "sport"}, "n": {"$lte": 150, "$gt": 30}},
    {"$and": [{"group": {"$nin": ["news"]}}, {"flagged": {"$exists": False}}]},
]


def test_upsert_then_query_with_filters_matches_brute_force(server: RunningServer, key: str) -> None:
    index = create_index(server, key, "dotidx", "dot")
    ids, vectors, metadata = corpus()
    rows = [{"id": i, "values": v.tolist(), "metadata": m} for i, v, m in zip(ids, vectors, metadata, strict=True)]
    result = index.upsert(vectors=rows, batch_size=100, show_progress=False)
    assert result.upserted_count == N and not result.has_errors
    queries = np.random.default_rng(1).normal(size=(4, DIMS)).astype(np.float32)
    for where in WHERES:
        for q in queries:
            answer = index.query(vector=q.tolist(), top_k=10, filter=where, include_metadata=True)
            want = brute_force(q, vectors, metadata, ids, 10, where)
            assert [m.id for m in answer.matches] == [i for i, _ in want], where
            assert np.allclose([m.score for m in answer.matches], [s for _, s in want], atol=1e-4)
            assert all(m.metadata == metadata[ids.index(m.id)] for m in answer.matches)
            assert all(m.values == [] for m in answer.matches)  # not asked for


def test_fetch_and_query_by_id_return_what_was_upserted(server: RunningServer, key: str) -> None:
    index = create_index(server, key, "fetchidx", "dot")
    ids, vectors, metadata = corpus(seed=3)
    index.upsert(vectors=[(i, v.tolist(), m) for i, v, m in zip(ids[:30], vectors, metadata, strict=False)])
    fetched = index.fetch(ids=["v000", "v007", "missing"])
    assert set(fetched.vectors) == {"v000", "v007"}
    assert np.allclose(fetched.vectors["v007"].values, vectors[7], atol=1e-6)
    assert fetched.vectors["v007"].metadata == metadata[7]
    by_id = index.query(id="v007", top_k=3, include_values=True)
    want = brute_force(vectors[7], vectors[:30], metadata[:30], ids[:30], 3, None)
    assert [m.id for m in by_id.matches] == [i for i, _ in want]
    assert np.allclose(by_id.matches[0].values, vectors[int(want[0][0][1:])], atol=1e-6)
    assert index.query(id="missing", top_k=3).matches == []


def test_euclidean_scores_are_squared_distances_nearest_first(server: RunningServer, key: str) -> None:
    index = create_index(server, key, "l2idx", "l2", dims=3)
    index.upsert(vectors=[("near", [1.0, 0.0, 0.0]), ("far", [4.0, 4.0, 0.0])])
    answer = index.query(vector=[0.0, 0.0, 0.0], top_k=2)
    assert [(m.id, round(m.score, 4)) for m in answer.matches] == [("near", 1.0), ("far", 32.0)]
    assert index.describe_index_stats().metric == "euclidean"


def test_namespaces_are_collections_and_stats_count_them(server: RunningServer, key: str) -> None:
    index = create_index(server, key, "nsidx", "dot")
    ids, vectors, metadata = corpus(seed=5)
    index.upsert(vectors=[(i, v.tolist(), m) for i, v, m in zip(ids[:20], vectors, metadata, strict=False)])
    index.upsert(vectors=[(i, v.tolist(), m) for i, v, m in zip(ids[20:32], vectors[20:], metadata[20:],
                                                                  strict=False)], namespace="tenant-a")
    stats = index.describe_index_stats()
    assert stats.total_vector_count == 32 and stats.dimension == DIMS and stats.metric == "dotproduct"
    assert {ns: s.vector_count for ns, s in stats.namespaces.items()} == {"": 20, "tenant-a": 12}
    filtered = index.describe_index_stats(filter={"group": "news"})
    assert filtered.namespaces["tenant-a"].vector_count == sum(m["group"] == "news" for m in metadata[20:32])

    in_a = index.query(vector=vectors[25].tolist(), top_k=50, namespace="tenant-a")
    assert sorted(m.id for m in in_a.matches) == ids[20:32]  # nothing of the default namespace
    assert index.query(vector=vectors[0].tolist(), top_k=5, namespace="nobody").matches == []
    with rest(server, key) as client:  # the namespace is a plain collection to semkit
        names = [c["name"] for c in client.get("/v1/collections").json()]
        assert "nsidx::tenant-a" in names

    index.delete(delete_all=True, namespace="tenant-a")
    assert set(index.describe_index_stats().namespaces) == {""}
    with rest(server, key) as client:
        assert "nsidx::tenant-a" not in [c["name"] for c in client.get("/v1/collections").json()]


def test_delete_by_ids_filter_and_all_then_update(server: RunningServer, key: str) -> None:
    index = create_index(server, key, "delidx", "dot")
    ids, vectors, metadata = corpus(seed=9)
    index.upsert(vectors=[(i, v.tolist(), m) for i, v, m in zip(ids[:60], vectors, metadata, strict=False)])
    index.delete(ids=["v000", "v001"])
    assert index.fetch(ids=["v000", "v001", "v002"]).vectors.keys() == {"v002"}
    index.delete(filter={"group": "sport"})
    left = [m for i, m in enumerate(metadata[:60]) if i > 1 and m["group"] != "sport"]
    assert index.describe_index_stats().total_vector_count == len(left)

    assert index.update(id="v002", set_metadata={"group": "archive", "text": "an archived note"}).matched_records == 1
    got = index.fetch(ids=["v002"]).vectors["v002"]
    assert got.metadata == {**metadata[2], "group": "archive", "text": "an archived note"}
    assert np.allclose(got.values, vectors[2], atol=1e-6)  # metadata change keeps the vector
    index.update(id="v002", values=[0.5] * DIMS)
    assert np.allclose(index.fetch(ids=["v002"]).vectors["v002"].values, [0.5] * DIMS)
    science = sum(m["group"] == "science" for m in left if m["n"] != 2)  # v002 is in "archive" now
    assert index.update(filter={"group": "science"}, set_metadata={"reviewed": True}, dry_run=True).matched_records \
        == science
    assert index.describe_index_stats(filter={"reviewed": True}).total_vector_count == 0  # dry run changed nothing
    index.update(filter={"group": "science"}, set_metadata={"reviewed": True})
    assert index.describe_index_stats(filter={"reviewed": True}).total_vector_count == science

    index.delete(delete_all=True)  # the default namespace: emptied, the index stays
    stats = index.describe_index_stats()
    assert stats.total_vector_count == 0 and stats.dimension == DIMS


def test_metadata_text_is_the_records_text_for_keyword_search(server: RunningServer, key: str) -> None:
    index = create_index(server, key, "textidx", "dot", dims=4)
    index.upsert(vectors=[("a", [1, 0, 0, 0], {"text": "the quarterly revenue report", "kind": "doc"}),
                          ("b", [0, 1, 0, 0], {"text": "a recipe for tomato soup"})])
    with rest(server, key) as client:
        r = client.post("/v1/collections/textidx/search", json={"query": "tomato soup", "mode": "keyword", "k": 2})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert hits[0]["id"] == "b" and hits[0]["text"] == "a recipe for tomato soup"
        # A record written by semkit shows its text where a Pinecone client looks for it.
        client.post("/v1/collections/textidx/upsert",
                    json={"records": [{"id": "c", "text": "written by semkit", "vector": [0, 0, 1, 0]}]})
    assert index.fetch(ids=["a", "c"]).vectors["c"].metadata == {"text": "written by semkit"}
    assert index.fetch(ids=["a"]).vectors["a"].metadata == {"text": "the quarterly revenue report", "kind": "doc"}


def test_errors_raise_the_sdks_own_classes(server: RunningServer, key: str) -> None:
    from pinecone.errors.exceptions import ApiError, ForbiddenError, NotFoundError, UnauthorizedError

    index = create_index(server, key, "erridx", "dot", dims=3)
    index.upsert(vectors=[("a", [1, 0, 0], {"n": 1})])
    bad_key = pinecone.Pinecone(api_key="sk-semkit-000000000000-not-a-real-secret").Index(
        host=f"{server.url}/pinecone/erridx")
    with pytest.raises(UnauthorizedError) as unauthorized:
        bad_key.describe_index_stats()
    assert unauthorized.value.status_code == 401 and "semkit keys create" in str(unauthorized.value)
    with pytest.raises(NotFoundError, match="no index 'absent'"):
        pinecone.Pinecone(api_key=key).Index(host=f"{server.url}/pinecone/absent").query(vector=[1, 0, 0], top_k=1)
    with pytest.raises(ApiError) as unsupported:
        index.query(vector=[1, 0, 0], top_k=1, filter={"n": {"$regex": "1"}})
    assert unsupported.value.status_code == 400 and "$regex" in str(unsupported.value) \
        and "$exists" in str(unsupported.value)  # it names the operators it knows
    with pytest.raises(ApiError) as wrong_dims:
        index.upsert(vectors=[("b", [1.0, 0.0])])
    assert wrong_dims.value.status_code == 400 and "3 dimensions" in str(wrong_dims.value)
    with pytest.raises(ApiError) as sparse:
        index.upsert(vectors=[{"id": "s", "values": [1, 0, 0], "sparse_values": {"indices": [1], "values": [0.5]}}])
    assert sparse.value.status_code == 400 and "dense" in str(sparse.value)
    assert sparse.value.body["code"] == 3 and sparse.value.body["details"] == []  # Pinecone's error shape
    with pytest.raises(ApiError) as bad_namespace:
        index.upsert(vectors=[("n", [1, 0, 0])], namespace="../other")
    assert bad_namespace.value.status_code == 400 and "namespace '../other'" in str(bad_namespace.value)

    read_only = server.state.keys.create(name="ro", read_only=True)[0]
    with pytest.raises(ForbiddenError):
        pinecone.Pinecone(api_key=read_only).Index(host=f"{server.url}/pinecone/erridx").upsert(
            vectors=[("c", [0, 1, 0])])
    tenant = server.state.keys.create(name="tenant", collections=["erridx::tenant-a"])[0]
    scoped = pinecone.Pinecone(api_key=tenant).Index(host=f"{server.url}/pinecone/erridx")
    scoped.upsert(vectors=[("t", [0, 0, 1])], namespace="tenant-a")  # its own namespace: allowed
    with pytest.raises(ForbiddenError):
        scoped.query(vector=[1, 0, 0], top_k=1)  # the default namespace is another collection
    assert index.fetch(ids=["a"]).vectors["a"].metadata == {"n": 1}  # nothing failed half-way


def test_api_key_header_works_on_every_route(server: RunningServer, key: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/v1/collections", headers={"Api-Key": key}).status_code == 200
        assert client.get("/v1/collections", headers={"Api-Key": "sk-semkit-0-x"}).status_code == 401
        missing = client.get("/v1/collections")
        assert missing.status_code == 401 and "Api-Key" in missing.json()["error"]["message"]
