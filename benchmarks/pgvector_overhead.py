"""What semkit costs on top of raw psycopg + pgvector, on the same server and table layout.

Bulk load: ``PgVectorStore.upsert`` of n precomputed vectors into a fresh collection (COPY into
a staging table, INSERT ... ON CONFLICT, HNSW build), against two hand-written psycopg loads
of the same table: the same staged upsert, and the fastest possible load (COPY straight into
the empty table, then CREATE INDEX), which cannot upsert. Every load ends with an HNSW index.

Queries: one query at a time, top-10 by cosine through HNSW (ef_search 40, the server default,
for every row), semkit and raw interleaved query by query so all see the same machine load:

- ``Collection.search`` (the surface: query re-validation, normalisation, hits with text and
  metadata) against raw psycopg reading the same columns in its k-NN statement
  (``SELECT id, content, metadata, embedding <=> q AS d ... ORDER BY d LIMIT 10``): both are one
  round trip per query;
- ``store.query`` (ids and scores) against raw ``SELECT id, embedding <=> q ...``.

Run::

    python benchmarks/pgvector_overhead.py            # starts a throwaway PostgreSQL
    python benchmarks/pgvector_overhead.py --dsn postgresql://...  --n 30000

Prints medians over rounds and the ratios; the absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from _machine import cpu_model

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


def raw_direct(conn: Any, table: str, ids: list[str], vectors: np.ndarray, metadata: list[dict],
               texts: list[str]) -> None:
    from psycopg.types.json import Jsonb

    with conn.transaction():
        with conn.cursor() as cur, cur.copy(
            f"COPY {table} (id, content, metadata, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "jsonb", "vector"])
            for i, t, m, v in zip(ids, texts, metadata, vectors, strict=True):
                copy.write_row((i, t, Jsonb(m), v))
        hnsw(conn, table)


def raw_staged(conn: Any, table: str, ids: list[str], vectors: np.ndarray, metadata: list[dict],
               texts: list[str]) -> None:
    metas = [json.dumps(m) for m in metadata]
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE stage (id text, content text, metadata text, embedding vector) "
                     "ON COMMIT DROP")
        with conn.cursor() as cur:
            with cur.copy("COPY stage FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "text", "text", "vector"])
                for i, t, m, v in zip(ids, texts, metas, vectors, strict=True):
                    copy.write_row((i, t, m, v))
            cur.execute(f"INSERT INTO {table} (id, content, metadata, embedding) SELECT id, content, "
                        "metadata::jsonb, embedding FROM stage ON CONFLICT (id) DO UPDATE SET "
                        "content = EXCLUDED.content, metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding")
        hnsw(conn, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="an existing PostgreSQL with pgvector (default: start one)")
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--replica", action="store_true",
                        help="also start a streaming replica (throwaway server only) and measure searches on it "
                             "and read-your-writes after single-row writes")
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
    texts = [f"document {i} of group {i % 7}" for i in range(args.n)]
    load_start = os.getloadavg()
    print(f"# CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; load average at start "
          f"{' '.join(f'{v:.2f}' for v in load_start)}")
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
                store.upsert(name, ids, vectors, texts, metadata)
            else:
                raw_table(conn, name, args.dims)
                (raw_staged if what == "raw staged upsert" else raw_direct)(conn, name, ids, vectors, metadata,
                                                                             texts)
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

    # Queries against the last semkit table, through semkit and through a raw connection that
    # has the session settings semkit's pool uses (jit off, iterative scans), at the same
    # ef_search (the server default, 40), so the difference is the Python path around the query.
    from semkit.database import Database

    docs = Database(store).collection(last, model=None)
    table = store._info(last).table
    queries = clustered(args.queries, args.dims, seed=1)
    raw_ids_sql = f"SELECT id, embedding <=> %s AS d FROM {table} ORDER BY d LIMIT 10"
    raw_records_sql = f"SELECT id, embedding <=> %s AS d, content, metadata FROM {table} ORDER BY d LIMIT 10"
    conn.execute("SET jit = off")
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    contenders: dict[str, Any] = {
        "Collection.search (hits with text + metadata)": lambda q: [(h.id, h.text) for h in docs.search(q, k=10)],
        "raw psycopg, id + content + metadata + distance": lambda q: [
            (r[0], r[2]) for r in conn.execute(raw_records_sql, (q,)).fetchall()],
        "store.query (ids + scores)": lambda q: store.query(last, q[None, :], 10)[0].ids,
        "raw psycopg, id + distance": lambda q: [r[0] for r in conn.execute(raw_ids_sql, (q,)).fetchall()],
    }
    names = list(contenders)
    for q in queries[:20]:  # warm the cache and the prepared statements
        for fn in contenders.values():
            fn(q)
    times: dict[str, list[float]] = {name: [] for name in names}
    same = 0
    # Whoever searches a query vector first pays the cache misses on the index pages it visits,
    # so the order rotates from one query to the next.
    for n, q in enumerate(queries):
        found: dict[str, Any] = {}
        for turn in range(len(names)):
            name = names[(n + turn) % len(names)]
            t = time.perf_counter()
            found[name] = contenders[name](q)
            times[name].append(time.perf_counter() - t)
        same += [i for i, _ in found[names[0]]] == [i for i, _ in found[names[1]]]
    t = time.perf_counter()
    docs.search_many(queries, k=10)
    batch = (time.perf_counter() - t) / len(queries)
    p50 = {name: statistics.median(ts) for name, ts in times.items()}
    print("\n| one query, k=10, ef_search 40 | p50 ms | p95 ms | q/s | semkit / raw |")
    print("|---|---:|---:|---:|---:|")
    pairs = {names[0]: names[1], names[2]: names[3]}
    for name in names:
        ratio = f"{p50[name] / p50[pairs[name]]:.2f}x time, {p50[pairs[name]] / p50[name]:.2f}x q/s" \
            if name in pairs else "1.00x"
        print(f"| {name} | {p50[name] * 1e3:.3f} | {np.percentile(times[name], 95) * 1e3:.3f} | "
              f"{1 / p50[name]:,.0f} | {ratio} |")
    print(f"| Collection.search_many, {len(queries)} queries in one call (per query) | {batch * 1e3:.3f} | | "
          f"{1 / batch:,.0f} | |")
    print(f"\nsame top-10 (ids, order) surface vs raw: {same}/{len(queries)}")
    print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
          " (ratios are only meaningful on a quiet machine)")

    if args.replica and server is not None:
        replica_section(server, store, last, queries)
    store.drop_collection(last)
    store.close()
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()
    if server is not None:
        server.stop()


def replica_section(server: Any, store: Any, collection: str, queries: np.ndarray) -> None:
    """Search latency on a streaming replica vs the primary, and what read-your-writes costs
    right after a one-row write: how often the replica already has it, and how long it takes."""
    import psycopg
    from tests.support.pgreplica import start_replica

    from semkit.store.pgvector import PgVectorStore

    # The throwaway server runs with synchronous_commit=off, which holds WAL back from the
    # replica for up to wal_writer_delay (200 ms) or more; a real server's default is on. A
    # database setting outranks the server's command line, for the connections opened below.
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute("ALTER DATABASE postgres SET synchronous_commit = on")
    replica = start_replica(server)
    try:
        with PgVectorStore(server.dsn, schema=store.schema, replicas=[replica.dsn]) as routed:
            probe = psycopg.connect(replica.dsn, autocommit=True)
            target = psycopg.connect(server.dsn, autocommit=True)
            lsn = target.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            while not probe.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                time.sleep(0.01)
            for q in queries[:20]:
                routed.query_records(collection, q[None, :], 10)
                store.query_records(collection, q[None, :], 10)
            on_replica, on_primary = [], []
            for n, q in enumerate(queries):
                for who in ((0, 1) if n % 2 == 0 else (1, 0)):
                    t = time.perf_counter()
                    (routed if who == 0 else store).query_records(collection, q[None, :], 10)
                    (on_replica if who == 0 else on_primary).append(time.perf_counter() - t)
            assert routed.replica_stats()["primary"] == 0
            # Read-your-writes after each one-row write: served by the replica when it has
            # replayed the write already, else by the primary (no waiting).
            catch_up, consistent = [], []
            dims = queries.shape[1]
            for n in range(200):
                before = routed.replica_stats()["primary"]
                routed.upsert(collection, [f"ryw{n}"], queries[n % len(queries)][None, :dims])
                t = time.perf_counter()
                with routed.read_your_writes():
                    routed.query_records(collection, queries[n % len(queries)][None, :], 10)
                consistent.append((time.perf_counter() - t, routed.replica_stats()["primary"] > before))
                lsn = target.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                t = time.perf_counter()
                while not probe.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]:
                    time.sleep(0.0005)  # a busy loop would starve the replica's replay on a small host
                catch_up.append(time.perf_counter() - t)
            probe.close()
            target.close()
        to_primary = sum(1 for _, p in consistent if p)
        print("\n| streaming replica on the same host (primary: synchronous_commit=on) | p50 ms | p95 ms |")
        print("|---|---:|---:|")
        print(f"| query_records on the replica | {statistics.median(on_replica) * 1e3:.3f} | "
              f"{np.percentile(on_replica, 95) * 1e3:.3f} |")
        print(f"| query_records on the primary | {statistics.median(on_primary) * 1e3:.3f} | "
              f"{np.percentile(on_primary, 95) * 1e3:.3f} |")
        print(f"| read-your-writes search right after a one-row upsert | "
              f"{statistics.median([t for t, _ in consistent]) * 1e3:.3f} | "
              f"{np.percentile([t for t, _ in consistent], 95) * 1e3:.3f} |")
        print(f"| replica replay reaching the write, measured after that search | "
              f"{statistics.median(catch_up) * 1e3:.3f} | {np.percentile(catch_up, 95) * 1e3:.3f} |")
        print(f"read-your-writes searches sent to the primary because the replica had not replayed the write "
              f"yet: {to_primary}/{len(consistent)}")
    finally:
        replica.stop()


if __name__ == "__main__":
    main()
