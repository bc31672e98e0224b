"""Ingest on a Ray cluster of 1, 2 and 3 worker nodes (plus a 0-CPU head), and single-process.

Data: the first N SciFact abstracts (``../shared/data/scifact``) written as Markdown files, the
real bundled model (ONNX fp32). Each cluster is real: ``ray.cluster_utils.Cluster`` starts a head
with 0 CPUs and K worker nodes of 1 CPU each on this host, every node its own raylet, object
store and worker processes; the run is ``index_paths(engine="ray", workers=K)``, one worker per
node. Every run starts from an empty store and an empty embedding cache, so the model embeds
every chunk. Cluster start-up and the collection's creation (which loads the model once in this
process, to record its id) are not timed; the run itself never loads the model on the driver.

    python benchmarks/ingest_ray.py                          # 240 abstracts, nodes 1 2 3, once
    python benchmarks/ingest_ray.py --repeats 3              # the quiet re-run: medians of 3
    python benchmarks/ingest_ray.py --docs 48 --nodes 1 2    # a quick check that it runs

All nodes share this host's cores, so more nodes cannot be faster here. What the runs measure
are the parts a cluster's rate is made of, from the driver's per-batch log records:

- ``w``: seconds a worker spends inside a batch (read, chunk, embed), ``c`` chunks per batch;
- ``o``: coordination overhead per batch: from when the worker could have started it (the batch
  sent, or the worker's previous batch done) to when it did, plus from the worker's end to the
  driver holding the result (Ray scheduling, moving files and vectors); wall clocks of one host;
- ``d``: the driver's own seconds per batch (taking results in, writing the store): it is one
  process, so it caps the whole cluster.

``w`` and ``o`` are medians over the batches of all repeats; ``d`` is the driver's time over a
run divided by its batches (its store writes land every few batches, so a median batch costs it
nothing), median over the repeats; rates are medians over the repeats. Each run also counts
the model loads per worker process (1 = loaded once per actor).

Projection for N nodes, each with its own core(s) running one worker at the measured ``w``:
``rate(N) = min(N * c / (w + o), c / d)`` chunks/s.
"""

from __future__ import annotations

