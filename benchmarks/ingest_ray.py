"""Ingest on a Ray cluster of 1, 2 and 3 worker nodes (plus a 0-CPU head), and single-process.

Data: the first N SciFact abstracts (``../shared/data/scifact``) written as Markdown files, the
real bundled model (ONNX fp32). Each cluster is real: ``ray.cluster_utils.Cluster`` starts a head
with 0 CPUs and K worker nodes of 1 CPU each on this host, every node its own raylet, object
store and worker processes; the run is ``index_paths(engine="ray", workers=K)``, one worker per
node. Every run starts from an empty store and an empty embedding cache, so the model embeds
every chunk. Cluster start-up and the driver's model load are not timed.

    python benchmarks/ingest_ray.py                # 240 abstracts, nodes 1 2 3
    python benchmarks/ingest_ray.py --docs 120 --nodes 1 2

All nodes share this host's cores, so more nodes cannot be faster here. What the runs measure
are the parts a cluster's rate is made of, from the driver's per-batch log records:

- ``w``: seconds a worker spends inside a batch (read, chunk, embed), ``c`` chunks per batch;
- ``o``: coordination overhead per batch: from when the worker could have started it (the batch
  sent, or the worker's previous batch done) to when it did, plus from the worker's end to the
  driver holding the result (Ray scheduling, moving files and vectors); wall clocks of one host;
- ``d``: the driver's own seconds per batch (taking results in, writing the store): it is one
  process, so it caps the whole cluster.

Projection for N nodes, each with its own core(s) running one worker at the measured ``w``:
``rate(N) = min(N * c / (w + o), c / d)`` chunks/s.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def write_corpus(root: Path, docs: int) -> Path:
    root.mkdir(parents=True)
    with gzip.open(data_dir() / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n == docs:
                break
            doc = json.loads(line)
            (root / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
    return root


class RunRecords(logging.Handler):
    """The Ray engine's per-batch log records (and its summary's driver time), as they come."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.batches: list[logging.LogRecord] = []
        self.driver_seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "ray_batch"):
            self.batches.append(record)
        if hasattr(record, "ray_driver_seconds"):
            self.driver_seconds = float(record.ray_driver_seconds)  # type: ignore[attr-defined]


@dataclass
class ClusterRun:
    nodes: int
    chunks: int
    seconds: float
    batches: int
    steady_seconds: float
    steady_chunks: int
    worker_s: float
    overhead_s: float
    driver_s: float
    per_node: dict[str, float]

    @property
    def chunks_per_batch(self) -> float:
        return self.chunks / self.batches


def run_single(corpus: Path, work: Path) -> tuple[float, int]:
    import semkit
    from semkit.ingest import index_paths

    os.environ["SEMKIT_CACHE_DIR"] = str(work / "cache")
    col = semkit.connect(work / "kb").collection("docs", model="local")
    col.model  # noqa: B018 - load the model outside the timed part
    started = time.perf_counter()
    report = index_paths(col, [corpus])
    seconds = time.perf_counter() - started
    assert report.embedded == report.chunks_written and report.cached == 0
    return seconds, report.chunks_written


def run_cluster(corpus: Path, work: Path, nodes: int) -> ClusterRun:
    import ray
    from ray.cluster_utils import Cluster

    import semkit
    from semkit.ingest import index_paths

    os.environ["SEMKIT_CACHE_DIR"] = str(work / "cache")  # the nodes start with it
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    records = RunRecords()
    logger = logging.getLogger("semkit.ingest.ray")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        col = semkit.connect(work / "kb").collection("docs", model="local")
        col.model  # noqa: B018 - the driver's model load (for the chunk plan) is not timed
        started = time.perf_counter()
        report = index_paths(col, [corpus], engine="ray", workers=nodes)
        seconds = time.perf_counter() - started
    finally:
        logger.removeHandler(records)
        ray.shutdown()
        cluster.shutdown()
    assert report.embedded == report.chunks_written and report.cached == 0
    batches = sorted(records.batches, key=lambda r: r.created)
    assert len(batches) > 1 and sum(r.ray_chunks for r in batches) == report.chunks_written  # type: ignore[attr-defined]
    # Steady part: from the first batch back to the last; the first batch's chunks came before it.
    steady_seconds = batches[-1].created - batches[0].created
    steady_chunks = sum(r.ray_chunks for r in batches[1:])  # type: ignore[attr-defined]
    worker_s = statistics.fmean(r.ray_seconds for r in batches)  # type: ignore[attr-defined]
    overhead_s = statistics.fmean(_overheads(batches))
    per_node: dict[str, float] = {}
    for r in batches[1:]:
        per_node[r.ray_node[:8]] = per_node.get(r.ray_node[:8], 0) + r.ray_chunks  # type: ignore[attr-defined]
    return ClusterRun(nodes, report.chunks_written, seconds, len(batches), steady_seconds, steady_chunks, worker_s,
                      overhead_s, records.driver_seconds / len(batches),
                      {node: chunks / steady_seconds for node, chunks in per_node.items()})


