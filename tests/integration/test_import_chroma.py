"""Importing a Chroma folder made by the real ``chromadb`` package, without re-embedding.

The folder holds real bundled-model vectors of Banking77 texts; after the import, semkit answers
the same queries with the same neighbours as Chroma's own query on that folder, and the model's
meter shows that the import embedded nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.errors import DimensionMismatch, InvalidInput
from semkit.importers import import_chroma
from semkit.models.base import Embedder
from tests.support.shared_data import banking_sample

chromadb = pytest.importorskip("chromadb", reason="chromadb is not installed (pip install 'semkit[chroma]')")

N_DOCS = 600
N_QUERIES = 40


def embedded_texts(model: Embedder) -> int:
    """Texts that went through the model, whether its cache or the model answered."""
    return model.meter.items + model.meter.cached_items  # type: ignore[attr-defined]


def chroma_folder(path: Path, collections: dict[str, dict[str, Any]]) -> Any:
    """A Chroma persistent folder: name -> {"space", "ids", "vectors", "documents", "metadatas"}."""
    client = chromadb.PersistentClient(path=str(path))
    for name, data in collections.items():
        col = client.create_collection(name, configuration={"hnsw": {"space": data["space"]}},
                                       embedding_function=None)
        for start in range(0, len(data["ids"]), 500):
            part = slice(start, start + 500)
            col.add(ids=data["ids"][part], embeddings=np.asarray(data["vectors"][part]),
                    documents=data.get("documents", [None] * len(data["ids"]))[part],
                    metadatas=data.get("metadatas", [None] * len(data["ids"]))[part])
    return client


@pytest.fixture(scope="module")
def banking() -> tuple[list[str], list[str], list[dict[str, Any]], np.ndarray, list[str], np.ndarray]:
    """600 Banking77 texts and 40 other ones as queries, embedded once by the bundled model."""
    ids, texts, metadata = banking_sample(N_DOCS + N_QUERIES, "bank-")
    model = semkit.model("local")
    vectors = model.embed(texts[:N_DOCS], "document")
    queries = model.embed(texts[N_DOCS:], "query")
    return ids[:N_DOCS], texts[:N_DOCS], metadata[:N_DOCS], vectors, texts[N_DOCS:], queries


@pytest.mark.slow
def test_chroma_folder_imports_and_answers_like_chroma(tmp_path: Path, banking: Any) -> None:
    ids, texts, metadata, vectors, query_texts, queries = banking
    client = chroma_folder(tmp_path / "chroma", {"support": {
        "space": "cosine", "ids": ids, "vectors": vectors, "documents": texts, "metadatas": metadata}})
    chroma_hits = client.get_collection("support").query(query_embeddings=queries, n_results=10)["ids"]

    model = semkit.model("local")
    before = embedded_texts(model)
    with semkit.connect(tmp_path / "kb") as db:
        [report] = import_chroma(db, tmp_path / "chroma", model=model)
        assert embedded_texts(model) == before, "the import embedded texts"
        assert (report.collection, report.imported, report.metric, report.dimensions, report.model) == \
            ("support", N_DOCS, "cosine", 384, model.id)
        col = db.collection("support")
        stored = col.get(ids[:50], include_vectors=True)
        assert [(r.id, r.text, r.metadata) for r in stored] == list(zip(ids[:50], texts[:50], metadata[:50],
                                                                        strict=True))
        assert np.allclose(np.stack([r.vector for r in stored]), vectors[:50], atol=1e-6)  # Chroma's own vectors

        ours = [[h.id for h in col.search(q, k=10)] for q in queries]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ours, chroma_hits, strict=True)])
        assert overlap >= 0.95, f"top-10 overlap with Chroma's own answers is {overlap:.3f}"
        assert embedded_texts(model) == before  # searching by vector embeds nothing either
        # The recorded model lets text queries work: the same answer as the query's vector.
        by_text = [h.id for h in col.search(query_texts[0], k=10)]
        assert by_text == ours[0]


def test_spaces_become_metrics_and_names_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(150, 16)).astype(np.float32)
    ids = [f"r{i}" for i in range(150)]
    client = chroma_folder(tmp_path / "chroma", {
        f"in-{space}": {"space": space, "ids": ids, "vectors": vectors,
                        "metadatas": [{"n": i} for i in range(150)]} for space in ("cosine", "ip", "l2")})
    client.create_collection("nothing-yet", embedding_function=None)  # empty: skipped
    query = rng.normal(size=16).astype(np.float32)
    with semkit.connect(tmp_path / "kb") as db:
        reports = import_chroma(db, tmp_path / "chroma", rename={"in-l2": "euclid"})
        assert {(r.source, r.collection, r.metric, r.model) for r in reports} == {
            ("in-cosine", "in-cosine", "cosine", None), ("in-ip", "in-ip", "dot", None),
            ("in-l2", "euclid", "l2", None)}
        assert sorted(db.collections()) == ["euclid", "in-cosine", "in-ip"]
        for source, target in (("in-cosine", "in-cosine"), ("in-ip", "in-ip"), ("in-l2", "euclid")):
            chroma = client.get_collection(source).query(query_embeddings=[query], n_results=10)["ids"][0]
            ours = [h.id for h in db.collection(target).search(query, k=10)]
            assert len(set(chroma) & set(ours)) >= 9, source
        assert db.collection("in-ip").get(["r3"])[0].metadata == {"n": 3}

        again = import_chroma(db, tmp_path / "chroma", collections=["in-ip"])  # by id: nothing doubles
        assert again[0].imported == 150 and len(db.collection("in-ip")) == 150
        import_chroma(db, tmp_path / "chroma", collections=["in-cosine"], into="renamed")
        assert len(db.collection("renamed")) == 150


def test_refusals_come_before_anything_is_written(tmp_path: Path) -> None:
    vectors = np.eye(8, dtype=np.float32)
    chroma_folder(tmp_path / "chroma", {"small": {"space": "cosine", "ids": [str(i) for i in range(8)],
                                                  "vectors": vectors}})
    with semkit.connect(tmp_path / "kb") as db:
        with pytest.raises(DimensionMismatch, match="8-dimensional vectors, but local:all-MiniLM-L6-v2@384"):
            import_chroma(db, tmp_path / "chroma", model="local")
        with pytest.raises(InvalidInput, match=r"no Chroma collection 'other'.*it has: small"):
            import_chroma(db, tmp_path / "chroma", collections=["other"])
        with pytest.raises(InvalidInput, match="is not a Chroma folder"):
            import_chroma(db, tmp_path / "not-there")
        assert db.collections() == []
        assert not (tmp_path / "not-there").exists()  # a mistyped path is not created
