"""Helpers of the Ray engine's tests: a real corpus on disk (SciFact abstracts as Markdown files),
a collection's records read back whole, two collections compared record by record, and the row
count of an embedded store read while another process writes it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from benchmarks._data import write_scifact_markdown

import semkit
from tests.support.shared_data import shared


def scifact_files(root: Path, count: int) -> Path:
    """The first ``count`` SciFact abstracts, one ``<id>.md`` file each (about two chunks a file)."""
    return write_scifact_markdown(shared("scifact/corpus.jsonl.gz"), root, count)


def collection_records(collection: semkit.collection.Collection) -> dict[str, tuple[str | None, dict, np.ndarray]]:
    """Every record: id -> (text, metadata, vector)."""
    ids = [r.id for batch in collection.scan(1_000) for r in batch]
    out = {}
    for start in range(0, len(ids), 500):
        for r in collection.get(ids[start:start + 500], include_vectors=True):
            out[r.id] = (r.text, r.metadata, r.vector)
    return out


def assert_same_collection(left: semkit.collection.Collection, right: semkit.collection.Collection) -> None:
    """Same ids, texts and metadata; vectors within 1e-5 (batches are formed differently)."""
    a, b = collection_records(left), collection_records(right)
    assert a.keys() == b.keys()
    assert len(a) > 0
    for key in a:
        assert a[key][0] == b[key][0], key
        assert a[key][1] == b[key][1], key
        np.testing.assert_allclose(a[key][2], b[key][2], atol=1e-5)


def stored_rows(db_path: Path) -> int:
    """Rows of an embedded store's first collection (table ``c1``), read without the store's
    lock, so a test can watch a run that is writing it."""
    try:
        with sqlite3.connect(f"file:{db_path / 'store.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("select count(*) from c1").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet
