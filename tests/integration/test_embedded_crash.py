"""Crash safety of ``EmbeddedStore``: SIGKILL a writer at random moments, reopen, lose nothing.

The writer upserts numbered batches in a loop, deletes one record of the previous batch, runs a
query (which catches the HNSW index up and, with ``index_save_every=1``, rewrites the index
file every time: kills land during index saves too) and only then prints the batch number. A
printed batch is an acknowledged write: after any number of kills every acknowledged batch must
be there with its exact vectors, no batch may be half there, and search must work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from semkit.store.ann_index import AnnIndex
from semkit.store.embedded import EmbeddedStore
from semkit.store.filters import parse
from semkit.vectors import normalize

DIMS = 48
BATCH = 200

WRITER = textwrap.dedent(f"""
    import sys
    import numpy as np
    from semkit.store.base import CollectionSpec
    from semkit.store.embedded import EmbeddedStore

    def batch(b):
        return np.random.default_rng(b).normal(size=({BATCH}, {DIMS})).astype(np.float32)

    path, b = sys.argv[1], int(sys.argv[2])
    store = EmbeddedStore(path, exact_threshold=0, index_save_every=1)
    if store.get_collection("c") is None:
        store.create_collection(CollectionSpec("c", {DIMS}))
    while True:
        vecs = batch(b)
        store.upsert("c", [f"b{{b}}-{{i}}" for i in range({BATCH})], vecs,
                     texts=[f"batch {{b}} row {{i}}" for i in range({BATCH})],
                     metadata=[{{"batch": b}}] * {BATCH})
        if b > 0:
            store.delete("c", ids=[f"b{{b - 1}}-0"])
        store.query("c", vecs[:1], 5)
        print(b, flush=True)
        b += 1
""")


def batch_vectors(b: int) -> np.ndarray:
    return np.random.default_rng(b).normal(size=(BATCH, DIMS)).astype(np.float32)


def run_until_killed(path: Path, start: int, rng: random.Random) -> list[int]:
    """Start the writer, SIGKILL it after a random delay, return the batches it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(start)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Some kills come while it starts up or builds the index, most mid-loop.
    time.sleep(rng.uniform(0.3, 4.0))
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err
    return [int(line) for line in out.split()]


@pytest.mark.slow
def test_sigkill_during_upserts_and_index_saves_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(1234)
    acked: list[int] = []
    rounds = 12
    for _ in range(rounds):
        start = acked[-1] + 1 if acked else 0
        acked += run_until_killed(tmp_path, start, rng)
    assert acked == list(range(len(acked))), "batches are acknowledged in order, without gaps"
    assert len(acked) >= rounds, "the writer made too little progress to test anything"

    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        last = acked[-1]
        # A batch past the last acknowledged one is all there or not there at all.
        extra = store.count("c", parse({"batch": last + 1}))
        assert extra in (0, BATCH)
        last_row0_gone = not store.get("c", [f"b{last}-0"])
        assert extra or not last_row0_gone, "row 0 can only go with the next batch's call"
        # Every acknowledged batch is there, with its exact (normalised) vectors.
        for b in acked:
            ids = [f"b{b}-{i}" for i in range(BATCH)]
            records = store.get("c", ids, include_vectors=True)
            row0_gone = b < last or last_row0_gone
            assert [r.id for r in records] == (ids[1:] if row0_gone else ids)
            want = normalize(batch_vectors(b))
            for r in records:
                np.testing.assert_array_equal(r.vector, want[int(r.id.split("-")[1])])
        expected = BATCH * len(acked) - (len(acked) - 1) - int(last_row0_gone) + extra
        assert store.count("c") == expected
        # Search works on the recovered store: each batch's first vector finds itself.
        for b in acked[:: max(1, len(acked) // 10)]:
            q = batch_vectors(b)[1:2]
            assert store.query("c", q, 1, ef=128)[0].ids == [f"b{b}-1"]
            assert store.query("c", q, 1, exact=True)[0].ids == [f"b{b}-1"]
        assert store.keyword_query("c", f"batch {acked[0]}", 1).ids
    # The index file left behind is a good one (rebuilt or caught up, then saved on close).
    index_file = tmp_path / "index" / "c1.ann"
    import sqlite3

    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        store_id = db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()[0]
        seq = db.execute("SELECT seq FROM collections WHERE cid=1").fetchone()[0]
    _, file_seq, _ = AnnIndex.load(index_file, dims=DIMS, metric="cosine", dtype="float32",
                                   tag={"cid": 1, "store_id": store_id})
    assert file_seq == seq
    leftovers = [p.name for p in (tmp_path / "index").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []  # temp files of killed writers are cleaned up on open

