"""Where the shared evaluation data lives, for every test that reads it.

``SEMKIT_DATA_DIR`` if set, else ``../shared/data`` beside the checkout (where CI puts it), as
``benchmarks._data.data_location`` resolves it for the benchmarks too. Tests
that need a data set skip when it is missing, so a developer without the data can still run the
rest; CI exports ``SEMKIT_REQUIRE_DATA=1`` so a missing folder fails the run instead of turning
dozens of real-data tests into silent skips.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pytest
from benchmarks._data import data_location

DATA = data_location()


def shared(relative: str) -> Path:
    """``DATA / relative``; skips the test (or fails it under ``SEMKIT_REQUIRE_DATA=1``) when absent."""
    path = DATA / relative
    if not path.exists():
        message = f"shared data {path} not found; set SEMKIT_DATA_DIR to the shared data folder"
        if os.environ.get("SEMKIT_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def have(relative: str) -> bool:
    """For ``skipif`` marks: whether the data is there (always True under ``SEMKIT_REQUIRE_DATA=1``,
    so the test runs and fails on the missing file instead of being skipped)."""
    return os.environ.get("SEMKIT_REQUIRE_DATA") == "1" or (DATA / relative).exists()


def banking_sample(n: int, id_prefix: str) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """The first ``n`` Banking77 test texts as (ids, texts, metadata with category and index)."""
    with shared("banking77/test.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    ids = [f"{id_prefix}{i:03d}" for i in range(len(rows))]
    return ids, [r["text"] for r in rows], [{"category": r["category"], "n": i} for i, r in enumerate(rows)]