import argparse
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
from _data import data_dir, write_scifact_markdown
from _machine import cpu_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")



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
    worker_s: list[float]
    """Per batch: seconds inside the worker."""
    overhead_s: list[float]
    """Per batch: coordination seconds around the worker's part."""
    driver_s: float
    """The driver's seconds taking results in and writing them, over the run, per batch: a mean,
    since the store writes land on every few batches (whenever ``batch_size`` chunks are in) and
    at the end, so a median batch costs the driver nothing."""
    per_node: dict[str, float]
    model_loads: dict[str, int]
    """Per worker process (node/pid): the model loads it reported with its last batch."""

    @property
    def chunks_per_batch(self) -> float:
        return self.chunks / self.batches

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds

    @property
    def steady_rate(self) -> float:
        return self.steady_chunks / self.steady_seconds


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
        semkit.connect(work / "kb").collection("docs", model="local")  # created: loads the model here
        col = semkit.connect(work / "kb").collection("docs")  # reopened: the run never loads it
        started = time.perf_counter()
        report = index_paths(col, [corpus], engine="ray", workers=nodes)
        seconds = time.perf_counter() - started
    finally:
        logger.removeHandler(records)
        ray.shutdown()
        cluster.shutdown()
    assert report.embedded == report.chunks_written and report.cached == 0
    assert col._model is None, "the driver loaded the model"
    assert len(report.nodes) == nodes, report.nodes
    batches = sorted(records.batches, key=lambda r: r.created)
    assert len(batches) > 1 and sum(r.ray_chunks for r in batches) == report.chunks_written  # type: ignore[attr-defined]
    # Steady part: from the first batch back to the last; the first batch's chunks came before it.
    steady_seconds = batches[-1].created - batches[0].created
    steady_chunks = sum(r.ray_chunks for r in batches[1:])  # type: ignore[attr-defined]
    worker_s = [r.ray_seconds for r in batches]  # type: ignore[attr-defined]
    per_node: dict[str, float] = {}
    for r in batches[1:]:
        per_node[r.ray_node[:8]] = per_node.get(r.ray_node[:8], 0) + r.ray_chunks  # type: ignore[attr-defined]
    loads = {f"{r.ray_node[:8]}/{r.ray_pid}": r.ray_model_loads for r in batches}  # type: ignore[attr-defined]
    return ClusterRun(nodes, report.chunks_written, seconds, len(batches), steady_seconds, steady_chunks, worker_s,
                      _overheads(batches), records.driver_seconds / len(batches),
                      {node: chunks / steady_seconds for node, chunks in per_node.items()}, loads)


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
    parser.add_argument("--repeats", type=int, default=1, help="runs per configuration (medians are reported)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    wall = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="semkit-ingest-ray-"))
    singles: list[float] = []
    runs: dict[int, list[ClusterRun]] = {n: [] for n in args.nodes}
    try:
        corpus = write_scifact_markdown(data_dir() / "scifact" / "corpus.jsonl.gz", base / "corpus", args.docs)
        for repeat in range(args.repeats):
            single_s, chunks = run_single(corpus, base / f"single{repeat}")
            singles.append(chunks / single_s)
            print(f"# single process: {chunks / single_s:.1f} chunks/s", flush=True)
            for nodes in args.nodes:
                run = run_cluster(corpus, base / f"ray{nodes}-{repeat}", nodes)
                runs[nodes].append(run)
                print(f"# {nodes} worker node(s): {run.rate:.1f} chunks/s, model loads per worker "
                      f"{sorted(set(run.model_loads.values()))}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    load_after = os.getloadavg()
    from semkit.ingest.distributed import FILES_PER_BATCH

    median = statistics.median
    print(f"\n# {args.docs} SciFact abstracts -> {chunks} chunks, {FILES_PER_BATCH} files per batch, "
          f"all-MiniLM-L6-v2 ONNX fp32; CPU: {cpu_model()}, {os.cpu_count()} CPUs shared by every node; "
          f"{args.repeats} repeat(s), medians; load average (1/5/15 min) "
          f"{' '.join(f'{x:.1f}' for x in load_before)} before, {' '.join(f'{x:.1f}' for x in load_after)} after; "
          f"{time.perf_counter() - wall:.0f} s in all\n")
    print("| run | chunks/s (whole run) | steady chunks/s | per node chunks/s | w: worker s/batch "
          "| o: overhead s/batch | d: driver s/batch | chunks/batch | model loads per worker |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    print(f"| single process | {median(singles):.1f} | - | - | - | - | - | - | 1 |")
    parts: dict[int, tuple[float, float, float, float]] = {}
    for nodes, done in runs.items():
        w = median([x for r in done for x in r.worker_s])
        o = median([x for r in done for x in r.overhead_s])
        d = median([r.driver_s for r in done])
        c = median([r.chunks_per_batch for r in done])
        parts[nodes] = (c, w, o, d)
        # Node ids differ between repeats: the fastest node's median, then the next one's.
        ranked = [sorted(r.per_node.values(), reverse=True) for r in done]
        per_node = ", ".join(f"{median(rates):.1f}" for rates in zip(*ranked, strict=False))
        loads = sorted({x for r in done for x in r.model_loads.values()})
        print(f"| head + {nodes} worker node(s) | {median([r.rate for r in done]):.1f} | "
              f"{median([r.steady_rate for r in done]):.1f} | {per_node} | {w:.3f} | {o:.3f} | {d:.4f} | "
              f"{c:.1f} | {', '.join(map(str, loads))} |")
    # The projection from the one-node run: there a worker has the machine's cores to itself
    # as much as this host allows, and w, o and d are its measured parts.
    base_nodes = min(parts)
    c, w, o, d = parts[base_nodes]
    print(f"\nCoordination overhead per batch: o = {o * 1000:.0f} ms ({o / (w + o):.1%} of a batch's "
          f"{w + o:.2f} s) on the {base_nodes}-node run; the driver's part: d = {d * 1000:.1f} ms per batch.")
    print(f"Projection from the {base_nodes}-node run (c={c:.1f} chunks/batch, w={w:.3f} s, o={o:.3f} s, "
          f"d={d:.4f} s), each node with its own cores: rate(N) = min(N * c / (w + o), c / d)")
    for n in (1, 4, 16, 64):
        print(f"  N={n:>3}: {min(n * c / (w + o), c / d if d > 0 else float('inf')):,.0f} chunks/s")


if __name__ == "__main__":
    main()
