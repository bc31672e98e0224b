"""One million vectors on the embedded store: ingest, index build, memory, disk, recall, latency,
incremental upserts and reopen time, at float32, int8 and binary.

The vectors are synthetic but built from real ones: every vector is a real all-MiniLM-L6-v2
sentence vector (``_vectors.py``'s cache, ~101k sentences; the held-out query sentences are not
used) plus isotropic Gaussian noise of expected norm ``--noise`` (0.35 by default; per dimension
sigma = noise / sqrt(384)), renormalised. At 1M that is ~10 noisy variants of each sentence, so
the set keeps MiniLM's geometry (its anisotropy and topic clusters) and every query has near
neighbours, like near-duplicate passages in a real corpus. Vectors are generated in seeded
chunks of 10k, so nothing holds the whole corpus: the store ingests chunk by chunk and the exact
top-10 of each query (the ground truth) is merged chunk by chunk. Each record carries the text
of its source sentence (the full-text index is part of the disk figure).

Queries: held-out real MiniLM sentence vectors (never a corpus vector's source), one at a time,
k=10, the store's default ef (64). Per dtype, in one process, one store at a time:

- ingest: ``upsert`` in batches of 10k (vectors/s; the HNSW index is not built yet);
- build: ``build_index`` over everything (seconds);
- RSS: resident memory after build and queries, minus before opening the store (each dtype runs
  in a fresh process, so memory freed by another dtype cannot hide its own);
- disk: the store folder (SQLite + index file);
- recall@10 against exact search, p50 / p95 latency;
- upsert 10k more vectors into the built index, then the first query (the graph gets the 10k
  appended — no rebuild: compare with the build time);
- reopen: a new ``EmbeddedStore`` on the folder, time to its first answer (reads SQLite and the
  index file).

Smoke run (a minute)::

    python benchmarks/million.py --n 20000 --queries 100

The full run (one million; needs ~4 GB RAM and ~5 GB of disk per dtype at a time, and tens of
minutes on 2 vCPUs; run it on a quiet machine)::

    python benchmarks/million.py --n 1000000

Timings depend on the machine's load (printed); recall, RSS and disk do not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CHUNK = 10_000
K = 10


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Synthetic:
    """Seeded chunks of noisy copies of real MiniLM vectors (see the module docstring)."""

    def __init__(self, base: np.ndarray, texts: list[str], noise: float, seed: int) -> None:
        self.base, self.texts, self.noise, self.seed = base, texts, noise, seed

    def chunk(self, index: int, size: int) -> tuple[list[str], list[str], np.ndarray]:
        rng = np.random.default_rng((self.seed, index))
        rows = rng.integers(0, len(self.base), size)
        dims = self.base.shape[1]
        x = self.base[rows] + rng.normal(scale=self.noise / np.sqrt(dims), size=(size, dims)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ids = [f"v{index}_{i}" for i in range(size)]
        return ids, [self.texts[r] for r in rows.tolist()], x.astype(np.float32)

    def chunks(self, n: int, first: int = 0) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
        for c, start in enumerate(range(0, n, CHUNK)):
            yield self.chunk(first + c, min(CHUNK, n - start))


class TopK:
    """The exact top-k of each query over a corpus seen chunk by chunk."""

    def __init__(self, queries: np.ndarray, k: int) -> None:
        self.queries, self.k = queries, k
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), k), "", dtype=object)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        sims = self.queries @ vectors.T
        scores = np.concatenate([self.scores, sims], axis=1)
        names = np.concatenate([self.ids, np.broadcast_to(np.array(ids, dtype=object), sims.shape)], axis=1)
        top = np.argpartition(-scores, self.k, axis=1)[:, : self.k]
        self.scores = np.take_along_axis(scores, top, axis=1)
        self.ids = np.take_along_axis(names, top, axis=1)

    def sets(self) -> list[set[str]]:
        return [set(row) for row in self.ids.tolist()]


def query_all(store: Any, queries: np.ndarray) -> tuple[list[list[str]], list[float]]:
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(store.query("c", q[None, :], K)[0].ids)
        times.append(time.perf_counter() - t)
    return found, times


def run_dtype(dtype: str, data: Synthetic, queries: np.ndarray, args: argparse.Namespace,
              root: Path) -> dict[str, Any]:
    from semkit.store.base import CollectionSpec
    from semkit.store.embedded import EmbeddedStore

    folder = root / dtype
    dims = queries.shape[1]
    truth = TopK(queries, K)
    before = rss_bytes()
    store = EmbeddedStore(folder)
    store.create_collection(CollectionSpec("c", dims, dtype=dtype))  # type: ignore[arg-type]
    ingest = 0.0
    for ids, texts, vecs in data.chunks(args.n):
        t = time.perf_counter()
        store.upsert("c", ids, vecs, texts)
        ingest += time.perf_counter() - t
        truth.add(ids, vecs)
    t = time.perf_counter()
    store.build_index("c")
    build = time.perf_counter() - t
    found, times = query_all(store, queries)
    wanted = truth.sets()
    recall = float(np.mean([len(set(f) & w) / K for f, w in zip(found, wanted, strict=True)]))
    rss = rss_bytes() - before
    store.close()
    disk = folder_bytes(folder)

    # 10k more into the built index: appended to the graph on the next query, not rebuilt.
    store = EmbeddedStore(folder)
    store.query("c", queries[:1], K)  # load the saved index first, so only the upsert is timed
    extra = list(data.chunks(args.upsert, first=10**6))
    t = time.perf_counter()
    for ids, texts, vecs in extra:
        store.upsert("c", ids, vecs, texts)
    upsert = time.perf_counter() - t
    t = time.perf_counter()
    store.query("c", queries[:1], K)
    catch_up = time.perf_counter() - t
    store.close()

    t = time.perf_counter()
    store = EmbeddedStore(folder)
    store.query("c", queries[:1], K)
    reopen = time.perf_counter() - t
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    row = {
        "dtype": dtype, "n": args.n, "ingest_per_s": round(args.n / ingest), "build_s": round(build, 1),
        "rss_bytes": rss, "disk_bytes": disk, "recall_at_10": round(recall, 4),
        "p50_ms": round(statistics.median(times) * 1e3, 3),
        "p95_ms": round(float(np.percentile(times, 95)) * 1e3, 3),
        "upsert_n": args.upsert, "upsert_s": round(upsert, 2), "upsert_first_query_s": round(catch_up, 2),
        "reopen_first_answer_s": round(reopen, 2),
    }
    print(f"  {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


def child(args: argparse.Namespace) -> None:
    """One dtype in this (fresh) process, so its RSS is its own; prints the row as JSON."""
    from _vectors import N_QUERIES, build_all

    texts, vecs = build_all()
    order = np.random.default_rng(0).permutation(len(texts))
    held_out = np.sort(order[:N_QUERIES])[: args.queries]
    base_rows = np.sort(order[N_QUERIES:])
    data = Synthetic(np.ascontiguousarray(vecs[base_rows], dtype=np.float32), [texts[i] for i in base_rows],
                     args.noise, seed=1)
    queries = np.ascontiguousarray(vecs[held_out], dtype=np.float32)
    del vecs
    row = run_dtype(args.child, data, queries, args, Path(args.root))
    print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--upsert", type=int, default=10_000, help="vectors upserted into the built index")
    parser.add_argument("--dtypes", default="float32,int8,binary")
    parser.add_argument("--noise", type=float, default=0.35, help="expected norm of the noise added to each vector")
    parser.add_argument("--root", default=None, help="where the stores are built (default: a temp folder)")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run one dtype in this process
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    if args.child:
        child(args)
        return
    load_start = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="semkit-million-", dir=args.root))
    rows = []
    try:
        for dtype in [d for d in args.dtypes.split(",") if d]:
            argv = [sys.executable, __file__, "--child", dtype, "--root", str(root), "--n", str(args.n),
                    "--queries", str(args.queries), "--upsert", str(args.upsert), "--noise", str(args.noise)]
            out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load = f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    print(f"\n{args.n:,} synthetic vectors (real MiniLM + noise {args.noise}), {args.queries} held-out real queries, "
          f"k={K}, ef 64; load average {load}\n")
    print("| dtype | ingest vec/s | build s | RSS | disk | recall@10 | p50 ms | p95 ms | "
          f"upsert {args.upsert:,} s | + first query s | reopen to first answer s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['dtype']} | {r['ingest_per_s']:,} | {r['build_s']} | {r['rss_bytes'] / 1e9:.2f} GB | "
              f"{r['disk_bytes'] / 1e9:.2f} GB | {r['recall_at_10']:.4f} | {r['p50_ms']} | {r['p95_ms']} | "
              f"{r['upsert_s']} | {r['upsert_first_query_s']} | {r['reopen_first_answer_s']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": "python benchmarks/million.py " + " ".join(sys.argv[1:]),
                                               "load": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
