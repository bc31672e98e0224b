"""Several processes on one embedded store: a running server must never be crashed by another
process opening its folder, and no acknowledged write may be lost.

The bug this guards against: opening a store used to mmap ``store.sqlite-shm`` through a
descriptor of its own and close it; on Linux closing any descriptor of a file drops every POSIX
lock the process holds on it, SQLite's included, so the next process to open the store reset
the WAL index under the first, which died of SIGBUS during a commit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.support.server import free_port

DIMS = 16
CHILDREN = 200


def _posix_locks_on(path: Path, pid: int) -> list[str]:
    """Lines of /proc/locks that ``pid`` holds on ``path`` (matched by device and inode)."""
    st = path.stat()
    inode_tail = f":{st.st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return [line for line in lines if f" {pid} " in line and inode_tail in line and "POSIX" in line]


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_sqlite_keeps_its_lock_on_the_wal_index_after_the_store_opens(tmp_path: Path) -> None:
    import semkit

    db = semkit.connect(tmp_path / "kb")
    col = db.collection("v", model=None, dimensions=DIMS)
    col.upsert(ids=["a"], vectors=np.ones((1, DIMS), np.float32))
    assert len(col) == 1
    shm = tmp_path / "kb" / "store.sqlite-shm"
    assert shm.exists()
    # SQLite holds a shared lock on the WAL index's "DMS" byte while its connection is open;
    # losing it lets another process reset the index under this one.
    assert _posix_locks_on(shm, os.getpid()), "SQLite's lock on store.sqlite-shm was dropped"
    db.close()


CHILD = textwrap.dedent(f"""
    import sys
    import numpy as np
    import semkit

    path, k = sys.argv[1], int(sys.argv[2])
    with semkit.connect(path) as db:
        live = len(db.collection("live", create=False)) if "live" in db.collections() else 0
        side = db.collection("side", model=None, dimensions={DIMS})
        vecs = np.random.default_rng(k).normal(size=(5, {DIMS})).astype(np.float32)
        side.upsert(ids=[f"p{{k}}-{{j}}" for j in range(5)], vectors=vecs)
        hits = side.search(vecs[0], k=3)
        assert hits and hits[0].id == f"p{{k}}-0", hits
    print("ok", k, live, flush=True)
""")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"semkit serve exited early with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("semkit serve did not answer /healthz")


@pytest.mark.slow
def test_a_serving_process_survives_200_processes_opening_its_store(tmp_path: Path) -> None:
    import httpx

    import semkit

    store = tmp_path / "kb"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "semkit", "serve", "--db", str(store), "--no-auth", "--port", str(port),
         "--no-cache", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    acknowledged: list[str] = []
    stop = threading.Event()
    writer_errors: list[str] = []

    def write_continuously() -> None:
        rng = np.random.default_rng(0)
        with httpx.Client(base_url=url, timeout=60) as client:
            created = client.post("/v1/collections", json={"name": "live", "model": None, "dimensions": DIMS})
            assert created.status_code == 201, created.text
            batch = 0
            while not stop.is_set():
                ids = [f"w{batch}-{i}" for i in range(20)]
                vectors = rng.normal(size=(20, DIMS)).round(4).tolist()
                records = [{"id": i, "vector": v, "metadata": {"batch": batch}}
                           for i, v in zip(ids, vectors, strict=True)]
                answer = client.post("/v1/collections/live/upsert", json={"records": records})
                if answer.status_code != 200:
                    writer_errors.append(f"{answer.status_code} {answer.text[:200]}")
                else:
                    acknowledged.extend(ids)
                batch += 1

    try:
        _wait_healthy(url, server)
        writer = threading.Thread(target=write_continuously, daemon=True)
        writer.start()

        def child(k: int) -> tuple[int, str]:
            proc = subprocess.run([sys.executable, "-c", CHILD, str(store), str(k)],
                                  capture_output=True, text=True, timeout=300)
            return proc.returncode, proc.stdout + proc.stderr[-2000:]

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(child, range(CHILDREN)))
        stop.set()
        writer.join(timeout=120)

        assert server.poll() is None, f"semkit serve died with {server.returncode}: " + \
            (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        failed = [(k, out) for k, (rc, out) in enumerate(results) if rc != 0 or not out.startswith("ok")]
        assert not failed, failed[:3]
        assert not writer_errors, writer_errors[:3]
        assert len(acknowledged) > 0
        count = httpx.post(f"{url}/v1/collections/live/count", json={}, timeout=30).json()
        assert count["count"] == len(acknowledged)
    finally:
        stop.set()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    # Every acknowledged write is there, from either side, and SQLite finds nothing wrong.
    with semkit.connect(store) as db:
        live = db.collection("live", create=False)
        found = {r.id for r in live.get(acknowledged)}
        assert found == set(acknowledged)
        side = db.collection("side", create=False)
        assert len(side) == CHILDREN * 5
    import sqlite3

    conn = sqlite3.connect(store / "store.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


WRITER = textwrap.dedent(f"""
    import sys, time
    import numpy as np
    import semkit

    path, tag, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with semkit.connect(path) as db:
        col = db.collection("v", model=None, dimensions={DIMS})
        rng = np.random.default_rng(len(tag))
        print("ready", flush=True)
        sys.stdin.readline()  # both start together
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            col.upsert(ids=[f"{{tag}}{{n}}"], vectors=rng.normal(size=(1, {DIMS})).astype(np.float32),
                       metadata=[{{"n": n}}])
            n += 1
    print(n, flush=True)
""")


@pytest.mark.slow
def test_two_writers_both_make_progress(tmp_path: Path) -> None:
    """Writers in tight loops on one store take turns closely enough that neither starves."""
    import semkit

    store = tmp_path / "kb"
    semkit.connect(store).collection("v", model=None, dimensions=DIMS)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), tag, "15"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    counts = [int(proc.communicate(timeout=120)[0].strip()) for proc in procs]
    assert min(counts) > 0 and max(counts) <= 3 * min(counts), counts
    with semkit.connect(store) as db:
        assert len(db.collection("v", create=False)) == sum(counts)
