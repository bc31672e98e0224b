"""Collections from the command line: upsert a file, search, export, import, drop."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import run

DOCS = [
    {"id": "doc1", "text": "ML basics: models learn patterns from data", "title": "ML Basics", "year": 2021},
    {"id": "doc2", "text": "Pizza guide: a hot oven and a thin crust", "title": "Pizza Guide"},
    {"id": "doc3", "text": "Neural networks are trained with backpropagation", "title": "NN", "year": 2023},
]


def test_upsert_search_export_import_drop(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n", encoding="utf-8")
    db, db2 = str(tmp_path / "kb"), str(tmp_path / "kb2")

    first = json.loads(run("upsert", str(src), "--db", db, "--json").stdout)
    again = json.loads(run("upsert", str(src), "--db", db, "--json").stdout)
    assert first["count"] == again["count"] == 3

    hits = json.loads(run("search", "machine learning", "--db", db, "-k", "2", "--json").stdout)
    assert hits[0]["id"] == "doc1" and hits[0]["metadata"]["title"] == "ML Basics"
    filtered = json.loads(run("search", "machine learning", "--db", db, "--where",
                              '{"year": {"$gte": 2022}}', "--json").stdout)
    assert [h["id"] for h in filtered] == ["doc3"]

    out = tmp_path / "docs.parquet"
    run("export", str(out), "--db", db)
    imported = json.loads(run("import", str(out), "--db", db2, "-c", "copy", "--json").stdout)
    assert imported["imported"] == 3
    listed = json.loads(run("collections", "--db", db2, "--json").stdout)
    assert [(c["name"], c["count"]) for c in listed] == [("copy", 3)]

    run("drop", "copy", "--db", db2, "--yes")
    assert json.loads(run("collections", "--db", db2, "--json").stdout) == []


def test_csv_upsert_types_numbers_and_bad_filter_is_clear(tmp_path: Path) -> None:
    src = tmp_path / "docs.csv"
    src.write_text("id,text,year\na,first text about cats,2020\nb,second text about dogs,2024\n", encoding="utf-8")
    db = str(tmp_path / "kb")
    run("upsert", str(src), "--db", db)
    hits = json.loads(run("search", "animals", "--db", db, "--where", '{"year": {"$gt": 2021}}', "--json").stdout)
    assert [h["id"] for h in hits] == ["b"]

    bad = run("search", "x", "--db", db, "--where", '{"year": {"$foo": 1}}', check=False)
    assert bad.returncode == 2 and "$foo" in bad.stderr and "Traceback" not in bad.stderr
    missing = run("search", "x", "--db", db, "-c", "nope", check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr


def test_upsert_rejects_a_malformed_jsonl_line(tmp_path: Path) -> None:
    src = tmp_path / "docs.jsonl"
    src.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": \n', encoding="utf-8")
    proc = run("upsert", str(src), "--db", str(tmp_path / "kb"), check=False)
    assert proc.returncode == 2 and "docs.jsonl:2" in proc.stderr
