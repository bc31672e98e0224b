"""``semkit embed --dimensions`` on a local model, as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.e2e.test_cli import run


def test_dimensions_on_a_model_not_trained_for_it_is_refused_clearly() -> None:
    proc = run("embed", "hello", "--dimensions", "128", check=False)
    assert proc.returncode != 0
    assert "not trained for Matryoshka truncation" in proc.stderr
    assert "80.68 truncated to 128" in proc.stderr  # the measured loss
    assert "unknown option" not in proc.stderr and "Traceback" not in proc.stderr


def test_native_dimensions_are_accepted(tmp_path: Path) -> None:
    out = tmp_path / "v.npy"
    summary = json.loads(run("embed", "hello", "--dimensions", "384", "--out", str(out), "--json",
                             env={"SEMKIT_CACHE_DIR": str(tmp_path / "cache")}).stdout)
    assert summary["dimensions"] == 384
    assert np.load(out).shape == (1, 384)
