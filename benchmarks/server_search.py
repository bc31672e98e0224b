"""``/search`` at 100k documents with 8 concurrent clients, against calling the library directly.

Data: the benchmark corpus of ``_vectors.py`` (real all-MiniLM-L6-v2 vectors of ~100k distinct
sentences of the shared data, cached in ``.bench-cache/``), loaded into an embedded collection
with its texts (no re-embedding); 1,000 held-out sentences are the queries.

Paths, interleaved in rounds, each driven by C concurrent callers for ``--seconds``:

- ``library``: C threads in this process calling ``Collection.search`` (or
  ``semkit.apps.search`` for hybrid) on the same folder;
- ``server``: ``semkit serve --no-auth --no-cache`` on that folder (another process) and C
  asyncio HTTP clients in this process on loopback.

Cases: ``text`` (the query is embedded, then searched: what users do), ``vector`` (the query
vector is sent: isolates the HTTP/JSON/auth overhead), ``hybrid`` (vector + keyword, fused).
The embedding cache is off on both paths. Reported: QPS, p50/p99 latency, and server/library.
The client side of the server path runs in this process and shares the 2 cores with the
server: that cost is part of the overhead a real client on the same machine would see.

    python benchmarks/server_search.py                 # 100k documents, 8 clients
    python benchmarks/server_search.py --n 30000 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vectors import N_QUERIES, build_all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_corpus(db: Path, n: int) -> tuple[list[str], np.ndarray]:
    """Fill the collection; returns the query texts and their vectors."""
    import semkit

    texts, vecs = build_all()
    order = np.random.default_rng(0).permutation(len(texts))
    q_rows = np.sort(order[:N_QUERIES])
    c_rows = np.sort(order[N_QUERIES:N_QUERIES + n])
    with semkit.connect(str(db)) as database:
        col = database.collection("bench", model="local")
        t0 = time.perf_counter()
        for s in range(0, len(c_rows), 5000):
            rows = c_rows[s:s + 5000]
            col.upsert([f"s{int(r)}" for r in rows], texts=[texts[int(r)] for r in rows],
                       vectors=np.asarray(vecs[rows], dtype=np.float32))
        col.search(np.asarray(vecs[q_rows[0]]), k=10)  # builds the ANN index once
        print(f"loaded {len(col):,} documents in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return [texts[int(r)] for r in q_rows], np.ascontiguousarray(vecs[q_rows], dtype=np.float32)


def run_threads(fn: Callable[[int], Any], clients: int, seconds: float) -> tuple[float, float, float]:
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    def worker() -> None:
        mine = []
        while time.perf_counter() < stop:
            i = next(counter)
            t0 = time.perf_counter()
            fn(i)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _summary(lat, time.perf_counter() - began)


async def run_http(url: str, body: Callable[[int], dict[str, Any]], clients: int,
                   seconds: float) -> tuple[float, float, float]:
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post("/v1/collections/bench/search", json=body(next(counter)))
                lat.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"HTTP {r.status_code}: {r.text[:400]}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return _summary(lat, time.perf_counter() - began)


def _summary(lat: list[float], elapsed: float) -> tuple[float, float, float]:
    ms = np.array(lat) * 1000
    return len(lat) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--model-workers", type=int, default=None, help="semkit serve --model-workers")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import semkit
    from semkit.apps._search import search as app_search

    with tempfile.TemporaryDirectory(prefix="semkit-bench-search-") as tmpdir:
        db = Path(tmpdir) / "kb"
        q_texts, q_vecs = load_corpus(db, args.n)
        port = free_port()
        log = Path(tmpdir) / "server.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "semkit", "serve", "--db", str(db), "--port", str(port),
                                     "--no-auth", "--no-cache", "--log-level", "warning",
                                     *(["--model-workers", str(args.model_workers)] if args.model_workers else [])],
                                    stdout=fh, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            database = semkit.connect(str(db))
            col = database.collection("bench", model=semkit.model("local", cache=False))
            k = args.k
            nq = len(q_texts)
            vec_lists = [v.tolist() for v in q_vecs]
            cases: dict[str, tuple[Callable[[int], Any], Callable[[int], dict[str, Any]]]] = {
                "text": (lambda i: col.search(q_texts[i % nq], k=k),
                         lambda i: {"query": q_texts[i % nq], "k": k, "mode": "vector"}),
                "vector": (lambda i: col.search(q_vecs[i % nq], k=k),
                           lambda i: {"vector": vec_lists[i % nq], "k": k, "mode": "vector"}),
                "hybrid": (lambda i: app_search(col, q_texts[i % nq], k=k, mode="hybrid"),
                           lambda i: {"query": q_texts[i % nq], "k": k, "mode": "hybrid"}),
            }
            results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for lib, http in cases.values():  # warm-up both paths
                run_threads(lib, args.clients, 1.0)
                asyncio.run(run_http(url, http, args.clients, 1.0))
            for rnd in range(args.rounds):
                for name, (lib, http) in cases.items():
                    order = ["library", "server"] if rnd % 2 == 0 else ["server", "library"]
                    for path in order:
                        r = (run_threads(lib, args.clients, args.seconds) if path == "library"
                             else asyncio.run(run_http(url, http, args.clients, args.seconds)))
                        results.setdefault((name, path), []).append(r)
            database.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    print(f"\n{args.n:,} documents, {args.clients} concurrent callers, k={args.k}, {args.seconds:.0f} s x "
          f"{args.rounds} rounds (medians); server model workers: {args.model_workers or 'default'}")
    print(f"{'case':8s} {'path':8s} {'QPS':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'server/library QPS':>19s}")
    for name in cases:
        lib_qps = statistics.median(r[0] for r in results[(name, "library")])
        for path in ("library", "server"):
            rows = results[(name, path)]
            qps = statistics.median(r[0] for r in rows)
            ratio = f"{qps / lib_qps:.2f}x" if path == "server" else ""
            print(f"{name:8s} {path:8s} {qps:8.1f} {statistics.median(r[1] for r in rows):8.2f} "
                  f"{statistics.median(r[2] for r in rows):8.2f} {ratio:>19s}")


if __name__ == "__main__":
    main()
