"""Qdrant local mode against the embedded store, on the store benchmark's data.

Same vectors (real all-MiniLM-L6-v2 sentence embeddings from ``_vectors.py``), same held-out
queries, same ground truth (exact search) and the same timing helpers as ``search.py``: build
time (upsert + index), size on disk, single-query p50/p99 (engines interleaved in rounds),
batch QPS and recall@10. Rows:

- semkit embedded, HNSW (the store's default ef) and exact;
- semkit on qdrant-client local mode (``qdrant+local://``), and qdrant-client's own
  ``query_points`` on the same local collection, to separate semkit's layer from the engine.

qdrant-client's local mode is a pure-Python, brute-force implementation meant for development
and tests: it is exact and slow, and says nothing about a Qdrant server's speed, which runs
an HNSW index in Rust. Stores are built under /dev/shm so persistence costs no fsyncs. Run::

    python benchmarks/qdrant_search.py              # 20k vectors, 200 queries: a few minutes
    python benchmarks/qdrant_search.py --n 5000 --queries 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _vectors import dataset
from search import K, Row, _batch, _print_table, folder_mb, interleaved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="corpus vectors (default 20000)")
    parser.add_argument("--queries", type=int, default=200, help="queries timed per engine (default 200)")
    parser.add_argument("--ef", type=int, default=64, help="HNSW ef for the embedded store")
    parser.add_argument("--root", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Local mode is not recommended")

    import faiss

    from semkit.store.base import CollectionSpec
    from semkit.store.embedded import EmbeddedStore
    from semkit.store.qdrant import QdrantStore

    t0 = time.perf_counter()
    data = dataset(args.n)
    n, d = data.corpus.shape
    queries, truth = data.queries[: args.queries], data.truth[: args.queries]
    ids, texts = data.corpus_ids, data.corpus_texts
    meta = [{"n": i % 100} for i in range(n)]
    id_to_row = {s: i for i, s in enumerate(ids)}
    print(f"# dataset: {n} x {d} corpus (MiniLM sentences), {len(queries)} queries, k={K} "
          f"({time.perf_counter() - t0:.1f}s to load)")
    root = Path(tempfile.mkdtemp(prefix="semkit-qdrant-bench-", dir=args.root))
    rows: dict[str, Row] = {}
    try:
        faiss.omp_set_num_threads(2)  # the build may use both cores, as in search.py
        t = time.perf_counter()
        emb = EmbeddedStore(root / "embedded", durable=False, exact_threshold=0, ef_search=args.ef)
        emb.create_collection(CollectionSpec("bench", d))
        for s in range(0, n, 10_000):
            emb.upsert("bench", ids[s:s + 10_000], data.corpus[s:s + 10_000], texts[s:s + 10_000],
                       meta[s:s + 10_000])
        emb.build_index("bench")
        emb_build = time.perf_counter() - t
        emb.close()
        emb = EmbeddedStore(root / "embedded", exact_threshold=0, ef_search=args.ef)
        emb_disk = folder_mb(root / "embedded")

        t = time.perf_counter()
        qd = QdrantStore(str(root / "qdrant"), local=True, batch_size=1000)
        qd.create_collection(CollectionSpec("bench", d))
        for s in range(0, n, 5_000):
            qd.upsert("bench", ids[s:s + 5_000], data.corpus[s:s + 5_000], texts[s:s + 5_000], meta[s:s + 5_000])
        qd_build = time.perf_counter() - t
        qd.close()
        qd_disk = folder_mb(root / "qdrant")
        t = time.perf_counter()
        qd = QdrantStore(str(root / "qdrant"), local=True)
        qd_open = time.perf_counter() - t
        client = qd._client  # qdrant-client itself, on the same local collection
        faiss.omp_set_num_threads(1)  # FACTS: one thread per query

        def emb_hnsw(q: np.ndarray) -> list[int]:
            return [id_to_row[i] for i in emb.query("bench", q, K)[0].ids]

        def emb_exact(q: np.ndarray) -> list[int]:
            return [id_to_row[i] for i in emb.query("bench", q, K, exact=True)[0].ids]

        def semkit_qdrant(q: np.ndarray) -> list[int]:
            return [id_to_row[i] for i in qd.query("bench", q, K)[0].ids]

        def raw_qdrant(q: np.ndarray) -> list[int]:
            points = client.query_points("bench", query=q[0].tolist(), limit=K, with_payload=["_id"]).points
            return [id_to_row[p.payload["_id"]] for p in points]

        engines: dict[str, Callable[[np.ndarray], list[int]]] = {
            "semkit embedded hnsw": emb_hnsw, "semkit embedded exact": emb_exact,
            "semkit qdrant-local": semkit_qdrant, "qdrant-client local": raw_qdrant,
        }
        rows = {
            "semkit embedded hnsw": Row("semkit embedded hnsw", args.ef, emb_build, emb_disk),
            "semkit embedded exact": Row("semkit embedded exact", "-", None, emb_disk),
            "semkit qdrant-local": Row("semkit qdrant-local", "-", qd_build, qd_disk),
            "qdrant-client local": Row("qdrant-client local", "-", qd_build, qd_disk),
        }
        for fn in engines.values():  # warm up: first queries load the index and the points
            fn(queries[:1])
        interleaved(engines, queries, rows, truth)
        faiss.omp_set_num_threads(2)
        rows["semkit embedded hnsw"].batch_qps = _batch(lambda: emb.query("bench", queries, K), len(queries))
        rows["semkit embedded exact"].batch_qps = _batch(lambda: emb.query("bench", queries, K, exact=True),
                                                         len(queries))
        rows["semkit qdrant-local"].batch_qps = _batch(lambda: qd.query("bench", queries, K), len(queries), 1)
        _print_table(list(rows.values()))
        hnsw, local = rows["semkit embedded hnsw"], rows["semkit qdrant-local"]
        exact, raw = rows["semkit embedded exact"], rows["qdrant-client local"]
        print("\n| ratio (medians) | value |")
        print("|---|---:|")
        print(f"| qdrant-local p50 / embedded HNSW p50 | {local.p50 / hnsw.p50:,.0f}x |")
        print(f"| qdrant-local p50 / embedded exact p50 | {local.p50 / exact.p50:,.0f}x |")
        print(f"| semkit qdrant-local p50 / qdrant-client local p50 (semkit's layer) | {local.p50 / raw.p50:.2f}x |")
        print(f"| qdrant-local build / embedded build (upsert + index) | {qd_build / emb_build:.1f}x |")
        print(f"| qdrant-local disk / embedded disk | {qd_disk / emb_disk:.2f}x |")
        print(f"\n- build: embedded {n / emb_build:,.0f} vectors/s (upsert + HNSW), qdrant-local "
              f"{n / qd_build:,.0f} vectors/s; reopening qdrant-local loads every point: {qd_open:.1f}s")
        print(f"- recall@10 vs exact: embedded HNSW ef={args.ef} {hnsw.recall:.3f}, embedded exact "
              f"{exact.recall:.3f}, qdrant-local {local.recall:.3f} (brute force)")
        print("- qdrant-client local mode is pure Python and brute force, for development and tests; it is not "
              "a performance proxy for a Qdrant server (Rust, HNSW)")
        print("- one machine with 2 shared cores: absolute times are noisy, read the ratios")
        emb.close()
        qd.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
