"""``semkit index --engine ray --address`` against a real multi-node Ray cluster on this host: a head
with 0 CPUs and 1-CPU worker nodes (``ray.cluster_utils.Cluster``: each node its own raylet,
object store and worker processes), with the real bundled model and SciFact abstracts.

- the work runs on both worker nodes and never on the head, each worker process loads the model
  once, and the collection equals a single-process run;
- a worker node lost half-way (its raylet and its workers SIGKILLed, as a machine that dies): the
  run completes on the other node, no batch is written twice or lost, the re-sent batches stay
  within the documented bound, and the collection equals a single-process run;
- the last worker node killed: the run stops with ``ClusterLost`` naming the node, within the
  bound it was given, keeps what it wrote, and a re-run on a new node finishes the job.

The CLI is the driver (its own Ray job, with its own ``SEMKIT_CACHE_DIR`` passed to the workers),
run with ``-v`` so that its per-batch log lines (``batch N on node IP/ID (worker pid P, model
loads L): F files, C chunks``) say where each batch ran. What the operator reads is checked
against those lines: the ``--json`` report's ``nodes`` (batches, chunks, workers, model loads per
node) and ``batches_resent``, and, in the node-loss run, the human table and the progress lines
(``indexing [nodes IP/ID: chunks, ...; resent N]: done/total``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import semkit
from semkit.ingest import index_paths
from semkit.ingest.distributed import BATCHES_PER_WORKER, FILES_PER_BATCH
from tests.support.ingest_compare import assert_same_collection, scifact_files, stored_rows

pytestmark = pytest.mark.slow

BATCH_LINE = re.compile(r"batch (\d+) on node (\S+)/(\w+) \(worker pid (\d+), model loads (\d+)\): "
                        r"(\d+) files, (\d+) chunks")
LOST_LINE = re.compile(r"worker on node \S+/(\w+) lost \((\w+)\); (\d+) batch\(es\) sent again \(([\d, ]*|none out)\)")


@dataclass
class BatchLine:
    number: int
    node: str
    pid: int
    model_loads: int
    files: int
    chunks: int


def _batches(stderr: str) -> list[BatchLine]:
    return [BatchLine(int(m[1]), m[3], int(m[4]), int(m[5]), int(m[6]), int(m[7]))
            for m in BATCH_LINE.finditer(stderr)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Ray head with no CPUs: it coordinates and runs no worker. Tests add worker nodes."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        yield head
    finally:
        head.shutdown()


@contextlib.contextmanager
def _worker_nodes(cluster: Any, count: int) -> Iterator[list[Any]]:
    nodes = [cluster.add_node(num_cpus=1) for _ in range(count)]
    cluster.wait_for_nodes()
    try:
        yield nodes
    finally:
        for node in nodes:
            with contextlib.suppress(Exception):  # a killed node is half gone already
                cluster.remove_node(node, allow_graceful=False)


def _lose_machine(node: Any) -> None:
    """SIGKILL the node's raylet and every process it started (its workers), at once: what a lost
    machine does. (Killing only the raylet leaves its workers running for ~15 s, until they
    notice; a run then either finishes with them or loses them a little later, as here.)"""
    import psutil

    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    for process in [raylet, *raylet.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)


def _command(corpus: Path, kb: Path, address: str, workers: int, as_json: bool = True) -> list[str]:
    return [sys.executable, "-m", "semkit", "-v", "index", str(corpus), "--db", str(kb), "--engine", "ray",
            "--address", address, "--workers", str(workers)] + (["--json"] if as_json else [])


def _table_value(stdout: str, label: str) -> str:
    """A row of the human report ``semkit index`` prints without ``--json``."""
    match = re.search(rf"│\s+{re.escape(label)}\s*│\s*(.+?)\s*│", stdout)
    assert match, f"no {label!r} row in:\n{stdout}"
    return match[1]


PROGRESS_LINE = re.compile(r"^indexing \[(.*)\]: ([\d,]+)/([\d,]+) \(\d+%\), \d+ s$", re.MULTILINE)


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "SEMKIT_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", **extra}


def _reference(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> semkit.collection.Collection:
    """The single-process result, embedded with its own empty cache."""
    monkeypatch.setenv("SEMKIT_CACHE_DIR", str(tmp_path / "reference-cache"))
    collection = semkit.connect(tmp_path / "reference").collection("docs", model="local")
    index_paths(collection, [corpus])
    return collection


def _wait_for_rows(process: subprocess.Popen[str], kb: Path, rows: int) -> int:
    deadline = time.monotonic() + 300
    written = 0
    while time.monotonic() < deadline and process.poll() is None:
        written = stored_rows(kb)
        if written >= rows:
            break
        time.sleep(0.05)
    return written


def test_a_three_node_cluster_spreads_the_work_and_writes_what_one_process_writes(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = scifact_files(tmp_path / "scifact", 6 * FILES_PER_BATCH)
    kb = tmp_path / "kb"
    with _worker_nodes(cluster, 2) as nodes:
        run = subprocess.run(_command(corpus, kb, cluster.address, workers=2), env=_env(tmp_path / "cache"),
                             capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    batches = _batches(run.stderr)

    # Every batch came back once, and the batches are the whole run.
    assert sorted(b.number for b in batches) == list(range(6))
    assert sum(b.chunks for b in batches) == report["chunks_written"] == report["count"]
    # On both worker nodes, never on the 0-CPU head.
    worker_ids = {n.node_id[:8] for n in nodes}
    assert {b.node for b in batches} == worker_ids
    assert cluster.head_node.node_id[:8] not in {b.node for b in batches}
    # One model load per worker process, however many batches it ran.
    processes = {(b.node, b.pid) for b in batches}
    assert len(processes) == 2 < len(batches)
    assert {b.model_loads for b in batches} == {1}
    assert re.search(r"Ray run on 2 node\(s\) .*2 worker process\(es\), 2 model load\(s\); 0 batch\(es\) resent",
                     run.stderr), run.stderr[-2000:]
    # A fresh cache: the model embedded every chunk, once.
    assert report["embedded"] == report["chunks_written"] and report["cached"] == 0
    # The JSON report says the same per node: batches, chunks, one worker with one model load.
    assert report["nodes"] == {
        f"{n.node_ip_address}/{n.node_id[:8]}": {
            "batches": sum(1 for b in batches if b.node == n.node_id[:8]),
            "chunks": sum(b.chunks for b in batches if b.node == n.node_id[:8]),
            "workers": 1, "model_loads": 1}
        for n in nodes}
    assert report["batches_resent"] == 0 and report["workers_lost"] == []

    assert_same_collection(_reference(tmp_path, corpus, monkeypatch), semkit.connect(kb).collection("docs"))


def test_a_worker_node_killed_mid_run_the_run_completes_on_the_other_node(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = scifact_files(tmp_path / "scifact", 15 * FILES_PER_BATCH)
    reference = _reference(tmp_path, corpus, monkeypatch)
    total = len(reference)
    kb = tmp_path / "kb"
    with _worker_nodes(cluster, 2) as nodes:
        victim = nodes[0]
        # The human report this time: its progress lines and table are what an operator reads.
        run = subprocess.Popen(_command(corpus, kb, cluster.address, workers=2, as_json=False),
                               env=_env(tmp_path / "cache"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        written = _wait_for_rows(run, kb, total // 3)
        assert run.poll() is None and written < total, f"finished before the kill ({written} rows)"
        _lose_machine(victim)
        stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    report = {key: int(_table_value(stdout, label).replace(",", "")) for key, label in [
        ("chunks_written", "chunks written"), ("embedded", "chunks embedded"),
        ("cached", "of which from the embedding cache"), ("count", "chunks in 'docs'"),
        ("batches_resent", "batches resent (worker lost)")]}

    lost = [(m[1], m[2], int(m[3]), m[4]) for m in LOST_LINE.finditer(stderr)]
    assert [node for node, *_ in lost] == [victim.node_id[:8]], stderr[-3000:]
    resent = int(lost[0][2])
    assert resent <= BATCHES_PER_WORKER  # the documented bound: what was out on the lost worker
    batches = _batches(stderr)
    # No batch lost, none written twice: each number once, and their chunks are the collection.
    assert sorted(b.number for b in batches) == list(range(15))
    assert sum(b.chunks for b in batches) == report["chunks_written"] == report["count"] == total
    assert report["embedded"] == report["chunks_written"]
    # The model work the loss cost: the re-sent batches, some of them possibly answered by the
    # cache the lost worker filled before it died (the report's "cached"), nothing beyond.
    resent_numbers = {int(n) for n in lost[0][3].split(", ")} if resent else set()
    resent_chunks = sum(b.chunks for b in batches if b.number in resent_numbers)
    assert report["cached"] <= resent_chunks
    # Both nodes worked; the survivor finished.
    assert {b.node for b in batches} == {n.node_id[:8] for n in nodes}
    assert re.search(rf"resent after 1 lost worker\(s\) on \S+/{victim.node_id[:8]}", stderr), stderr[-2000:]
    # The report's table: the batches resent, and per node what it returned, from one model load.
    assert report["batches_resent"] == resent
    for n in nodes:
        node_batches = [b for b in batches if b.node == n.node_id[:8]]
        assert _table_value(stdout, f"node {n.node_ip_address}/{n.node_id[:8]}") == (
            f"{len(node_batches)} batches, {sum(b.chunks for b in node_batches)} chunks, 1 worker(s), "
            "1 model load(s)")
    # The progress lines name the nodes with their chunks so far, and the resent batches once
    # the loss was seen; the last line counts every file.
    progress = [(state, int(done.replace(",", "")), int(of.replace(",", "")))
                for state, done, of in PROGRESS_LINE.findall(stderr)]
    assert progress and progress[-1][1] == progress[-1][2] == len(list(corpus.iterdir())), stderr[-3000:]
    assert all(n.node_id[:8] in progress[-1][0] for n in nodes), progress
    assert progress[-1][0].endswith(f"; resent {resent}"), progress

    assert_same_collection(reference, semkit.connect(kb).collection("docs"))


def test_losing_every_worker_node_stops_with_cluster_lost_and_a_rerun_finishes(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = scifact_files(tmp_path / "scifact", 10 * FILES_PER_BATCH)
    kb = tmp_path / "kb"
    env = _env(tmp_path / "cache", SEMKIT_RAY_NODE_WAIT="5")
    with _worker_nodes(cluster, 1) as (only,):
        run = subprocess.Popen(_command(corpus, kb, cluster.address, workers=1), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        written = _wait_for_rows(run, kb, 64)
        assert run.poll() is None, f"finished before the kill ({written} rows)"
        _lose_machine(only)
        # Bounded: the loss is seen (~15 s), then 5 s without any worker; never a hang.
        _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr[-3000:]
    assert "ClusterLost: the Ray run cannot finish" in stderr, stderr[-3000:]
    assert "no worker has been alive for 5 s" in stderr
    assert f"lost worker node(s): {only.node_ip_address}/{only.node_id[:8]}" in stderr
    kept = stored_rows(kb)
    assert kept >= written > 0  # everything written before the loss stays

    with _worker_nodes(cluster, 1):
        again = subprocess.run(_command(corpus, kb, cluster.address, workers=1), env=env,
                               capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads(again.stdout)
    assert report["unchanged"] > 0  # files finished before the loss are skipped
    assert_same_collection(_reference(tmp_path, corpus, monkeypatch), semkit.connect(kb).collection("docs"))
