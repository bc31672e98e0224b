"""The issue's example end to end with the real bundled model (all-MiniLM-L6-v2, offline) on
the embedded default store and the in-memory reference store."""

from __future__ import annotations

from pathlib import Path

import pytest

import semkit
from semkit.collection import Collection
from semkit.database import Database
from semkit.errors import ModelMismatch
from semkit.models.base import Embedder
from tests.support.hash_embedder import HashEmbedder

IDS = ["doc1", "doc2", "doc3"]
TEXTS = ["ML basics", "Pizza guide", "Training neural networks with gradient descent"]
METADATA = [{"title": "ML Basics", "year": 2021}, {"title": "Pizza Guide"},
            {"title": "Neural Nets", "year": 2019}]


@pytest.fixture(scope="module")
def local_model() -> Embedder:
    return semkit.model("local")


@pytest.fixture(params=["embedded", "memory"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "kb") if request.param == "embedded" else "memory://"


def _docs(db: Database, model: Embedder) -> Collection:
    docs = db.collection("docs", model=model)
    docs.upsert(ids=IDS, texts=TEXTS, metadata=METADATA)
    return docs


def test_issue_example(uri: str, local_model: Embedder) -> None:
    with semkit.connect(uri) as db:
        docs = _docs(db, local_model)
        assert docs.spec.embedder == local_model.id == "local:all-MiniLM-L6-v2@384"
        hits = docs.search("machine learning", k=5)
        # Both machine-learning texts outrank the pizza guide (their order is a near tie: 0.44 each).
        assert {h.id for h in hits[:2]} == {"doc1", "doc3"}
        by_id = {h.id: h for h in hits}
        assert (by_id["doc1"].text, by_id["doc1"].metadata) == ("ML basics", {"title": "ML Basics", "year": 2021})
        assert [h.id for h in hits][-1] == "doc2"
        assert 0 < hits[0].score <= 1
        assert [h.id for h in docs.search("machine learning", k=5, where={"year": {"$gte": 2020}})] == ["doc1"]
        assert docs.search("something to eat", k=1)[0].id == "doc2"
        assert len(docs) == 3
        assert docs.delete(ids=["doc2"]) == 1 and len(docs) == 2


def test_reopening_loads_the_recorded_model(tmp_path: Path, local_model: Embedder) -> None:
    path = tmp_path / "kb"
    with semkit.connect(path) as db:
        _docs(db, local_model)
    with semkit.connect(path) as db:
        docs = db.collection("docs")  # no model argument: the one recorded with the collection
        assert docs.search("a recipe for dinner", k=1)[0].id == "doc2"
        assert docs.model is not None and docs.model.id == local_model.id
        with pytest.raises(ModelMismatch, match="reembed"):
            db.collection("docs", model=HashEmbedder(384))
        assert db.collection("docs", model="local").search("deep learning", k=1)[0].id in ("doc1", "doc3")


def test_export_import_keeps_search_without_the_model(tmp_path: Path, local_model: Embedder) -> None:
    with semkit.connect(tmp_path / "a") as db:
        docs = _docs(db, local_model)
        before = [(h.id, round(h.score, 5)) for h in docs.search("machine learning", k=3)]
        docs.export(tmp_path / "docs.parquet")
        query = local_model.embed(["machine learning"], "query")[0]
    with semkit.connect(tmp_path / "b") as other:
        assert other.import_collection("docs", tmp_path / "docs.parquet") == 3
        copy = other.collection("docs")
        after = [(h.id, round(h.score, 5)) for h in copy.search(query, k=3)]  # by vector: no model needed
    assert after == before
