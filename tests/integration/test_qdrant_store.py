"""Qdrant store on qdrant-client's local mode: moving collections between the embedded store
and Qdrant without re-embedding, the ``qdrant+local://`` scheme, and reopening from disk.

The full ``VectorStore`` contract runs in ``tests/contract`` (``SEMKIT_CONTRACT_BACKENDS=qdrant``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import semkit
from semkit.errors import CollectionNotFound, InvalidInput, StoreError
from semkit.models.base import Embedder

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install 'semkit[qdrant]')")

from semkit.store.qdrant import QdrantStore, _indexable, compile_filter
from tests.support.shared_data import banking_sample


@pytest.fixture(scope="module")
def local_model() -> Embedder:
    return semkit.model("local")


def test_export_from_embedded_import_into_qdrant_gives_identical_results(
        tmp_path: Path, local_model: Embedder) -> None:
    ids, texts, metadata = banking_sample(120, "b")
    queries = local_model.embed(["where is my card", "exchange rate fee", "cash withdrawal"], "query")
    where = {"n": {"$lt": 60}}
    with semkit.connect(tmp_path / "kb") as db:
        docs = db.collection("bank", model=local_model)
        docs.upsert(ids=ids, texts=texts, metadata=metadata)
        before = [[(h.id, h.score) for h in docs.search(q, k=10)] for q in queries]
        before_filtered = [[h.id for h in docs.search(q, k=5, where=where)] for q in queries]
        assert docs.export(tmp_path / "bank.parquet") == len(ids)
    with semkit.connect(f"qdrant+local://{tmp_path / 'qdrant'}") as qdb:
        assert qdb.import_collection("bank", tmp_path / "bank.parquet") == len(ids)
        copy = qdb.collection("bank")
        assert copy.spec.embedder == local_model.id and len(copy) == len(ids)
        after = [[(h.id, h.score) for h in copy.search(q, k=10)] for q in queries]
        after_filtered = [[h.id for h in copy.search(q, k=5, where=where)] for q in queries]
        record = copy.get(["b007"])[0]
        assert (record.text, record.metadata) == (texts[7], metadata[7])
    for b, a in zip(before, after, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b]
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5)
    assert after_filtered == before_filtered


def test_qdrant_collection_exports_back_to_embedded(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    ids = [f"v{i}" for i in range(50)]
    with semkit.connect(f"qdrant+local://{tmp_path / 'q'}") as qdb:
        coll = qdb.collection("vecs", model=None, dimensions=8, metric="l2")
        coll.upsert(ids=ids, vectors=vectors, metadata=[{"odd": i % 2 == 1} for i in range(50)])
        want = [h.id for h in coll.search(vectors[0] + 0.01, k=5, where={"odd": False})]
        assert coll.export(tmp_path / "vecs.jsonl") == 50
    with semkit.connect(tmp_path / "kb") as db:
        assert db.import_collection("vecs", tmp_path / "vecs.jsonl") == 50
        back = db.collection("vecs")
        assert back.metric == "l2"
        assert [h.id for h in back.search(vectors[0] + 0.01, k=5, where={"odd": False}, exact=True)] == want
    assert want[0] == "v0"


def test_local_store_reopens_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "q"
    store = QdrantStore(str(path), local=True)
    with pytest.raises(StoreError, match="one client per folder"):
        QdrantStore(str(path), local=True)  # local mode locks its folder
    store.close()
    with semkit.connect(f"qdrant+local://{path}") as db:
        coll = db.collection("persist", model=None, dimensions=3)
        coll.upsert(ids=["a", "b"], vectors=np.eye(3, dtype=np.float32)[:2], texts=["A", "B"])
    with semkit.connect(f"qdrant+local://{path}") as db:
        assert db.collections() == ["persist"]
        coll = db.collection("persist")
        assert coll.dimensions == 3 and len(coll) == 2
        assert coll.search(np.array([0, 1, 0], np.float32), k=1)[0].text == "B"


def test_options_and_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="quantization"):
        QdrantStore(":memory:", local=True, quantization="pq")
    store = QdrantStore(":memory:", local=True, on_disk=True, quantization="int8")
    try:
        from semkit.store.base import CollectionSpec

        with pytest.raises(InvalidInput, match="cannot hold"):
            store.create_collection(CollectionSpec(name="a/b", dimensions=2))
        store.create_collection(CollectionSpec(name="ok", dimensions=2, options={"shard_number": 2}))
        assert store.get_collection("ok") is not None
        with pytest.raises(CollectionNotFound):
            store.count("missing")
    finally:
        store.close()


def test_filters_that_qdrant_cannot_express_exactly_are_not_pushed_down() -> None:
    from semkit.store import filters

    # $ne matches missing fields and $exists counts null as present: no safe Qdrant condition.
    assert compile_filter(filters.parse({"a": {"$ne": 1}})) is None
    assert compile_filter(filters.parse({"a": {"$exists": True}})) is None
    assert compile_filter(filters.parse({"$or": [{"a": 1}, {"b": {"$nin": [1]}}]})) is None
    assert compile_filter(filters.parse({"a": {"$gt": "m"}})) is None
    assert compile_filter(filters.parse({"a": 1, "b": {"$ne": 2}})) is not None


def test_filtered_fields_get_payload_indexes_of_the_right_kind() -> None:
    # Server-only behaviour (local mode has no payload indexes): check which indexes a filter asks for.
    from qdrant_client import models

    from semkit.store import filters

    compiled = compile_filter(filters.parse(
        {"tag": {"$in": ["a", "b"]}, "year": {"$gte": 2020}, "flag": True, "note": {"$ne": "x"}}))
    assert sorted(set(_indexable(compiled))) == sorted({
        ("meta.tag", models.PayloadSchemaType.KEYWORD),
        ("meta.year", models.PayloadSchemaType.FLOAT),
        ("meta.flag", models.PayloadSchemaType.BOOL),
    })


def test_unreachable_server_is_a_retryable_store_error_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server path through the same client calls: nothing listens on port 9 of 127.0.0.1.
    secret = "sk-test-secret-qdrant-key"
    monkeypatch.setenv("QDRANT_API_KEY", secret)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qdrant-client warns about an api key over plain HTTP
        db = semkit.connect("qdrant://127.0.0.1:9", retries=0)
    with db, pytest.raises(StoreError) as info:
        db.collections()
    assert info.value.retryable
    assert "127.0.0.1:9" in str(info.value) and secret not in str(info.value)


def test_search_is_one_request_per_query_that_brings_the_payload(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``Collection.search`` asks Qdrant once per query (``query_points`` with the payload), with no
    second fetch of the hits: every client request goes through ``QdrantStore._call``, counted here
    around the real client."""
    rng = np.random.default_rng(3)
    data = rng.normal(size=(200, 16)).astype(np.float32)
    with semkit.connect(f"qdrant+local://{tmp_path / 'q'}") as db:
        docs = db.collection("v", model=None, dimensions=16)
        docs.upsert(ids=[f"p{i}" for i in range(200)], vectors=data, texts=[f"text {i}" for i in range(200)],
                    metadata=[{"n": i} for i in range(200)])
        store = db.store
        assert isinstance(store, QdrantStore)
        requests: list[str] = []
        real_call = store._call

        def counted(what: str, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
            requests.append(what)
            return real_call(what, fn, *args, **kwargs)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode warns about search params it ignores
            docs.search(data[0], k=3)  # the first search reads the collection's spec once
            monkeypatch.setattr(store, "_call", counted)
            hits = [docs.search(q, k=3) for q in data[:5]]
        assert requests == ["query"] * 5
        assert [h[0].id for h in hits] == [f"p{i}" for i in range(5)]
        assert [(h[0].text, h[0].metadata) for h in hits] == [(f"text {i}", {"n": i}) for i in range(5)]
