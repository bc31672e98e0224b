"""The embedded store's change stamp and its search-hit path.

Readers skip SQLite's ``PRAGMA data_version`` while the shared change stamp is even and
unchanged; these tests check that every kind of write by another store (another connection,
as another process would be) is still seen by the very next search, that a writer that died
mid-write (odd stamp) makes readers check SQLite every time, and that ``Collection.search``
(which builds hits straight from the record cache) returns what ``query_records`` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semkit.database import Database
from semkit.store.embedded import STAMP_NAME, EmbeddedStore

DIMS = 16


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIMS)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fill(store: EmbeddedStore, n: int = 300) -> np.ndarray:
    vecs = _vectors(n)
    col = Database(store).collection("c", model=None, dimensions=DIMS)
    col.upsert([f"r{i}" for i in range(n)], vectors=vecs, texts=[f"text {i}" for i in range(n)],
               metadata=[{"n": i} for i in range(n)])
    return vecs


def test_every_write_by_another_connection_is_seen_by_the_next_search(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader, EmbeddedStore(tmp_path) as writer:
        vecs = _fill(writer)
        col = Database(reader).collection("c", model=None, dimensions=DIMS)
        assert col.search(vecs[3], k=1)[0].id == "r3"  # builds the graph, caches the records
        assert col.search(vecs[3], k=1)[0].metadata == {"n": 3}
        writer.delete("c", ids=["r3"])
        assert "r3" not in [h.id for h in col.search(vecs[3], k=5)]
        writer.update_metadata("c", ["r4"], [{"n": 44}])
        hit = col.search(vecs[4], k=1)[0]
        assert (hit.id, hit.metadata) == ("r4", {"n": 44})
        writer.upsert("c", ["new"], -vecs[5:6], ["fresh"], [{"n": -1}])
        hit = col.search(-vecs[5], k=1)[0]
        assert (hit.id, hit.text, hit.metadata) == ("new", "fresh", {"n": -1})


def test_a_writer_that_died_mid_write_leaves_readers_checking_sqlite(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader, EmbeddedStore(tmp_path) as writer:
        vecs = _fill(writer)
        assert reader.query("c", vecs[:1], 1)[0].ids == ["r0"]
        stamp = np.memmap(tmp_path / STAMP_NAME, dtype=np.uint64, mode="r+", shape=(1,))
        assert int(stamp[0]) % 2 == 0  # no write in progress
        stamp[0] += 1  # as if a writer died between its stamp and its commit
        stamp.flush()
        # A write the stamp does not announce (the dead writer's commit) is still seen.
        import sqlite3

        with sqlite3.connect(tmp_path / "store.sqlite") as db:
            db.execute("UPDATE c1 SET metadata='{\"n\": 7}' WHERE id='r0'")
        assert reader.query_records("c", vecs[:1], 1)[0][0][0].metadata == {"n": 7}
        writer.delete("c", ids=["r1"])  # the next writer brings the stamp back to even
        assert int(stamp[0]) % 2 == 0
        assert "r1" not in reader.query("c", vecs[1:2], 3)[0].ids
        del stamp


def test_collection_search_matches_query_records(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path, exact_threshold=0, record_cache=50) as store:
        vecs = _fill(store)
        col = Database(store).collection("c", model=None, dimensions=DIMS)
        queries = _vectors(40, seed=1)
        for _ in range(2):  # cold, then from the record cache (smaller than the batch's hits)
            many = col.search_many(queries, k=5)
            want = store.query_records("c", queries, 5)
            assert [[(h.id, h.text, h.metadata) for h in hits] for hits in many] == [
                [(r.id, r.text, r.metadata) for r, _ in answer] for answer in want
            ]
            # scores agree up to float32 rounding (the two paths normalise the queries apart)
            np.testing.assert_allclose([[h.score for h in hits] for hits in many],
                                       [[s for _, s in answer] for answer in want], atol=1e-6)
            one = col.search(queries[0], k=5)
            assert [h.id for h in one] == [h.id for h in many[0]]
        # Metadata handed out is the caller's own: changing it does not change the cache.
        col.search(vecs[0], k=1)[0].metadata["n"] = "changed"
        assert col.search(vecs[0], k=1)[0].metadata == {"n": 0}
        with_vectors = col.search(vecs[0], k=1, include_vectors=True)[0]
        np.testing.assert_allclose(with_vectors.vector, vecs[0], rtol=1e-6)


def test_a_stamp_file_truncated_behind_the_stores_back_is_a_change_not_a_crash(tmp_path: Path) -> None:
    """The stamp is read with pread, never mapped: truncating it (a copy tool, a user) would
    SIGBUS a process that mapped it; here the next search just checks SQLite."""
    with EmbeddedStore(tmp_path, exact_threshold=0) as reader, EmbeddedStore(tmp_path) as writer:
        vecs = _fill(writer)
        assert reader.query("c", vecs[:1], 1)[0].ids == ["r0"]
        (tmp_path / STAMP_NAME).write_bytes(b"")
        writer.delete("c", ids=["r0"])
        assert reader.query("c", vecs[:1], 1)[0].ids != ["r0"]
        writer.upsert("c", ["back"], vecs[:1], ["again"], [{"n": 0}])
        assert reader.query("c", vecs[:1], 1)[0].ids == ["back"]