def _overheads(batches: list[logging.LogRecord]) -> list[float]:
    """Per batch, the wall time around the worker's own work: from the moment it could start (sent,
    or its worker's previous batch done: the driver keeps two out per worker) to the worker
    starting it, plus from the worker's end to the driver holding the result."""
    previous_end: dict[tuple[str, int], float] = {}
    out = []
    for r in sorted(batches, key=lambda r: r.ray_started_at):  # type: ignore[attr-defined]
        could_start = max(r.ray_sent_at, previous_end.get((r.ray_node, r.ray_pid), 0.0))  # type: ignore[attr-defined]
        end = r.ray_started_at + r.ray_seconds  # type: ignore[attr-defined]
        out.append(max(0.0, r.ray_started_at - could_start) + (r.ray_received_at - end))  # type: ignore[attr-defined]
        previous_end[(r.ray_node, r.ray_pid)] = end  # type: ignore[attr-defined]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=240)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()

    load_before = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="semkit-ingest-ray-"))
    try:
        corpus = write_corpus(base / "corpus", args.docs)
        single_s, chunks = run_single(corpus, base / "single")
        print(f"# single process: {chunks / single_s:.1f} chunks/s", flush=True)
        runs = []
        for nodes in args.nodes:
            run = run_cluster(corpus, base / f"ray{nodes}", nodes)
            runs.append(run)
            print(f"# {nodes} worker node(s): {run.chunks / run.seconds:.1f} chunks/s", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    load_after = os.getloadavg()
    from semkit.ingest.distributed import FILES_PER_BATCH

    print(f"\n# {args.docs} SciFact abstracts -> {chunks} chunks, {FILES_PER_BATCH} files per batch, "
          f"all-MiniLM-L6-v2 ONNX fp32, {os.cpu_count()} CPUs shared by every node; load average (1/5/15 min) "
          f"{' '.join(f'{x:.1f}' for x in load_before)} before, {' '.join(f'{x:.1f}' for x in load_after)} after\n")
    print("| run | chunks/s (whole run) | steady chunks/s | per node chunks/s | w: worker s/batch "
          "| o: overhead s/batch | d: driver s/batch | chunks/batch |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    print(f"| single process | {chunks / single_s:.1f} | - | - | - | - | - | - |")
    for run in runs:
        per_node = ", ".join(f"{rate:.1f}" for rate in run.per_node.values())
        print(f"| head + {run.nodes} worker node(s) | {run.chunks / run.seconds:.1f} | "
              f"{run.steady_chunks / run.steady_seconds:.1f} | {per_node} | {run.worker_s:.2f} | "
              f"{run.overhead_s:.2f} | {run.driver_s:.3f} | {run.chunks_per_batch:.1f} |")
    # The projection from the one-node run: there a worker has the machine's cores to itself
    # as much as this host allows, and w, o and d are its measured parts.
    base_run = min(runs, key=lambda r: r.nodes)
    c, w, o, d = base_run.chunks_per_batch, base_run.worker_s, base_run.overhead_s, base_run.driver_s
    print(f"\nProjection from the {base_run.nodes}-node run (c={c:.1f} chunks/batch, w={w:.2f} s, o={o:.2f} s, "
          f"d={d:.3f} s): rate(N) = min(N * c / (w + o), c / d)")
    for n in (1, 4, 16, 64):
        print(f"  N={n:>3}: {min(n * c / (w + o), c / d if d > 0 else float('inf')):,.0f} chunks/s")


if __name__ == "__main__":
    main()
