"""What semkit costs on top of raw psycopg + pgvector, on the same server and table layout.

Bulk load: ``PgVectorStore.upsert`` of n precomputed vectors into a fresh collection (COPY into
a staging table, INSERT ... ON CONFLICT, HNSW build), against two hand-written psycopg loads
of the same table: the same staged upsert, and the fastest possible load (COPY straight into
the empty table, then CREATE INDEX), which cannot upsert. Every load ends with an HNSW index.

Queries: one query at a time, top-10 by cosine through HNSW (ef_search 40), semkit and raw
interleaved query by query so both see the same machine load. Run::

    python benchmarks/pgvector_overhead.py            # starts a throwaway PostgreSQL
    python benchmarks/pgvector_overhead.py --dsn postgresql://...  --n 30000

Prints medians over rounds and the ratios; the absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def clustered(n: int, dims: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 200 centres: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, dims)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + 0.5 * rng.normal(size=(n, dims)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def raw_table(conn: Any, table: str, dims: int) -> None:
    """The table semkit creates, written by hand (same columns and GIN indexes)."""
    conn.execute(f"""CREATE TABLE {table} (
        id text COLLATE "C" PRIMARY KEY, content text,
        metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb, embedding vector({dims}) NOT NULL,
        fts tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, coalesce(content, ''))) STORED)""")
    conn.execute(f"CREATE INDEX ON {table} USING gin (metadata)")
    conn.execute(f"CREATE INDEX ON {table} USING gin (fts)")


def hnsw(conn: Any, table: str) -> None:
    conn.execute(f"CREATE INDEX ON {table} USING hnsw (embedding vector_cosine_ops) "
                 "WITH (m = 16, ef_construction = 64)")


def raw_direct(conn: Any, table: str, ids: list[str], vectors: np.ndarray, metadata: list[dict]) -> None:
    from psycopg.types.json import Jsonb

    with conn.transaction():
        with conn.cursor() as cur, cur.copy(
            f"COPY {table} (id, metadata, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "jsonb", "vector"])
            for i, m, v in zip(ids, metadata, vectors, strict=True):
                copy.write_row((i, Jsonb(m), v))
        hnsw(conn, table)


def raw_staged(conn: Any, table: str, ids: list[str], vectors: np.ndarray, metadata: list[dict]) -> None:
    metas = [json.dumps(m) for m in metadata]
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE stage (id text, metadata text, embedding vector) ON COMMIT DROP")
        with conn.cursor() as cur:
            with cur.copy("COPY stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "text", "vector"])
                for i, m, v in zip(ids, metas, vectors, strict=True):
                    copy.write_row((i, m, v))
            cur.execute(f"INSERT INTO {table} (id, metadata, embedding) SELECT id, metadata::jsonb, embedding "
                        "FROM stage ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata, "
                        "embedding = EXCLUDED.embedding")
        hnsw(conn, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="an existing PostgreSQL with pgvector (default: start one)")
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    import psycopg
    from pgvector.psycopg import register_vector

    from semkit.store.base import CollectionSpec
    from semkit.store.pgvector import PgVectorStore

    server = None
    dsn = args.dsn
    if dsn is None:
        from tests.support.pgserver import start_postgres

        server = start_postgres()
        dsn = server.dsn
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    store = PgVectorStore(dsn, schema=schema)
    conn = psycopg.connect(dsn, autocommit=True)
    register_vector(conn)
    conn.execute(f"SET search_path = {schema}, public")

    vectors = clustered(args.n, args.dims)
    ids = [f"d{i}" for i in range(args.n)]
    metadata = [{"n": i, "group": i % 7} for i in range(args.n)]
    print(f"# {args.n:,} vectors x {args.dims} dims, cosine, HNSW m=16 ef_construction=64, "
          f"pgvector {store.pgvector_version}, {args.rounds} rounds (interleaved)")

    loads: dict[str, list[float]] = {"semkit upsert": [], "raw staged upsert": [], "raw COPY + index": []}
    last = ""
    for r in range(args.rounds):
        order = list(loads) if r % 2 == 0 else list(reversed(loads))
        for what in order:
            name = f"round{r}_{order.index(what)}"
            t = time.perf_counter()
            if what == "semkit upsert":
                store.create_collection(CollectionSpec(name, args.dims))
                store.upsert(name, ids, vectors, None, metadata)
            else:
                raw_table(conn, name, args.dims)
                (raw_staged if what == "raw staged upsert" else raw_direct)(conn, name, ids, vectors, metadata)
            loads[what].append(time.perf_counter() - t)
            if what != "semkit upsert":
                conn.execute(f"DROP TABLE {name}")
            elif r < args.rounds - 1:
                store.drop_collection(name)
            else:
                last = name  # kept for the query benchmark

    print("\n| bulk load | median s | rows/s | semkit time / this |")
    print("|---|---:|---:|---:|")
    semkit_load = statistics.median(loads["semkit upsert"])
    for what, times in loads.items():
        med = statistics.median(times)
        print(f"| {what} | {med:.2f} | {args.n / med:,.0f} | {semkit_load / med:.2f}x |")

    # Queries against the last semkit table, through semkit and through a raw connection.
    table = store._info(last).table
    queries = clustered(args.queries, args.dims, seed=1)
    raw_sql = f"SELECT id, embedding <=> %s AS d FROM {table} ORDER BY d LIMIT 10"
    for q in queries[:20]:  # warm the cache and the prepared statements
        store.query(last, q[None, :], 10)
        conn.execute(raw_sql, (q,)).fetchall()
    # A second raw connection with the session settings semkit's pool uses, to tell Python
    # overhead apart from the server-side effect of hnsw.iterative_scan.
    tuned = psycopg.connect(dsn, autocommit=True)
    register_vector(tuned)
    tuned.execute(f"SET search_path = {schema}, public")
    tuned.execute("SET jit = off")
    tuned.execute("SET hnsw.iterative_scan = relaxed_order")
    for q in queries[:20]:
        tuned.execute(raw_sql, (q,)).fetchall()
    semkit_t: list[float] = []
    raw_t: list[float] = []
    tuned_t: list[float] = []
    same = 0
    # Whoever searches a query vector first pays the cache misses on the index pages it visits,
    # so the order of the three rotates from one query to the next.
    for n, q in enumerate(queries):
        found: dict[str, list[str]] = {}
        for turn in range(3):
            who = (n + turn) % 3
            t = time.perf_counter()
            if who == 0:
                found["semkit"] = store.query(last, q[None, :], 10)[0].ids
            elif who == 1:
                found["raw"] = [r[0] for r in conn.execute(raw_sql, (q,)).fetchall()]
            else:
                tuned.execute(raw_sql, (q,)).fetchall()
            (semkit_t, raw_t, tuned_t)[who].append(time.perf_counter() - t)
        same += sorted(found["semkit"]) == sorted(found["raw"])
    tuned.close()
    t = time.perf_counter()
    store.query(last, queries, 10)
    batch = (time.perf_counter() - t) / len(queries)
    p50_s, p50_r = statistics.median(semkit_t), statistics.median(raw_t)
    print("\n| one query, k=10 | p50 ms | p95 ms | semkit / raw |")
    print("|---|---:|---:|---:|")
    print(f"| semkit query() | {p50_s * 1e3:.3f} | {np.percentile(semkit_t, 95) * 1e3:.3f} | "
          f"{p50_s / p50_r:.2f}x |")
    print(f"| raw psycopg | {p50_r * 1e3:.3f} | {np.percentile(raw_t, 95) * 1e3:.3f} | 1.00x |")
    p50_t = statistics.median(tuned_t)
    print(f"| raw psycopg, iterative_scan=relaxed_order, jit=off | {p50_t * 1e3:.3f} | "
          f"{np.percentile(tuned_t, 95) * 1e3:.3f} | {p50_s / p50_t:.2f}x semkit/this |")
    print(f"| semkit query(), {len(queries)} rows in one call (per query) | {batch * 1e3:.3f} | | |")
    print(f"\nsame top-10 sets: {same}/{len(queries)}")

    store.drop_collection(last)
    store.close()
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
