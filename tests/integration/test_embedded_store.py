"""Backend-specific tests of ``EmbeddedStore``: the SQL filter compiler against the reference
semantics, the HNSW path (recall, tombstones, filters, quantised dtypes), the derived index
file (reuse, catch-up, corruption), cross-connection and cross-process visibility, the write
lock, and FTS5 query escaping. The generic behaviour is in ``tests/contract``."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from semkit.errors import CollectionNotFound, InvalidInput, StoreError, StoreLocked
from semkit.store import embedded
from semkit.store.ann_index import AnnIndex
from semkit.store.base import CollectionSpec
from semkit.store.embedded import EmbeddedStore
from semkit.store.filters import matches, parse
from semkit.vectors import normalize

DIMS = 32


def clustered(n: int, seed: int = 0, dims: int = DIMS) -> np.ndarray:
    """Vectors with cluster structure, like real embeddings (uniform noise has no neighbours)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 50, 1), dims))
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dims))
    return x.astype(np.float32)


def brute_force(matrix: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    sims = normalize(queries) @ normalize(matrix).T
    return [list(np.argsort(-row, kind="stable")[:k]) for row in sims]


def fill(store: EmbeddedStore, name: str, n: int, *, metric: str = "cosine", dtype: str = "float32",
         seed: int = 0) -> tuple[list[str], np.ndarray]:
    store.create_collection(CollectionSpec(name, DIMS, metric=metric, dtype=dtype))  # type: ignore[arg-type]
    vecs = clustered(n, seed)
    ids = [f"r{i}" for i in range(n)]
    store.upsert(name, ids, vecs, metadata=[{"g": i % 10, "even": i % 2 == 0} for i in range(n)])
    return ids, vecs


# --- filters: SQL compilation agrees with filters.matches --------------------------------------

TRICKY = [
    {"a": 1}, {"a": 1.0}, {"a": 2.5}, {"a": True}, {"a": False}, {"a": None}, {"a": "1"},
    {"a": "b"}, {"a": "B"}, {"a": "é"}, {"a": [1, 2]}, {"a": {"b": 1}}, {"a": {"b": "x"}},
    {"a": {"b": None}}, {"a": 0}, {"a": -3}, {"a": 10**20}, {}, {"b": 1}, {"a-b": 3},
    {"a": {"b": True}}, {"a": ""},
]
FILTERS = [
    {"a": 1}, {"a": True}, {"a": False}, {"a": None}, {"a": "1"}, {"a": {"$ne": 1}},
    {"a": {"$ne": None}}, {"a": {"$ne": True}}, {"a": {"$gt": 0}}, {"a": {"$gte": 1}},
    {"a": {"$lt": 2}}, {"a": {"$lte": 2.5}}, {"a": {"$gt": "a"}}, {"a": {"$lt": "b"}},
    {"a": {"$in": [1, "b", None]}}, {"a": {"$nin": [1, True]}}, {"a": {"$in": [False]}},
    {"a": {"$exists": True}}, {"a": {"$exists": False}}, {"a.b": 1}, {"a.b": {"$exists": True}},
    {"a.b": None}, {"a.b": {"$ne": "x"}}, {"a-b": {"$gte": 3}}, {"a": 10**20},
    {"$or": [{"a": 1}, {"b": 1}]}, {"$and": [{"a": {"$gte": 0}}, {"a": {"$lt": 1}}]},
    {"a": {"$gt": 0, "$lt": 3}}, {"$or": [{"a": {"$exists": False}}, {"a": {"$nin": ["b"]}}]},
    {"a": ""}, {"a": {"$gte": ""}},
]


def test_sql_filters_agree_with_reference_semantics(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path) as store:
        store.create_collection(CollectionSpec("f", 2))
        ids = [f"m{i}" for i in range(len(TRICKY))]
        store.upsert("f", ids, np.ones((len(ids), 2), dtype=np.float32), metadata=TRICKY)
        for spec in FILTERS:
            node = parse(spec)
            want = [i for i, m in zip(ids, TRICKY, strict=True) if matches(node, m)]
            got = [r.id for batch in store.scan("f", where=node) for r in batch]
            assert got == want, spec
            assert store.count("f", node) == len(want), spec


def test_metadata_that_is_not_json_is_rejected_and_nothing_lands(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path) as store:
        store.create_collection(CollectionSpec("c", 2))
        with pytest.raises(InvalidInput, match=r"metadata\.x is nan, which JSON cannot hold"):
            store.upsert("c", ["a", "b"], np.ones((2, 2)), metadata=[{"x": 1}, {"x": float("nan")}])
        with pytest.raises(InvalidInput, match="more than once"):
            store.upsert("c", ["a", "a"], np.ones((2, 2)))
        assert store.count("c") == 0


# --- the HNSW path ---------------------------------------------------------------------------


def test_hnsw_recall_and_scores_match_exact(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        ids, vecs = fill(store, "c", 3000)
        queries = clustered(100, seed=7)
        approx = store.query("c", queries, 10, ef=128)
        exact = store.query("c", queries, 10, exact=True)
        truth = brute_force(vecs, queries, 10)
        assert [[ids[i] for i in t] for t in truth] == [n.ids for n in exact]
        hits = sum(len(set(a.ids) & set(e.ids)) for a, e in zip(approx, exact, strict=True))
        assert hits / 1000 >= 0.95
        # Scores of the same record agree between the two paths.
        a, e = approx[0], exact[0]
        common = set(a.ids) & set(e.ids)
        for rid in common:
            assert a.scores[a.ids.index(rid)] == pytest.approx(e.scores[e.ids.index(rid)], abs=1e-5)
        assert (tmp_path / "index" / "c1.ann").exists()


@pytest.mark.parametrize("metric", ["l2", "dot"])
def test_hnsw_other_metrics(tmp_path: Path, metric: str) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        fill(store, "c", 1500, metric=metric)
        queries = clustered(20, seed=3)
        approx = store.query("c", queries, 5, ef=200)
        exact = store.query("c", queries, 5, exact=True)
        for a, e in zip(approx, exact, strict=True):
            assert a.ids[0] == e.ids[0]
            np.testing.assert_allclose(a.scores[0], e.scores[0], rtol=1e-4, atol=1e-4)
            assert list(a.scores) == sorted(a.scores, reverse=True)


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_quantised_graph_is_rescored_with_float32(tmp_path: Path, dtype: str) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        fill(store, "c", 2000, dtype=dtype)
        queries = clustered(30, seed=5)
        approx = store.query("c", queries, 10, ef=128)
        exact = store.query("c", queries, 10, exact=True)
        hits = sum(len(set(a.ids) & set(e.ids)) for a, e in zip(approx, exact, strict=True))
        assert hits / 300 >= 0.9
        # Rescored: the scores are the float32 ones, not the quantised approximations.
        for a, e in zip(approx, exact, strict=True):
            for rid, score in zip(a.ids, a.scores, strict=True):
                if rid in e.ids:
                    assert score == pytest.approx(e.scores[e.ids.index(rid)], abs=1e-6)


def test_filtered_hnsw_returns_only_matches_and_falls_back_when_sparse(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path, exact_threshold=0, filter_exact_fraction=0.0)
    with store:
        ids, vecs = fill(store, "c", 3000)
        queries = clustered(30, seed=9)
        where = parse({"g": {"$in": [1, 2, 3]}})
        keep = [i for i in range(3000) if i % 10 in (1, 2, 3)]
        truth = brute_force(vecs[keep], queries, 10)
        got = store.query("c", queries, 10, where=where, ef=128)
        hits = 0
        for n, t in zip(got, truth, strict=True):
            assert len(n.ids) == 10
            assert all(int(i[1:]) % 10 in (1, 2, 3) for i in n.ids)
            hits += len(set(n.ids) & {ids[keep[j]] for j in t})
        assert hits / 300 >= 0.9
        # A filter matching 3 records still answers all 3 (exactly), never fewer.
        rare = parse({"$and": [{"g": 3}, {"even": True}]})  # g=3 means odd: none
        store.upsert("c", ["x1", "x2", "x3"], clustered(3, seed=11), metadata=[{"g": 99}] * 3)
        got = store.query("c", queries[:2], 10, where=parse({"g": 99}))
        assert [sorted(n.ids) for n in got] == [["x1", "x2", "x3"]] * 2
        assert store.query("c", queries[:1], 5, where=rare)[0].ids == []


def test_deleted_and_replaced_records_never_come_back(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0, compact_fraction=0.5) as store:
        ids, vecs = fill(store, "c", 2000)
        store.query("c", vecs[:1], 5)  # builds the graph
        gone = ids[:300]
        store.delete("c", ids=gone)
        store.upsert("c", ["r500"], -vecs[500:501])  # replaced: its old vector must not match
        for rid in gone[:50]:
            i = int(rid[1:])
            assert rid not in store.query("c", vecs[i:i + 1], 10)[0].ids
        assert "r500" not in store.query("c", vecs[500:501], 10)[0].ids
        assert store.query("c", -vecs[500:501], 1)[0].ids == ["r500"]
        # Past the compaction fraction the graph is rebuilt without the tombstones.
        store.delete("c", ids=ids[300:1100])
        res = store.query("c", vecs[1500:1501], 3)[0]
        assert res.ids[0] == "r1500"
        assert store.count("c") == 900


@pytest.mark.parametrize(("metric", "chunk_rows"), [("l2", None), ("cosine", None), ("cosine", 7)])
def test_compaction_in_place_matches_a_fresh_mirror(tmp_path: Path, metric: str, chunk_rows: int | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Compaction moves the live rows forward inside the arrays it has (no second copy, which
    the allocator kept after it was freed); what it leaves must answer exactly as a mirror read
    afresh from SQLite, graph and all. With ``chunk_rows`` the rows move a few at a time (as a
    large collection's do: the chunk is bounded in bytes), so chunk edges are crossed."""
    if chunk_rows is not None:
        monkeypatch.setattr(embedded, "COMPACT_CHUNK_BYTES", chunk_rows * 4 * DIMS)
    queries = clustered(20, seed=5)
    with EmbeddedStore(tmp_path, exact_threshold=0, compact_fraction=0.25) as store:
        ids, vecs = fill(store, "c", 3000, metric=metric)
        store.upsert("c", ["r7"], -vecs[7:8])  # an overwrite: a tombstone and a new row
        store.query("c", queries[:1], 5)  # builds the graph and the mirror
        live = next(iter(store._lives.values()))
        matrix = live.matrix
        store.delete("c", ids=[i for n, i in enumerate(ids) if n % 5 in (1, 3)])  # 40%: past the fraction
        exact = store.query("c", queries, 10, exact=True)
        approx = store.query("c", queries, 10, ef=256)
        live = next(iter(store._lives.values()))
        assert live.n_dead == 0 and live.n == 1800 and live.matrix is matrix  # compacted, same arrays
        assert list(live.pks[: live.n]) == sorted(live.pks[: live.n])
    with EmbeddedStore(tmp_path, exact_threshold=0, index="none") as fresh:
        truth = fresh.query("c", queries, 10, exact=True)
    assert [n.ids for n in exact] == [n.ids for n in truth]
    np.testing.assert_allclose(np.array([n.scores for n in exact]), np.array([n.scores for n in truth]),
                               rtol=1e-5, atol=1e-5)
    overlap = sum(len(set(a.ids) & set(t.ids)) for a, t in zip(approx, truth, strict=True))
    assert overlap / 200 >= 0.9
    assert all(int(i[1:]) % 5 not in (1, 3) for n in exact for i in n.ids)


def _wal_bytes(path: Path) -> int:
    wal = path / (embedded.DB_NAME + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_large_delete_and_drop_leave_no_large_write_ahead_log(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page a large delete frees goes through SQLite's write-ahead log; without a
    checkpoint the -wal file kept that size for as long as the store stayed open."""
    monkeypatch.setattr(embedded, "LARGE_DELETE_RECORDS", 500)
    with EmbeddedStore(tmp_path, index="none") as store:
        ids, _ = fill(store, "c", 3000)
        fill(store, "d", 2000)
        store.delete("c", ids=ids[:499])  # below the threshold: SQLite's own checkpoints only
        assert _wal_bytes(tmp_path) > 0
        store.delete("c", ids=ids[499:])
        assert _wal_bytes(tmp_path) == 0 and store.count("c") == 0
        fill(store, "e", 10)
        store.drop_collection("d")
        assert _wal_bytes(tmp_path) == 0
        assert store.count("e") == 10 and store.list_collections() == [store.get_collection("c"),
                                                                       store.get_collection("e")]


def test_a_reader_elsewhere_never_holds_up_the_checkpoint_and_the_log_is_cut_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While another connection reads an older snapshot, the checkpoint cannot empty the log: it
    gives way at once (busy timeout 0), the delete still succeeds, and ``journal_size_limit``
    cuts the log back once the reader has gone: the first commit checkpoints the log (SQLite
    does at every commit past 1,000 pages, and this delete wrote more), the next restarts it."""
    import sqlite3

    monkeypatch.setattr(embedded, "LARGE_DELETE_RECORDS", 500)
    monkeypatch.setattr(embedded, "WAL_KEEP_BYTES", 64 << 10)
    with EmbeddedStore(tmp_path, index="none", lock_timeout=30) as store:
        ids, _ = fill(store, "c", 12_000)
        reader = sqlite3.connect(str(tmp_path / embedded.DB_NAME), isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM collections").fetchone()[0] == 1  # holds a snapshot
        done = threading.Event()
        worker = threading.Thread(target=lambda: (store.delete("c", ids=ids), done.set()))
        worker.start()
        worker.join(timeout=20)  # far under the 30 s busy timeout a waiting checkpoint would take
        assert done.is_set() and store.count("c") == 0
        assert _wal_bytes(tmp_path) > 64 << 10  # the reader kept the log from being emptied
        reader.execute("COMMIT")
        reader.close()
        fill(store, "d", 1)  # checkpoints the whole log
        store.upsert("d", ["x"], clustered(1, 3))  # restarts it, cut back to the limit
        assert _wal_bytes(tmp_path) <= 64 << 10


# --- the derived index file ----------------------------------------------------------------


def test_index_file_is_reused_and_caught_up_when_stale(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        ids, vecs = fill(store, "c", 1500)
        store.build_index("c")
    index = tmp_path / "index" / "c1.ann"
    _, seq, pks = AnnIndex.load(index, dims=DIMS, metric="cosine", dtype="float32",
                                tag={"cid": 1, "store_id": _store_id(tmp_path)})
    assert len(pks) == 1500 and seq == 1
    # Another writer (no index in memory) adds and deletes: the file is now stale.
    with EmbeddedStore(tmp_path, index="none") as other:
        extra = clustered(200, seed=21)
        other.upsert("c", [f"n{i}" for i in range(200)], extra)
        other.delete("c", ids=ids[:100])
    with EmbeddedStore(tmp_path, exact_threshold=0, index_save_every=1) as store:
        assert store.query("c", extra[:1], 1)[0].ids == ["n0"]
        assert ids[0] not in store.query("c", vecs[:1], 10)[0].ids
    _, seq, pks = AnnIndex.load(index, dims=DIMS, metric="cosine", dtype="float32",
                                tag={"cid": 1, "store_id": _store_id(tmp_path)})
    assert seq == 3 and len(pks) == 1700  # caught up and saved: positions include tombstones


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_index_file_is_rebuilt_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        ids, vecs = fill(store, "c", 1500)
        before = store.query("c", vecs[:20], 5, ef=200)
    index = tmp_path / "index" / "c1.ann"
    data = bytearray(index.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) - 100] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(b"not an index at all" * 10)
    else:
        data = bytearray()
    index.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="semkit.store.embedded"), \
            EmbeddedStore(tmp_path, exact_threshold=0) as store:
        after = store.query("c", vecs[:20], 5, ef=200)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    assert [n.ids[0] for n in after] == [n.ids[0] for n in before] == ids[:20]
    AnnIndex.load(index, dims=DIMS, metric="cosine", dtype="float32",
                  tag={"cid": 1, "store_id": _store_id(tmp_path)})  # a good file again


def test_index_of_another_store_is_not_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Same cid, same pks, different data: the store id in the tag tells them apart."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, seed in ((a, 0), (b, 1)):
        with EmbeddedStore(folder, exact_threshold=0) as store:
            fill(store, "c", 1000, seed=seed)
            store.build_index("c")
    (b / "index" / "c1.ann").write_bytes((a / "index" / "c1.ann").read_bytes())
    vecs_b = clustered(1000, seed=1)
    with caplog.at_level(logging.WARNING, logger="semkit.store.embedded"), \
            EmbeddedStore(b, exact_threshold=0) as store:
        assert store.query("c", vecs_b[:1], 1, ef=100)[0].ids == ["r0"]
    assert any("rebuilding" in r.getMessage() for r in caplog.records)


def test_index_file_missing_a_row_sqlite_has_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row below the file's last pk that the file never saw means the file is not ours."""
    import sqlite3

    with EmbeddedStore(tmp_path, exact_threshold=0, index_save_every=1) as store:
        _ids, vecs = fill(store, "c", 1000)
        store.delete("c", ids=["r0"])
        store.build_index("c")
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        db.execute("DELETE FROM c1 WHERE id='r1'")  # pk 2: the file still has it, as live
        db.execute("INSERT INTO c1 (pk, id, metadata, vector, seq) VALUES (1, 'intruder', '{}', ?, 9)",
                   (normalize(-vecs[5:6])[0].tobytes(),))
    with caplog.at_level(logging.WARNING, logger="semkit.store.embedded"), \
            EmbeddedStore(tmp_path, exact_threshold=0) as store:
        assert store.query("c", -vecs[5:6], 1, ef=100)[0].ids == ["intruder"]
        assert "r1" not in store.query("c", vecs[1:2], 5, ef=100)[0].ids
    assert any("disagrees" in r.getMessage() for r in caplog.records)


def _store_id(folder: Path) -> str:
    import sqlite3

    with sqlite3.connect(folder / "store.sqlite") as db:
        return db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()[0]


# --- collections ---------------------------------------------------------------------------


def test_rename_over_existing_keeps_the_index_and_drops_the_target(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        _, _old_vecs = fill(store, "live", 1000, seed=1)
        _, new_vecs = fill(store, "live-new", 1000, seed=2)
        store.build_index("live")
        store.build_index("live-new")
        store.rename_collection("live-new", "live")
        assert [c.name for c in store.list_collections()] == ["live"]
        assert store.query("live", new_vecs[3:4], 1)[0].ids == ["r3"]
        assert store.query("live", new_vecs[3:4], 1)[0].scores[0] == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(CollectionNotFound):
            store.count("live-new")
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["c2.ann"]


# --- concurrency ---------------------------------------------------------------------------


def test_a_second_connection_sees_committed_writes(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader, EmbeddedStore(tmp_path) as writer:
        _ids, vecs = fill(writer, "c", 1200)
        assert reader.query("c", vecs[:1], 1)[0].ids == ["r0"]
        writer.upsert("c", ["late"], -vecs[:1])
        assert reader.query("c", -vecs[:1], 1)[0].ids == ["late"]
        writer.delete("c", ids=["late"])
        assert "late" not in reader.query("c", -vecs[:1], 5)[0].ids
        # Every commit is seen by the very next query (the WAL-header fast check never lies).
        for i in range(30):
            writer.upsert("c", [f"w{i}"], vecs[i:i + 1] * -1)
            assert reader.query("c", -vecs[i:i + 1], 1, exact=i % 2 == 0)[0].ids == [f"w{i}"]
            assert reader.count("c") == 1200 + i + 1
        writer.drop_collection("c")
        with pytest.raises(CollectionNotFound):
            reader.query("c", vecs[:1], 1)


def test_a_reader_behind_a_pruned_dead_log_reloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from semkit.store import embedded

    monkeypatch.setattr(embedded, "DEAD_LOG_MAX", 10)
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader, EmbeddedStore(tmp_path) as writer:
        ids, vecs = fill(writer, "c", 1200)
        assert reader.query("c", vecs[:1], 1)[0].ids == ["r0"]
        for i in range(100):  # one deletion per write: seq passes 64, where the log is pruned
            writer.delete("c", ids=[ids[i]])
        with sqlite3.connect(tmp_path / "store.sqlite") as db:
            floor = db.execute("SELECT floor FROM collections WHERE name='c'").fetchone()[0]
        assert floor > 1  # the reader (at seq 1) can no longer catch up from the log
        for i in (0, 50, 99):
            assert ids[i] not in reader.query("c", vecs[i:i + 1], 5, ef=100)[0].ids
        assert reader.query("c", vecs[100:101], 1, ef=100)[0].ids == [ids[100]]
        assert reader.count("c") == 1100


def test_writes_from_another_process_are_visible(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader:
        _ids, vecs = fill(reader, "c", 1200)
        assert reader.query("c", vecs[:1], 1)[0].ids == ["r0"]
        code = textwrap.dedent(f"""
            import numpy as np
            from semkit.store.embedded import EmbeddedStore
            with EmbeddedStore({str(tmp_path)!r}) as s:
                s.upsert("c", ["from-child"], -np.ones((1, {DIMS}), dtype=np.float32))
                s.delete("c", ids=["r0"])
        """)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
        assert reader.query("c", -np.ones((1, DIMS)), 1)[0].ids == ["from-child"]
        assert "r0" not in reader.query("c", vecs[:1], 5)[0].ids


def test_second_writer_waits_then_raises_store_locked(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, lock_timeout=0.3) as store:
        store.create_collection(CollectionSpec("c", 2))
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import sys, time, filelock
                lock = filelock.FileLock({str(tmp_path / 'write.lock')!r})
                with lock:
                    print("held", flush=True)
                    sys.stdin.readline()
            """)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(StoreLocked, match="lock_timeout") as info:
                store.upsert("c", ["a"], np.ones((1, 2)))
            assert info.value.retryable
            assert store.count("c") == 0  # readers are never blocked by the writer
            # A write of this process waiting for the lock does not hold up its own readers.
            patient = EmbeddedStore(tmp_path, lock_timeout=120)
            waiting = threading.Thread(target=patient.upsert, args=("c", ["b"], np.ones((1, 2))))
            waiting.start()
            assert patient.count("c") == 0 and patient.query("c", np.ones((1, 2)), 1)[0].ids == []
            assert waiting.is_alive()  # still queued behind the other process
        finally:
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(timeout=30)
        waiting.join(timeout=120)
        assert patient.count("c") == 1  # the queued write landed once the lock was free
        patient.close()
        store.upsert("c", ["a"], np.ones((1, 2)))
        assert store.count("c") == 2


# --- keyword search ------------------------------------------------------------------------


def test_keyword_query_treats_fts5_syntax_as_plain_words(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path) as store:
        store.create_collection(CollectionSpec("k", 2))
        texts = ["the cat sat on the mat", "dogs AND cats", "NEAR the river", "col:umn value",
                 "quote \" inside", None]
        store.upsert("k", [f"t{i}" for i in range(6)], np.ones((6, 2)), texts=texts,
                     metadata=[{"n": i} for i in range(6)])
        for query in ['"', "AND", "NEAR(", "col:umn", "cat*", "a OR", "(", "-", "^cat", "''"]:
            store.keyword_query("k", query, 5)  # never a syntax error
        assert set(store.keyword_query("k", "cat", 5).ids) == {"t0", "t1"}  # Porter: cats → cat
        assert store.keyword_query("k", "AND", 5).ids == ["t1"]
        assert set(store.keyword_query("k", "NEAR river", 5).ids) == {"t2"}
        assert store.keyword_query("k", "umn", 5).ids == ["t3"]
        assert store.keyword_query("k", "the", 5, where=parse({"n": {"$gt": 0}})).ids == ["t2"]
        # Texts follow replacements and deletions (the FTS table is kept in sync).
        store.upsert("k", ["t0"], np.ones((1, 2)), texts=["a bird"])
        assert store.keyword_query("k", "cat", 5).ids == ["t1"]
        assert store.keyword_query("k", "bird", 5).ids == ["t0"]
        store.delete("k", ids=["t0"])
        assert store.keyword_query("k", "bird", 5).ids == []


# --- lifecycle -----------------------------------------------------------------------------


def test_closed_store_refuses_work_and_scan_streams_in_insertion_order(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    store.create_collection(CollectionSpec("c", 2))
    store.upsert("c", [f"i{i}" for i in range(25)], np.ones((25, 2)))
    store.upsert("c", ["i3"], np.ones((1, 2)))  # a replaced record moves to the end
    batches = list(store.scan("c", batch_size=10, include_vectors=False))
    assert [len(b) for b in batches] == [10, 10, 5]
    order = [r.id for r in itertools.chain.from_iterable(batches)]
    assert order[-1] == "i3" and len(set(order)) == 25
    assert [r.id for r in store.get("c", ["i9", "zz", "i1"])] == ["i9", "i1"]
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count("c")


def test_every_bit_flip_in_the_index_header_is_a_rebuild_never_a_crash(tmp_path: Path) -> None:
    """224 of 2,160 single-bit flips used to raise KeyError (a damaged key name) instead of the
    IndexFileError that triggers a rebuild."""
    from semkit.store.ann_index import MAGIC, IndexFileError

    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        fill(store, "c", 200)
        store.build_index("c")
    index = tmp_path / "index" / "c1.ann"
    good = index.read_bytes()
    header_end = len(MAGIC) + 8 + int.from_bytes(good[len(MAGIC):len(MAGIC) + 8], "little")
    tag = {"cid": 1, "store_id": _store_id(tmp_path)}
    outcomes = {"rebuild": 0, "same": 0}
    for byte in range(len(MAGIC), header_end):
        for bit in range(8):
            data = bytearray(good)
            data[byte] ^= 1 << bit
            index.write_bytes(bytes(data))
            try:
                _, _, rowids = AnnIndex.load(index, dims=DIMS, metric="cosine", dtype="float32", tag=tag)
            except IndexFileError:
                outcomes["rebuild"] += 1
            else:  # a flip that leaves the meaning intact (e.g. in JSON whitespace) must load the same
                outcomes["same"] += 1
                assert len(rowids) == 200
    assert outcomes["rebuild"] > 0


def test_an_emptied_database_file_is_store_corrupt_and_nothing_is_deleted(tmp_path: Path) -> None:
    from semkit.errors import StoreCorrupt

    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        fill(store, "c", 300)
        store.build_index("c")
    index_files = sorted((tmp_path / "index").iterdir())
    assert index_files
    (tmp_path / "store.sqlite").write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"store.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreCorrupt, match="backup"):
        EmbeddedStore(tmp_path)
    assert sorted((tmp_path / "index").iterdir()) == index_files  # not deleted as orphans


def test_a_damaged_database_page_is_store_corrupt_not_a_sqlite_error(tmp_path: Path) -> None:
    from semkit.errors import StoreCorrupt

    with EmbeddedStore(tmp_path, exact_threshold=0) as store:
        fill(store, "c", 3000)
    db = tmp_path / "store.sqlite"
    data = bytearray(db.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data) - page, page):  # scribble over every page but the first two
        data[offset:offset + 64] = b"\xa5" * 64
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="recover"), EmbeddedStore(tmp_path, exact_threshold=0) as store:
        store.count("c")
        store.query("c", clustered(1, seed=5), 5, exact=True)
        list(store.scan("c"))
