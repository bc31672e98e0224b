"""The ``Collection`` contract on every backend: what a user gets from ``db.collection``.

Uses ``HashEmbedder`` (a real, deterministic bag-of-words embedder) so the suite stays fast;
``tests/integration/test_collection_local_model.py`` repeats the key checks with the real model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semkit.collection import Collection
from semkit.database import Database
from semkit.errors import DimensionMismatch, InvalidInput, ModelMismatch
from semkit.store.base import VectorStore
from tests.contract.conftest import unique
from tests.support.hash_embedder import HashEmbedder

DOCS = {
    "doc1": ("machine learning basics: models learn from data", {"title": "ML Basics", "year": 2021}),
    "doc2": ("pizza guide: dough, oven and mozzarella", {"title": "Pizza Guide"}),
    "doc3": ("deep learning trains neural networks on data", {"title": "Deep Learning", "year": 2019}),
    "doc4": ("bread baking with a sourdough starter and an oven", {"title": "Bread", "year": 2023}),
}


@pytest.fixture
def db(store: VectorStore) -> Database:
    return Database(store)


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(64)


@pytest.fixture
def docs(db: Database, embedder: HashEmbedder) -> Collection:
    col = db.collection(unique("docs"), model=embedder)
    col.upsert(ids=list(DOCS), texts=[t for t, _ in DOCS.values()], metadata=[m for _, m in DOCS.values()])
    return col


def test_search_and_filters(docs: Collection, embedder: HashEmbedder) -> None:
    hits = docs.search("machine learning", k=2)
    assert hits[0].id == "doc1"
    assert (hits[0].text, hits[0].metadata) == (DOCS["doc1"][0], DOCS["doc1"][1])
    assert hits[0].score >= hits[1].score
    assert embedder.calls[-1] == ("query", ["machine learning"])
    filtered = docs.search("machine learning", k=5, where={"year": {"$gte": 2020}})
    assert [h.id for h in filtered] == ["doc1", "doc4"]
    assert [h.id for h in docs.search("pizza oven", k=1)] == ["doc2"]


def test_unchanged_texts_are_not_embedded_again(docs: Collection, embedder: HashEmbedder) -> None:
    before = embedder.texts_embedded
    result = docs.upsert(ids=["doc1", "doc2", "doc5"],
                         texts=[DOCS["doc1"][0], "pizza guide, second edition", "a brand new text"],
                         metadata=[{"title": "ML Basics", "year": 2022}, None, {"title": "New"}])
    assert embedder.texts_embedded - before == 2
    assert (result.count, result.embedded, result.unchanged) == (3, 2, 1)
    doc1, doc2, doc5 = docs.get(["doc1", "doc2", "doc5"])
    assert doc1.metadata == {"title": "ML Basics", "year": 2022}
    assert (doc2.text, doc2.metadata) == ("pizza guide, second edition", {"title": "Pizza Guide"})
    assert doc5.metadata == {"title": "New"}
    assert len(docs) == 5


def test_metadata_only_update_never_calls_the_model(docs: Collection, embedder: HashEmbedder) -> None:
    before = len(embedder.calls)
    docs.upsert(ids=["doc2"], metadata=[{"title": "Pizza", "year": 2024}])
    assert len(embedder.calls) == before
    got = docs.get("doc2")[0]
    assert (got.text, got.metadata) == (DOCS["doc2"][0], {"title": "Pizza", "year": 2024})
    assert [h.id for h in docs.search("pizza", k=1, where={"year": 2024})] == ["doc2"]


def test_get_delete_count(docs: Collection) -> None:
    assert [r.id for r in docs.get(["doc3", "nope", "doc1"])] == ["doc3", "doc1"]
    assert docs.count({"year": {"$exists": True}}) == 3
    assert docs.delete(ids=["doc2"]) == 1
    assert docs.delete(where={"year": {"$lt": 2020}}) == 1
    assert len(docs) == 2
    assert sorted(r.id for r in docs) == ["doc1", "doc4"]
    assert docs.info()["count"] == 2


def test_reopen_uses_the_recorded_model_and_refuses_another(db: Database, docs: Collection,
                                                            embedder: HashEmbedder) -> None:
    again = db.collection(docs.name, model=embedder)
    assert [h.id for h in again.search("pizza", k=1)] == ["doc2"]
    with pytest.raises(ModelMismatch, match="reembed"):
        db.collection(docs.name, model=HashEmbedder(64, name="other"))
    with pytest.raises(DimensionMismatch):
        db.collection(docs.name, dimensions=32)
    assert docs.name in db.collections()


def test_reembed_switches_model_and_dimensions(db: Database, docs: Collection, store: VectorStore) -> None:
    new = HashEmbedder(32, name="other")
    docs.reembed(model=new, batch_size=3)
    assert docs.spec.embedder == new.id and docs.dimensions == 32
    assert new.texts_embedded == len(DOCS)
    assert len(docs) == len(DOCS)
    assert [h.id for h in docs.search("pizza oven", k=1)] == ["doc2"]
    assert docs.get("doc1")[0].metadata == DOCS["doc1"][1]
    assert store.get_collection(docs.name + "__reembed") is None
    reopened = db.collection(docs.name, model=new)
    assert reopened.dimensions == 32


def test_reembed_refuses_records_without_text(db: Database, embedder: HashEmbedder) -> None:
    col = db.collection(unique("mixed"), model=embedder)
    col.upsert(ids=["t"], texts=["has text"])
    col.upsert(ids=["v"], vectors=np.ones((1, 64), np.float32))
    with pytest.raises(InvalidInput, match="no text"):
        col.reembed(model=HashEmbedder(16, name="other"))
    assert col.spec.embedder == embedder.id and len(col) == 2


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_export_import_round_trip_without_reembedding(
    db: Database, docs: Collection, embedder: HashEmbedder, tmp_path: Path, suffix: str,
) -> None:
    path = tmp_path / f"docs{suffix}"
    assert docs.export(path) == len(DOCS)
    calls = len(embedder.calls)
    other = db.collection(unique("copy"), model=embedder)
    assert other.import_(path) == len(DOCS)
    assert len(embedder.calls) == calls
    for a, b in zip(docs.get(list(DOCS), include_vectors=True), other.get(list(DOCS), include_vectors=True),
                    strict=True):
        assert (a.id, a.text, a.metadata) == (b.id, b.text, b.metadata)
        assert np.allclose(a.vector, b.vector, atol=1e-6)
    created = unique("created")
    assert db.import_collection(created, path) == len(DOCS)
    assert db.collection(created, model=embedder).search("pizza", k=1)[0].id == "doc2"
    with pytest.raises(ModelMismatch):
        db.collection(unique("wrong"), model=HashEmbedder(64, name="other")).import_(path)


def test_own_vectors_collection(db: Database) -> None:
    col = db.collection(unique("vecs"), model=None, dimensions=3, metric="l2")
    col.upsert(ids=["a", "b", "c"], vectors=[[0, 0, 0], [1, 0, 0], [5, 5, 5]],
               metadata=[{"n": 1}, {"n": 2}, {"n": 3}])
    hits = col.search([0.9, 0, 0], k=2)
    assert [h.id for h in hits] == ["b", "a"]
    assert hits[0].score == pytest.approx(-0.1, abs=1e-4)
    assert [h.id for h in col.search([0.9, 0, 0], k=2, where={"n": {"$gt": 2}})] == ["c"]
    with pytest.raises(DimensionMismatch):
        col.upsert(ids=["d"], vectors=[[1, 2]])
    with pytest.raises(InvalidInput, match="no model"):
        col.search("text query")
    assert len(col) == 3
