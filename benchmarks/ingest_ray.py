"""Ingest throughput: ``semkit index`` single-process vs ``--engine ray`` with 1 and 2 workers.

Data: the first N SciFact abstracts (``../shared/data/scifact``) written as Markdown files, the
real bundled model (ONNX fp32). Every run starts from an empty store and an empty embedding
cache, so the model embeds every chunk. Ray's start-up (``ray.init``: the local instance,
its workers, the model loaded in each actor) is timed separately from the pipeline run, since
it is paid once per job, not per file.

    python benchmarks/ingest_ray.py               # 1,000 abstracts, 2 rounds
    python benchmarks/ingest_ray.py --docs 300 --rounds 1

On one machine with two cores Ray can only add overhead (serialisation, scheduling, a second
copy of the model); what it buys is the per-worker rate, which a cluster multiplies. The
projection line is that per-worker rate times the worker count, an upper bound that assumes
every worker gets its own cores and the store keeps up.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_corpus(root: Path, docs: int) -> Path:
    root.mkdir(parents=True)
    with gzip.open(data_dir() / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n == docs:
                break
            doc = json.loads(line)
            (root / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n", encoding="utf-8")
    return root


def run_single(corpus: Path, work: Path) -> tuple[float, int]:
    import semkit
    from semkit.ingest import index_paths

    os.environ["SEMKIT_CACHE_DIR"] = str(work / "cache")
    col = semkit.connect(work / "kb").collection("docs", model="local")
    col.model  # noqa: B018 - load the model outside the timed part, as Ray's actors do at start-up
    started = time.perf_counter()
    report = index_paths(col, [corpus])
    seconds = time.perf_counter() - started
    assert report.embedded == report.chunks_written and report.cached == 0
    return seconds, report.chunks_written


def run_ray(corpus: Path, work: Path, workers: int) -> tuple[float, float, int]:
    import semkit
    from semkit.ingest import index_paths
    from semkit.ingest.distributed import _RayRun

    os.environ["SEMKIT_CACHE_DIR"] = str(work / "cache")
    col = semkit.connect(work / "kb").collection("docs", model="local")
    col.model  # noqa: B018
    started = time.perf_counter()
    run = _RayRun.connect(None, workers)
    startup = time.perf_counter() - started
    try:
        started = time.perf_counter()
        report = index_paths(col, [corpus], engine="ray", workers=workers)
        seconds = time.perf_counter() - started
    finally:
        run.close()
    assert report.embedded == report.chunks_written and report.cached == 0
    return startup, seconds, report.chunks_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="semkit-ingest-ray-"))
    try:
        corpus = write_corpus(base / "corpus", args.docs)
        single: list[float] = []
        ray_runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        chunks = 0
        for round_no in range(args.rounds):
            # Interleaved, so a noisy minute hurts every engine alike.
            seconds, chunks = run_single(corpus, base / f"single-{round_no}")
            single.append(seconds)
            print(f"# round {round_no + 1}: single {chunks / seconds:.0f} chunks/s", flush=True)
            for workers in ray_runs:
                startup, seconds, n = run_ray(corpus, base / f"ray{workers}-{round_no}", workers)
                assert n == chunks
                ray_runs[workers].append((startup, seconds))
                print(f"# round {round_no + 1}: ray x{workers} {n / seconds:.0f} chunks/s "
                      f"(+{startup:.1f}s start-up)", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    single_s = statistics.median(single)
    single_rate = chunks / single_s
    print(f"\n# {args.docs} SciFact abstracts -> {chunks} chunks, all-MiniLM-L6-v2 ONNX fp32, "
          f"{os.cpu_count()} CPUs, median of {args.rounds} round(s); 1-minute load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (above ~2 the cores were shared)\n")
    print("| engine | workers | run s | chunks/s | vs single | per worker chunks/s | Ray start-up s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| single process (2 threads) | 1 | {single_s:.1f} | {single_rate:.0f} | 1.00x | {single_rate:.0f} | - |")
    per_worker: dict[int, float] = {}
    for workers, runs in ray_runs.items():
        seconds = statistics.median(s for _, s in runs)
        startup = statistics.median(s for s, _ in runs)
        rate = chunks / seconds
        per_worker[workers] = rate / workers
        print(f"| ray | {workers} | {seconds:.1f} | {rate:.0f} | {rate / single_rate:.2f}x | {rate / workers:.0f} "
              f"| {startup:.1f} |")
    best = max(per_worker.values())
    print(f"\nProjected (upper bound: per-worker rate x workers, each worker on its own cores): "
          f"8 workers ~ {8 * best:,.0f} chunks/s, 32 workers ~ {32 * best:,.0f} chunks/s.")


if __name__ == "__main__":
    main()
