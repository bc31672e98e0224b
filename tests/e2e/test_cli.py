"""The CLI as a user runs it: a real subprocess, the real bundled model, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "semkit", *args], input=stdin.decode() if stdin else None,
        capture_output=True, text=True, env=full_env, timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"semkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_models_lists_the_catalogue_as_json() -> None:
    rows = json.loads(run("models", "--json").stdout)
    by_spec = {r["spec"]: r for r in rows}
    assert by_spec["local:all-MiniLM-L6-v2"]["usable_now"] is True
    assert by_spec["openai:text-embedding-3-small"]["price_per_million"] == 0.02
    assert any(q["task"] == "STSBenchmark" for q in by_spec["local:all-MiniLM-L6-v2"]["quality"])


def test_models_filtered_by_language() -> None:
    rows = json.loads(run("models", "--language", "es", "--json").stdout)
    specs = {r["spec"] for r in rows}
    assert {"local:paraphrase-multilingual-MiniLM-L12-v2", "local:multilingual-e5-small", "local:bge-m3",
            "openai:text-embedding-3-small", "cohere:embed-multilingual-v3.0"} <= specs
    assert "local:all-MiniLM-L6-v2" not in specs and "cohere:embed-english-v3.0" not in specs
    assert all(r["languages"] == "multilingual" or ("es" in r["languages"] and len(r["languages"]) > 1)
               for r in rows)
    english = {r["spec"]: r for r in json.loads(run("models", "--language", "EN", "--json").stdout)}
    assert english["local:all-MiniLM-L6-v2"]["languages"] == ["en"]
    table = run("models", "--language", "es", env={"COLUMNS": "250"}).stdout
    assert "trained for Spanish (es)" in table and "all-MiniLM-L6-v2" not in table
    bad = run("models", "--language", "xx", check=False)
    assert bad.returncode != 0
    assert "unknown language code 'xx'" in bad.stderr and "es (Spanish)" in bad.stderr


def test_embed_json_lines_from_arguments_and_stdin() -> None:
    out = run("embed", "--json", "The cat sat on the mat", "A feline rested on a rug").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == ["The cat sat on the mat", "A feline rested on a rug"]
    a, b = (np.array(r["embedding"]) for r in rows)
    assert a.shape == (384,) and abs(np.linalg.norm(a) - 1) < 1e-3
    assert 0.5 < float(a @ b) < 0.62

    piped = run("embed", "--json", stdin=b"The cat sat on the mat\n\nStock prices rose sharply\n").stdout
    assert len(piped.splitlines()) == 2


@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".jsonl"])
def test_embed_writes_files(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "texts.txt"
    src.write_text("first line\nsecond line\nthird line\n", encoding="utf-8")
    out = tmp_path / f"vectors{suffix}"
    summary = json.loads(run("embed", "--file", str(src), "--out", str(out), "--json").stdout)
    assert summary["count"] == 3 and summary["dimensions"] == 384
    if suffix == ".npy":
        assert np.load(out).shape == (3, 384)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.num_rows == 3 and table.schema.metadata[b"semkit.model"].startswith(b"local:")
    else:
        assert len(out.read_text().splitlines()) == 3


def test_similarity_command() -> None:
    score = float(run("similarity", "The cat sat on the mat", "A feline rested on a rug").stdout)
    assert 0.5 < score < 0.62


def test_second_run_is_served_from_the_cache(tmp_path: Path) -> None:
    env = {"SEMKIT_CACHE_DIR": str(tmp_path / "cache")}
    first = json.loads(run("embed", "--json", "--out", str(tmp_path / "a.npy"), "alpha", "beta", env=env).stdout)
    second = json.loads(run("embed", "--json", "--out", str(tmp_path / "b.npy"), "alpha", "beta", env=env).stdout)
    assert first["cached"] == 0 and second["cached"] == 2
    stats = json.loads(run("cache", "stats", "--json", env=env).stdout)
    assert stats["entries"] == 2
    cleared = json.loads(run("cache", "clear", "--json", env=env).stdout)
    assert cleared["removed"] == 2


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    proc = run("embed", "--file", str(bad), check=False)
    assert proc.returncode == 2
    assert "not UTF-8" in proc.stderr and "iconv" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_is_a_clear_error() -> None:
    proc = run("embed", "--model", "nosuch:thing", "hello", check=False)
    assert proc.returncode == 1
    assert "unknown model" in proc.stderr and "Traceback" not in proc.stderr


def test_cost_estimate_for_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello world " * 100, encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\n\nSome markdown text.", encoding="utf-8")
    report = json.loads(run("cost", str(tmp_path), "--model", "openai:text-embedding-3-small",
                            "--model", "local", "--json").stdout)
    models = {m["model"]: m for m in report["models"]}
    small = models["openai:text-embedding-3-small"]
    assert small["tokens"] > 200 and small["embedding_dollars"] == pytest.approx(small["tokens"] * 0.02 / 1e6)
    assert models["local"]["embedding_dollars"] == 0
