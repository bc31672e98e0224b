"""`semkit cost` as a capacity planner: a real subprocess against the measured data file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semkit import capacity


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "semkit", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"semkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_vectors_and_dims_give_one_row_per_backend_and_dtype() -> None:
    out = json.loads(run("cost", "--vectors", "10M", "--dims", "1536", "--price-per-gb-month", "0.1",
                         "--json").stdout)
    assert out["vectors"] == 10_000_000 and out["dimensions"] == 1536
    got = {(r["backend"], r["dtype"]): r for r in out["capacity"]}
    assert set(got) == {(b, d) for b, ds in capacity.SUPPORTED.items() for d in ds}
    for (backend, dtype), row in got.items():
        expected = capacity.estimate(10_000_000, 1536, backend=backend, dtype=dtype, price_per_gb_month=0.1)
        assert row["disk_bytes"] == expected.disk_bytes
        assert row["dollars_per_month"] == pytest.approx(row["disk_bytes"] / 1e9 * 0.1)
        assert row["disk_bytes"] > 10_000_000 * row["raw_vector_bytes"]  # overhead is counted
    assert out["measurements"]["command"].startswith("python benchmarks/storage_overhead.py")


def test_backend_and_dtype_filters_and_the_human_table() -> None:
    out = json.loads(run("cost", "--vectors", "250k", "--dims", "768", "--backend", "pgvector", "--json").stdout)
    assert [(r["backend"], r["dtype"]) for r in out["capacity"]] == [("pgvector", "float32"), ("pgvector", "float16"),
                                                              ("pgvector", "binary")]
    text = run("cost", "--vectors", "1e6", "--dims", "384", "--backend", "embedded", "--dtype", "int8").stdout
    assert "1,000,000 vectors x 384 dims" in text and "embedded" in text and "int8" in text
    assert "pgvector" not in text and "float16" not in text
    assert "storage_overhead.py" in text  # where the numbers come from


def test_model_dimensions_are_used_when_dims_are_not_given() -> None:
    out = json.loads(run("cost", "--vectors", "1000", "--model", "openai:text-embedding-3-large",
                         "--backend", "pgvector", "--dtype", "float32", "--json").stdout)
    (row,) = out["capacity"]
    assert row["dimensions"] == 3072 and row["stored_as"] == "halfvec(3072)"


def test_bad_plans_are_clear_errors() -> None:
    proc = run("cost", "--vectors", "ten", "--dims", "384", check=False)
    assert proc.returncode != 0 and "vector count" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("cost", "--vectors", "10", check=False)
    assert proc.returncode != 0 and "--dims" in proc.stderr
    proc = run("cost", "--vectors", "10", "--dims", "384", "--backend", "qdrant-local", "--dtype", "int8",
               check=False)
    assert proc.returncode != 0 and "stores" in proc.stderr
    proc = run("cost", check=False)
    assert proc.returncode != 0 and "--vectors" in proc.stderr


def test_a_corpus_gets_measured_sizes_with_its_own_text_length(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("A short note about vector search.\n" * 3, encoding="utf-8")
    out = json.loads(run("cost", str(tmp_path), "--model", "local", "--backend", "embedded", "--json").stdout)
    (model,) = out["models"]
    (row,) = out["capacity"]
    assert row["model"] == "local" and row["backend"] == "embedded" and row["dtype"] == "float32"
    assert row["vectors"] == model["vectors"] and row["dimensions"] == 384
    per_record = out["text_bytes"] / model["vectors"]  # one vector per text here (no chunking)
    expected = capacity.estimate(model["vectors"], 384, backend="embedded", text_bytes=per_record)
    assert row["disk_bytes"] == expected.disk_bytes
    assert model["storage_bytes"]["float32"] == model["vectors"] * 384 * 4  # the raw column is unchanged
    text = run("cost", str(tmp_path), "--model", "local").stdout
    assert "measured on-disk size per backend" in text and "qdrant-local" in text
