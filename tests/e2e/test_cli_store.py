"""Collections from the command line: upsert a file, search, export, import, drop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_csv_upsert_types_named_columns_and_bad_filter_is_clear(tmp_path: Path) -> None:
    src = tmp_path / "docs.csv"
    src.write_text("id,text,year\na,first text about cats,2020\nb,second text about dogs,2024\n", encoding="utf-8")
    db = str(tmp_path / "kb")
    run("upsert", str(src), "--db", db, "--type", "year=int")
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


def test_csv_cells_stay_the_text_they_are(tmp_path: Path) -> None:
    src = tmp_path / "docs.csv"
    src.write_text("id,text,zip,count,score\n007,1e3,02134,1_000,Nan\n1_000,plain words,00501,7,inf\n",
                   encoding="utf-8")
    db = str(tmp_path / "kb")
    run("upsert", str(src), "--db", db)
    out = tmp_path / "out.jsonl"
    run("export", str(out), "--db", db)
    rows = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines()) if "id" in r}
    assert set(rows) == {"007", "1_000"}
    assert rows["007"]["text"] == "1e3"
    assert rows["007"]["metadata"] == {"zip": "02134", "count": "1_000", "score": "Nan"}
    assert rows["1_000"]["metadata"] == {"zip": "00501", "count": "7", "score": "inf"}


def test_csv_typed_columns_are_strict(tmp_path: Path) -> None:
    src = tmp_path / "docs.csv"
    src.write_text("id,text,year\na,cats,2020\nb,dogs,1_000\n", encoding="utf-8")
    proc = run("upsert", str(src), "--db", str(tmp_path / "kb"), "--type", "year=int", check=False)
    assert proc.returncode == 2 and "row 2" in proc.stderr and "'1_000'" in proc.stderr
    bad_spec = run("upsert", str(src), "--db", str(tmp_path / "kb"), "--type", "year=date", check=False)
    assert bad_spec.returncode == 2 and "COLUMN=TYPE" in bad_spec.stderr
    unknown = run("upsert", str(src), "--db", str(tmp_path / "kb"), "--type", "month=int", check=False)
    assert unknown.returncode == 2 and "month" in unknown.stderr
    assert not (tmp_path / "kb").exists() or "docs" not in run("collections", "--db", str(tmp_path / "kb")).stdout


def _vector_rows(n: int) -> list[dict[str, object]]:
    return [{"id": f"r{i}", "vec": [1.0, float(i), 0.5]} for i in range(n)]


def test_a_bad_row_anywhere_writes_nothing(tmp_path: Path) -> None:
    rows = _vector_rows(30)
    rows[25]["vec"] = [1.0, 2.0]  # in the third batch of 10
    src = tmp_path / "vecs.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    db = str(tmp_path / "kb")
    proc = run("upsert", str(src), "--db", db, "--vector-field", "vec", "--batch-size", "10", check=False)
    assert proc.returncode == 2 and "row 26" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(run("collections", "--db", db, "--json").stdout) == []


def test_a_duplicate_id_across_batches_is_refused(tmp_path: Path) -> None:
    rows = _vector_rows(30)
    rows[22]["id"] = "r3"
    src = tmp_path / "vecs.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    db = str(tmp_path / "kb")
    proc = run("upsert", str(src), "--db", db, "--vector-field", "vec", "--batch-size", "10", check=False)
    assert proc.returncode == 2 and "'r3'" in proc.stderr and "row 4" in proc.stderr and "row 23" in proc.stderr
    assert json.loads(run("collections", "--db", db, "--json").stdout) == []


def test_unreadable_record_files_are_clear_errors(tmp_path: Path) -> None:
    db = str(tmp_path / "kb")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("id,text\na,caf\xe9\n".encode("latin-1"))
    binary = tmp_path / "junk.jsonl"
    binary.write_bytes(bytes(range(256)))
    garbage = tmp_path / "junk.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet")
    for path, words in ((latin1, "UTF-8"), (binary, "UTF-8"), (garbage, "Parquet")):
        proc = run("upsert", str(path), "--db", db, check=False)
        assert proc.returncode == 2, path
        assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.postgres
def test_a_database_password_is_never_printed(postgres_dsn: str) -> None:
    # The test server trusts local connections, so any password is accepted and must not show.
    secret = "hunter2-very-secret"
    uri = postgres_dsn.replace("@", f":{secret}@", 1)
    assert secret in uri
    listed = run("collections", "--db", uri)
    prompt = run("drop", "nothing-here", "--db", uri, stdin=b"n\n", check=False)
    for proc in (listed, prompt):
        assert secret not in proc.stdout + proc.stderr
    assert ":***@" in listed.stdout and ":***@" in prompt.stdout + prompt.stderr


def test_a_garbage_import_file_is_a_clear_error(tmp_path: Path) -> None:
    db = str(tmp_path / "kb")
    cases = {"junk.parquet": (b"PAR1 not really parquet", "Parquet"),
             "junk.jsonl": (b"\xff\xfe\x00 binary", "UTF-8"),
             "junk.csv": (b"id,text\n\xff\xfe,x\n", "collection spec")}
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        proc = run("import", str(path), "--db", db, "-c", "x", check=False)
        assert proc.returncode in (1, 2) and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
