"""Importing a Pinecone-style dump (JSON Lines of ``{"id", "values", "metadata"}``, or the Parquet
layout Pinecone's bulk import reads) without re-embedding, keeping the model the user names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.errors import DimensionMismatch, InvalidInput
from semkit.importers import import_pinecone
from tests.support.shared_data import banking_sample


def embedded_texts(model: Any) -> int:
    return model.meter.items + model.meter.cached_items  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def dump_rows() -> list[dict[str, Any]]:
    """120 Banking77 texts as a LangChain-written Pinecone index holds them: the text in metadata."""
    ids, texts, metadata = banking_sample(120, "pc-")
    vectors = semkit.model("local").embed(texts, "document")
    return [{"id": i, "values": v.tolist(), "metadata": {**m, "text": t}}
            for i, t, m, v in zip(ids, texts, metadata, vectors, strict=True)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Pinecone's bulk-import Parquet layout: metadata as JSON text, an (empty) sparse_values column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sparse = pa.struct([("indices", pa.list_(pa.uint32())), ("values", pa.list_(pa.float32()))])
    table = pa.table({
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "values": pa.array([r["values"] for r in rows], pa.list_(pa.float32())),
        "sparse_values": pa.array([None] * len(rows), sparse),
        "metadata": pa.array([json.dumps(r["metadata"]) for r in rows], pa.string()),
    })
    pq.write_table(table, path)
    return path


@pytest.mark.slow  # embeds the dump's texts once (with the model load: ~20-30 s on a busy machine)
def test_jsonl_and_parquet_dumps_import_with_the_named_model(tmp_path: Path, dump_rows: list[dict[str, Any]]) -> None:
    model = semkit.model("local")
    before = embedded_texts(model)
    with semkit.connect(tmp_path / "kb") as db:
        report = import_pinecone(db, write_jsonl(tmp_path / "dump.jsonl", dump_rows), "bank", model=model)
        parquet = import_pinecone(db, write_parquet(tmp_path / "dump.parquet", dump_rows), "bank-pq",
                                  model=model, metric="cosine")
        assert embedded_texts(model) == before, "the import embedded texts"
        assert (report.imported, report.dimensions, report.metric, report.model) == (120, 384, "cosine", model.id)
        assert parquet.imported == 120

        col, col_pq = db.collection("bank"), db.collection("bank-pq")
        want_ids = [r["id"] for r in dump_rows]
        for c in (col, col_pq):
            got = c.get(want_ids, include_vectors=True)
            assert [(r.id, r.metadata) for r in got] == [(r["id"], r["metadata"]) for r in dump_rows]
            assert [r.text for r in got] == [r["metadata"]["text"] for r in dump_rows]  # text from metadata
            assert np.allclose(np.stack([r.vector for r in got]), [r["values"] for r in dump_rows], atol=1e-6)

        # The model is recorded, so a text query embeds with it and finds what its vector finds.
        query = "my card still has not arrived"
        by_text = [h.id for h in col.search(query, k=5)]
        by_vector = [h.id for h in col.search(model.embed([query], "query")[0], k=5)]
        assert by_text == by_vector
        keyword = col.keyword_search("card arrived", k=3)  # the texts are searchable by words too
        assert keyword and all("card" in (h.text or "").lower() or "arriv" in (h.text or "").lower() for h in keyword)


def test_own_vectors_metric_names_and_refusals(tmp_path: Path) -> None:
    rows = [{"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"genre": "news"}},
            {"id": "b", "values": [0.0, 2.0, 0.0]}]
    with semkit.connect(tmp_path / "kb") as db:
        report = import_pinecone(db, write_jsonl(tmp_path / "d.jsonl", rows), "small", metric="euclidean")
        assert (report.model, report.metric, report.dimensions) == (None, "l2", 3)
        assert db.collection("small").get(["b"], include_vectors=True)[0].vector.tolist() == [0.0, 2.0, 0.0]

        with pytest.raises(DimensionMismatch, match="3-dimensional vectors, but local"):
            import_pinecone(db, tmp_path / "d.jsonl", "named", model="local")
        sparse = [{"id": "s", "values": [1.0, 0.0, 0.0], "sparse_values": {"indices": [4], "values": [0.3]}}]
        with pytest.raises(InvalidInput, match="sparse values; semkit stores dense vectors"):
            import_pinecone(db, write_jsonl(tmp_path / "sparse.jsonl", sparse), "sparse")
        with pytest.raises(InvalidInput, match="unknown metric 'manhattan'"):
            import_pinecone(db, tmp_path / "d.jsonl", "other", metric="manhattan")
        with pytest.raises(DimensionMismatch):  # into an existing collection of another length
            import_pinecone(db, write_jsonl(tmp_path / "four.jsonl", [{"id": "x", "values": [1, 2, 3, 4]}]), "small")
        assert sorted(db.collections()) == ["small"]  # every refusal came before writing
