"""`semkit index` as a user runs it: a subprocess, the bundled model, the shipped sample documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.test_cli import run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"


def test_index_the_samples_then_search_and_reindex(tmp_path: Path) -> None:
    docs = shutil.copytree(EXAMPLES, tmp_path / "docs")
    db = str(tmp_path / "kb")
    first = json.loads(run("index", str(docs), "--db", db, "--json").stdout)
    n_files = len(list(EXAMPLES.iterdir()))
    assert first["seen"] == len(first["indexed"]) == n_files
    assert first["failed"] == [] and first["count"] == first["chunks_written"] == first["embedded"] > n_files

    hits = json.loads(run("search", "how to fix slow website", "--db", db, "--json").stdout)
    assert hits[0]["metadata"]["source"] == "web-performance.md"

    again = json.loads(run("index", str(docs), "--db", db, "--json").stdout)
    assert again["unchanged"] == n_files and again["embedded"] == 0 and again["chunks_written"] == 0

    (docs / "home-coffee.txt").unlink()
    with (docs / "python-tips.md").open("a", encoding="utf-8") as fh:
        fh.write("\n## Read tracebacks from the bottom\n\nThe last line names the exception; read upwards.\n")
    third = json.loads(run("index", str(docs), "--db", db, "--json").stdout)
    assert third["indexed"] == ["python-tips.md"] and third["removed"] == ["home-coffee.txt"]
    assert third["unchanged"] == n_files - 2


def test_human_report_lists_failures_without_failing_the_run(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Notes\n\nPizza needs a very hot oven.\n", encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 nothing useful here")
    db = str(tmp_path / "kb")

    proc = run("index", str(docs), "--db", db, "-c", "notes")
    assert proc.returncode == 0
    assert "indexed (new or changed)" in proc.stdout and "broken.pdf" in proc.stdout
    assert "not a readable PDF" in proc.stdout and "Traceback" not in proc.stderr

    strict = run("index", str(docs), "--db", db, "-c", "notes", "--strict", check=False)
    assert strict.returncode == 1, "--strict turns a reported failure into an exit status"


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    db = str(tmp_path / "kb")
    missing = run("index", str(tmp_path / "nope"), "--db", db, check=False)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Some words to index here.", encoding="utf-8")
    too_big = run("index", str(docs), "--db", db, "--chunk-tokens", "1000", check=False)
    assert too_big.returncode == 2 and "256-token context" in too_big.stderr
    ray_only = run("index", str(docs), "--db", db, "--workers", "2", check=False)
    assert ray_only.returncode == 2 and "--engine ray" in ray_only.stderr
    assert "Traceback" not in too_big.stderr
