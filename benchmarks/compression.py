"""Compressed storage, measured: index size and recall@10 after rescoring, per dtype.

For each dtype a store really keeps (embedded: float32, float16, int8, binary; pgvector with
``--pg``: float32, float16 = halfvec, binary = bit index), the benchmark stores the same real
all-MiniLM-L6-v2 vectors (``_vectors.py``: held-out queries, exact ground truth), builds the
index through the store (HNSW; binary: inverted lists over sign bits, FAISS ``IndexBinaryIVF``
/ pgvector IVFFlat), and measures:

- index bytes per vector: embedded, the FAISS index in memory as FAISS serialises it (codes +
  graph or lists); pgvector, ``pg_relation_size`` of the vector
  index (what should stay cached). Also the ratio to float32's index and the bytes of the
  vector codes alone;
- recall@10 of ``store.query(k=10)`` at the store's default ef against exact search, with the
  quantised candidates rescored in float32 (the rescoring factor is ``ann_index.RESCORE_FACTOR``
  / ``pg_quantized.RESCORE_FACTOR``), and a sweep of that factor (``--factors``);
- p50 latency of one query at a time (provisional: say the load).

The embedded store keeps the float32 matrix in memory whatever the dtype (it rescores and answers
exact queries from it): a smaller index shrinks the index file and the graph's share of RAM,
not the matrix. Quality figures do not depend on the machine's load; timings do.

    python benchmarks/compression.py                 # embedded, 30k vectors
    python benchmarks/compression.py --pg            # + pgvector on a throwaway local server
    python benchmarks/compression.py --pg --write    # + write src/semkit/data/compression.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "src" / "semkit" / "data" / "compression.json"
EMBEDDED_DTYPES = ("float32", "float16", "int8", "binary")
PG_DTYPES = ("float32", "float16", "binary")


def recall_at(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k].tolist())) / k for f, t in zip(found, truth, strict=True)]))


def run_queries(query: Any, queries: np.ndarray, positions: dict[str, int]) -> tuple[list[list[int]], float]:
    """Ids found per query (as corpus rows) and the p50 latency in ms, one query at a time."""
    found: list[list[int]] = []
    times: list[float] = []
    for q in queries:
        t = time.perf_counter()
        hits = query(q[None, :])
        times.append(time.perf_counter() - t)
        found.append([positions[i] for i in hits.ids])
    return found, statistics.median(times) * 1e3


def index_in_memory(store: Any) -> Any:
    """The ``AnnIndex`` the embedded store holds for its one collection (read from its in-memory
    state: the index file of a float32 collection keeps the graph only, its vectors live in SQLite)."""
    (live,) = store._lives.values()
    return live.ann


def bench_embedded(data: Any, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from semkit.store import ann_index
    from semkit.store.base import CollectionSpec
    from semkit.store.embedded import EmbeddedStore

    n, dims = data.corpus.shape
    positions = {cid: i for i, cid in enumerate(data.corpus_ids)}
    queries, truth = data.queries[: args.queries], data.truth[: args.queries]
    rows: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="semkit-compression-") as tmp:
        for dtype in EMBEDDED_DTYPES:
            store = EmbeddedStore(Path(tmp) / dtype, exact_threshold=0, durable=False)
            store.create_collection(CollectionSpec("c", dims, dtype=dtype))  # type: ignore[arg-type]
            for s in range(0, n, 10_000):
                store.upsert("c", data.corpus_ids[s:s + 10_000], data.corpus[s:s + 10_000])
            t = time.perf_counter()
            store.build_index("c")
            build = time.perf_counter() - t
            ann = index_in_memory(store)
            index_bytes = ann.memory_bytes()
            label = type(ann.index).__name__
            if dtype == "binary":
                label += f" {ann.index.nlist} lists, {ann_index.binary_probes(ann.index.nlist)} probed"
            default = ann_index.RESCORE_FACTOR[dtype]  # type: ignore[index]
            for factor in sorted({default, *(args.factors if dtype in ("int8", "binary") else [])}):
                ann_index.RESCORE_FACTOR[dtype] = factor  # type: ignore[index]
                found, p50 = run_queries(lambda q, s=store: s.query("c", q, args.k)[0], queries, positions)
                recall = recall_at(found, truth, args.k)
                sweep.append({"backend": "embedded", "dtype": dtype, "rescore_factor": factor,
                              "recall_at_10": round(recall, 4), "p50_ms": round(p50, 3)})
                print(f"  embedded {dtype:<8} factor x{factor:<3} recall@{args.k} {recall:.4f}  p50 {p50:.3f} ms",
                      file=sys.stderr, flush=True)
                if factor == default:
                    rows.append({"backend": "embedded", "dtype": dtype, "dims": dims, "n": n,
                                 "index": label, "code_bytes": ann.code_bytes,
                                 "index_bytes_per_vector": round(index_bytes / n, 1),
                                 "recall_at_10": round(recall, 4), "rescore_factor": factor,
                                 "p50_ms": round(p50, 3), "build_s": round(build, 2)})
            ann_index.RESCORE_FACTOR[dtype] = default  # type: ignore[index]
            store.close()
    return rows, sweep


def bench_pgvector(data: Any, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    import psycopg

    from semkit.store import ann_index, pg_quantized
    from semkit.store.base import CollectionSpec
    from semkit.store.pg_sql import index_names, table_name
    from semkit.store.pgvector import PgVectorStore

    server = None
    dsn = args.dsn
    if dsn is None:
        from tests.support.pgserver import start_postgres

        server = start_postgres()
        dsn = server.dsn
    n, dims = data.corpus.shape
    positions = {cid: i for i, cid in enumerate(data.corpus_ids)}
    queries, truth = data.queries[: args.queries], data.truth[: args.queries]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    rows: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    version = ""
    try:
        with PgVectorStore(dsn, schema=schema, maintenance_work_mem="512MB") as store, \
                psycopg.connect(dsn, autocommit=True) as conn:
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            for dtype in PG_DTYPES:
                store.create_collection(CollectionSpec(dtype, dims, dtype=dtype))  # type: ignore[arg-type]
                t = time.perf_counter()
                store.upsert(dtype, data.corpus_ids, data.corpus)  # one batch: the index is rebuilt once
                build = time.perf_counter() - t
                table = table_name(dtype)
                name = pg_quantized.binary_index_name(table) if dtype == "binary" else index_names(table)["hnsw"]
                index = f"{schema}.{name}"
                index_bytes, method, options = conn.execute(
                    "SELECT pg_relation_size(c.oid), am.amname, c.reloptions FROM pg_class c "
                    "JOIN pg_am am ON am.oid = c.relam WHERE c.oid = %s::regclass", (index,)).fetchone()
                lists = int(dict(o.split("=", 1) for o in options or []).get("lists", 0))
                default = pg_quantized.RESCORE_FACTOR if dtype == "binary" else 1
                for factor in sorted({default, *(args.factors if dtype == "binary" else [])}):
                    if dtype == "binary":
                        pg_quantized.RESCORE_FACTOR = factor
                    found, p50 = run_queries(lambda q, d=dtype: store.query(d, q, args.k)[0], queries, positions)
                    recall = recall_at(found, truth, args.k)
                    sweep.append({"backend": "pgvector", "dtype": dtype, "rescore_factor": factor,
                                  "recall_at_10": round(recall, 4), "p50_ms": round(p50, 3)})
                    print(f"  pgvector {dtype:<8} factor x{factor:<3} recall@{args.k} {recall:.4f}  "
                          f"p50 {p50:.3f} ms", file=sys.stderr, flush=True)
                    if factor == default:
                        rows.append({"backend": "pgvector", "dtype": dtype, "dims": dims, "n": n,
                                     "index": f"bit {method} (binary_quantize) {lists} lists, "
                                              f"{ann_index.binary_probes(lists)} probed" if dtype == "binary" else
                                     ("halfvec HNSW" if dtype == "float16" else "vector HNSW"),
                                     "code_bytes": {"float32": 4 * dims, "float16": 2 * dims,
                                                    "binary": dims // 8}[dtype],
                                     "index_bytes_per_vector": round(index_bytes / n, 1),
                                     "recall_at_10": round(recall, 4), "rescore_factor": factor,
                                     "p50_ms": round(p50, 3), "build_s": round(build, 2)})
                if dtype == "binary":
                    pg_quantized.RESCORE_FACTOR = default
            for dtype in PG_DTYPES:
                store.drop_collection(dtype)
    finally:
        if server is not None:
            server.stop()
    return rows, sweep, version


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    base = {r["backend"]: r["index_bytes_per_vector"] for r in rows if r["dtype"] == "float32"}
    for r in rows:
        r["index_ratio_to_float32"] = round(r["index_bytes_per_vector"] / base[r["backend"]], 4)
    return rows


def print_table(rows: list[dict[str, Any]], sweep: list[dict[str, Any]], k: int) -> None:
    print(f"\n| backend | dtype | index | code B | index B/vector | x float32 index | rescore x | recall@{k} | "
          "p50 ms | build s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['dtype']} | {r['index']} | {r['code_bytes']} | "
              f"{r['index_bytes_per_vector']:,.0f} | "
              f"{r['index_ratio_to_float32']:.3f} (1/{1 / r['index_ratio_to_float32']:.1f}) | {r['rescore_factor']} | "
              f"{r['recall_at_10']:.4f} | {r['p50_ms']:.3f} | {r['build_s']:.1f} |")
    print(f"\nrescoring factor sweep (recall@{k} / p50 ms):")
    for s in sweep:
        print(f"  {s['backend']:<9} {s['dtype']:<8} x{s['rescore_factor']:<3} {s['recall_at_10']:.4f}  "
              f"{s['p50_ms']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30_000, help="corpus vectors (real MiniLM)")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--factors", default="2,5,10,20", help="rescoring factors to sweep (int8, binary)")
    parser.add_argument("--pg", action="store_true", help="also pgvector (a throwaway local server unless --dsn)")
    parser.add_argument("--dsn", help="an existing PostgreSQL with pgvector")
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(REPO)}")
    args = parser.parse_args()
    args.factors = [int(f) for f in args.factors.split(",") if f]
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from _vectors import dataset

    load_start = os.getloadavg()[0]
    data = dataset(args.n)
    rows, sweep = bench_embedded(data, args)
    pg_version = None
    if args.pg:
        pg_rows, pg_sweep, pg_version = bench_pgvector(data, args)
        rows += pg_rows
        sweep += pg_sweep
    rows = with_ratios(rows)
    load = f"{load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    print_table(rows, sweep, args.k)
    print(f"\n{args.n:,} real MiniLM vectors x {data.corpus.shape[1]}, {len(data.queries[:args.queries])} held-out "
          f"queries, k={args.k}; load average {load}: timings provisional, recall and sizes final")
    if args.write:
        import faiss

        command = "python benchmarks/compression.py " + " ".join(a for a in sys.argv[1:] if a != "--write")
        OUT.write_text(json.dumps({
            "about": "Measured index bytes per vector and recall@10 after rescoring for each dtype a backend "
                     "stores, on real all-MiniLM-L6-v2 vectors. Produced by benchmarks/compression.py; read by "
                     "semkit.capacity.",
            "command": command, "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.system()} {platform.release()}",
            "load": load, "versions": {"faiss-cpu": faiss.__version__, "pgvector": pg_version},
            "n": args.n, "queries": len(data.queries[:args.queries]), "k": args.k, "rows": rows, "sweep": sweep,
        }, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
