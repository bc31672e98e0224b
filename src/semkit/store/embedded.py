"""``EmbeddedStore``: the default vector store, one folder and no server.

Layout of the folder::

    store.sqlite (+ -wal, -shm)   the source of truth, SQLite in WAL mode
    write.lock                    one writer at a time across processes (filelock)
    changes.stamp                 a write counter readers check before asking SQLite (``_ChangeStamp``)
    index/c<cid>.ann              derived HNSW index per collection (``ann_index.py``); for
                                  float32 the graph only: its vectors are SQLite's rows

SQLite holds, per collection ``cid`` (tables are named by cid, so a rename touches one row):

- ``c<cid>``: ``pk`` (AUTOINCREMENT: never reused), ``id``, ``text``, ``text_hash``,
  ``metadata`` (JSON text), ``vector`` (float32 blob; unit-normalised for cosine), ``seq``.
  Rows are never updated in place except their metadata: an upsert of an existing id deletes
  the old row and inserts a new one, so ``pk → vector`` is immutable and a derived index can
  be checked against SQLite by pk alone.
- ``c<cid>_dead``: pks deleted at which change sequence number (the catch-up log).
- ``c<cid>_fts``: an FTS5 external-content table over ``text``, kept in sync by triggers.
- ``collections``: cid, name, the ``CollectionSpec`` JSON, and ``seq``, bumped by every
  write transaction that changes vectors.

In memory, per collection, a ``_Live`` state mirrors one ``seq``: the pk of every *position*
(positions are the HNSW labels, in pk order), the id per position, a float32 matrix for exact
search, and an alive mask (tombstones). Before every read the store reads the shared change
stamp (``changes.stamp``, bumped around every write; one 8-byte ``pread``, ~1 us) and only when it moved asks
SQLite (``PRAGMA data_version``, a read transaction with file locks: 4-20 us) and, when another
connection committed, the collection's ``seq``; a stale state catches up from SQLite (new rows:
``pk > last``; deletions: the dead log) and the HNSW graph gets the new rows appended. The index file is tagged with the
seq and pks it reflects; on load it is verified (CRC, sizes, tag) and diffed against SQLite's
pks, so a stale file is caught up and a torn one rebuilt, never trusted.

Search: exact (one BLAS product over the matrix) below ``exact_threshold`` live rows, when a
filter keeps few rows (the filter is compiled to SQL, the matching pks are fetched and the
exact search runs over just those rows), or when asked; otherwise HNSW (FAISS), with
tombstones and filters passed as a bitmap to the graph search, falling back to exact when it
returns fewer than ``k`` hits.

Memory: the exact matrix is n x d float32 (1M x 384 = 1.5 GB), and the HNSW graph keeps its own
copy of the vectors in memory (float16/int8/binary collections quantise the graph's copy: FAISS
SQ codes or sign bits, see ``ann_index.py``; their candidates are rescored with the float32
matrix). On disk float32 is kept once: the index file of a float32 collection holds the graph
only, and loading it attaches the rows just read from SQLite; in memory too, a loaded graph
reads the store's matrix (no copy) until it next grows (``AnnIndex.attach_vectors(borrow=True)``).
Ingest streams: upserts go straight to SQLite and texts are never held in memory.

Search results with records (``query_records``, what ``Collection.search`` calls) read the hits'
rows by pk in one SELECT under the same lock as the search, through a small record cache
(``record_cache``) that is dropped whenever any connection commits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from ..errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    InvalidInput,
    StoreCorrupt,
    StoreError,
    StoreLocked,
)
from ..types import Matrix
from ..vectors import as_matrix
from . import base
from .ann_index import AnnIndex, AnnParams, IndexFileError
from .base import CollectionSpec, Neighbors, Record
from .filters import Node
from .keyword import query_terms
from .sqlite_sql import compile_filter

log = logging.getLogger("semkit.store.embedded")
_R = TypeVar("_R")

DB_NAME = "store.sqlite"
LOCK_NAME = "write.lock"
STAMP_NAME = "changes.stamp"
STAMP_TRUST_SECONDS = 0.5
"""Longest a reader relies on the change stamp alone before asking SQLite again: bounds how
long a write that bypassed the stamp (another program writing the SQLite file, a deleted stamp
file) can stay unseen."""
INDEX_DIR = "index"
SCHEMA_VERSION = 1
DEAD_LOG_MAX = 100_000
_CHUNK = 900  # bound parameters per statement (SQLite's default limit is 999 on old builds)
COMPACT_CHUNK_BYTES = 256 << 10
"""The rows compaction copies at once (170 at 384 d). Each copy is a temporary in the arena of
the thread that compacts, and compaction runs on whichever store thread caught up: with 8,192
rows, a 4,000-record collection left a 6 MB temporary in each thread's arena in turn, a step in
the server's resident set that stayed after the trims (overwrite soak, stop 30). The chunk
size does not change the copy's speed (100,000 x 384: 28 ms at 8,192 rows or 170)."""
WAL_KEEP_BYTES = 16 << 20
"""SQLite's ``journal_size_limit``: when the write-ahead log restarts after a checkpoint, a file
larger than this is cut back to it. Without it the log keeps its largest size for as long as
the store is open (measured: deleting 60,000 records left a 121 MB ``-wal`` file behind)."""
LARGE_DELETE_RECORDS = 5_000
"""A delete of at least this many records (and every drop) checkpoints the log at once (see
``_checkpoint_after_large_delete``) rather than leaving it large until the next write."""
_FTS_TOKENIZE = "porter unicode61 remove_diacritics 0 tokenchars '_'"


@dataclass
class _Entry:
    cid: int
    spec: CollectionSpec
    seq: int
    floor: int = 0  # the dead log holds every deletion after this seq (older ones are pruned)


@dataclass
class _Live:
    """One collection's in-memory mirror of SQLite at ``seq``."""

    cid: int
    dims: int
    l2: bool = False  # squared norms are kept only for L2 (exact L2 search needs them)
    seq: int = -1
    n: int = 0  # positions in use (alive + tombstoned)
    n_dead: int = 0
    pks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ids: list[str | None] = field(default_factory=list)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.float32))
    sqnorms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    ann: AnnIndex | None = None
    ann_unsaved: int = 0  # changes the index file does not have yet
    alive_bits: np.ndarray | None = None  # packed alive mask, cached for the HNSW selector

    @property
    def last_pk(self) -> int:
        return int(self.pks[self.n - 1]) if self.n else 0

    @property
    def n_alive(self) -> int:
        return self.n - self.n_dead

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.pks) and self.matrix.shape[1] == self.dims:
            return
        cap = max(need, int(len(self.pks) * 1.5) + 1024)
        for name, shape, dtype in (
            ("pks", (cap,), np.int64), ("sqnorms", (cap,), np.float32), ("alive", (cap,), bool),
            ("matrix", (cap, self.dims), np.float32),
        ):
            old = getattr(self, name)
            new = np.zeros(shape, dtype=dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def append(self, pks: np.ndarray, ids: list[str | None], vecs: np.ndarray, alive: np.ndarray) -> None:
        m = len(pks)
        self.reserve(m)
        sl = slice(self.n, self.n + m)
        self.pks[sl] = pks
        self.matrix[sl] = vecs
        if self.l2:
            self.sqnorms[sl] = np.einsum("ij,ij->i", vecs, vecs)
        self.alive[sl] = alive
        self.ids.extend(ids)
        self.n += m
        self.n_dead += int(m - np.count_nonzero(alive))
        self.alive_bits = None

    def positions(self, pks: np.ndarray) -> np.ndarray:
        """Positions of these pks that this state knows and holds alive."""
        if not len(pks) or not self.n:
            return np.zeros(0, dtype=np.int64)
        known = self.pks[: self.n]
        idx = np.searchsorted(known, pks)
        inside = idx < self.n
        idx = idx[inside]
        idx = idx[known[idx] == pks[inside]]
        return idx[self.alive[idx]]

    def kill(self, pks: np.ndarray) -> int:
        pos = self.positions(np.unique(pks))
        self.alive[pos] = False
        for p in pos.tolist():
            self.ids[p] = None
        self.n_dead += len(pos)
        if len(pos):
            self.alive_bits = None
        return len(pos)

    def compact(self) -> None:
        """Drop the tombstones in place: alive rows move forward in order (pks stay sorted),
        a chunk at a time, so the only extra memory is one chunk. Rebuilding into new arrays
        held two copies at the peak, and the freed copy stayed with the allocator (RSS crept
        up under steady overwrites). The capacity is kept for the appends that follow. The
        graph's positions change, so it is dropped; the caller rebuilds it."""
        keep = np.flatnonzero(self.alive[: self.n])
        kept = len(keep)
        step = max(1, COMPACT_CHUNK_BYTES // (4 * self.dims))
        for start in range(0, kept, step):
            # keep[i] >= i: every source row lies at or after its destination and after every
            # destination of the chunks before it, so no row is overwritten before it is read.
            rows = keep[start:start + step]
            dest = slice(start, start + len(rows))
            self.matrix[dest] = self.matrix[rows]
            self.pks[dest] = self.pks[rows]
            if self.l2:
                self.sqnorms[dest] = self.sqnorms[rows]
        ids = self.ids
        self.ids = [ids[p] for p in keep.tolist()]
        self.alive[:kept] = True
        self.alive[kept: self.n] = False
        self.n, self.n_dead = kept, 0
        self.alive_bits = None
        self.ann = None
        self.ann_unsaved = 0

    def allowed_bits(self) -> np.ndarray:
        if self.alive_bits is None:
            self.alive_bits = np.packbits(self.alive[: self.n], bitorder="little")
        return self.alive_bits


_Found = tuple[np.ndarray, np.ndarray]
"""One query's answer inside the store: positions (int64) and scores, best first."""
_NO_POSITIONS = np.zeros(0, dtype=np.int64)

_FLAT_VALUES = (str, int, float, bool, type(None))
_NO_METADATA: dict[str, Any] = {}
"""The cached metadata of every record without any: only ever copied, never handed out."""


class _RecordCache:
    """Id, text and metadata of recent search hits, per collection and pk.

    It holds for one state of the database only: the store clears it whenever a commit by any
    connection is seen (``_refresh``, the same check that keeps the registry current), so a
    cached record is never older than the snapshot the query itself ran against. Metadata
    handed out is always a fresh object: flat metadata (the usual case) is copied, nested
    metadata re-parsed from its JSON.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rows: dict[int, dict[int, _CachedRow]] = {}
        """cid -> pk -> (id, text, metadata JSON, flat metadata or None)."""

    def clear(self) -> None:
        if self.rows:
            self.rows = {}

    def of(self, cid: int) -> dict[int, _CachedRow]:
        rows = self.rows.get(cid)
        if rows is None:
            rows = self.rows[cid] = {}
        return rows

    def put(self, rows: dict[int, _CachedRow], pk: int, record_id: str, text: str | None,
            meta_json: str) -> _CachedRow:
        if len(rows) >= self.capacity:
            del rows[next(iter(rows))]  # oldest first: dicts keep insertion order
        # Records without metadata share one empty dict: hits copy it (never hand it out), and
        # a shared object stays in the CPU cache where 20k separate ones would not.
        meta = _NO_METADATA if meta_json == "{}" else json.loads(meta_json)
        flat = meta if all(type(v) in _FLAT_VALUES for v in meta.values()) else None
        row = rows[pk] = (record_id, text, meta_json, flat)
        return row


_CachedRow = tuple[str, str | None, str, dict[str, Any] | None]

HitMaker = Callable[[str, float, str | None, dict[str, Any], np.ndarray | None], _R]
"""Builds one search hit from ``(id, score, text, metadata, vector)``."""


def _scored_record(record_id: str, score: float, text: str | None, metadata: dict[str, Any],
                   vector: np.ndarray | None) -> tuple[Record, float]:
    return Record(id=record_id, vector=vector, text=text, metadata=metadata), score


def _cached_hits(rows: Mapping[int, _CachedRow], pks: list[int], scores: list[float], make: HitMaker[_R],
                 complete: bool) -> list[_R] | None:
    """One query's hits from cached rows, in one pass with no intermediates. A pk missing
    from ``rows`` makes it return ``None`` when ``complete`` (the caller then reads it), and is
    left out otherwise (its record was deleted since the search)."""
    get = rows.get
    hits = []
    for pk, score in zip(pks, scores, strict=True):
        cached = get(pk)
        if cached is None:
            if complete:
                return None
            continue
        flat = cached[3]  # flat metadata is copied, nested re-parsed: every hit owns its metadata
        hits.append(make(cached[0], score, cached[1], json.loads(cached[2]) if flat is None else flat.copy(), None))
    return hits


class _ChangeStamp:
    """A counter in a small shared file, bumped around every write transaction.

    ``PRAGMA data_version`` starts a SQLite read transaction, which takes a WAL read lock
    (``fcntl`` system calls): ~4 us on a quiet machine, ~20 us under load, on every search.
    Reading this counter is one ``pread`` of 8 bytes. Writers (one at a time: they hold
    ``write.lock``) make it odd before ``BEGIN IMMEDIATE`` and even after the transaction ends.
    A reader that saw an even value ``v``, then checked SQLite, knows nothing was committed
    since as long as it reads ``v`` again: any later commit made the counter odd before
    committing and larger after. An odd value (a write in progress, or a writer that died
    mid-way) is never trusted, so a crash costs speed, not correctness. The file is read and
    written with ``pread``/``pwrite``, never mapped: a file truncated behind semkit's back then
    reads as "changed" (a full check) instead of killing the process with SIGBUS.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size < 8:
            # a new file; two processes racing here both write zeros before any write counts
            os.pwrite(self._fd, bytes(8), 0)

    def read(self) -> int:
        raw = os.pread(self._fd, 8, 0)
        # a short read (the file truncated by someone else) is odd: never trusted
        return int.from_bytes(raw, "little") if len(raw) == 8 else 1

    def _write(self, value: int) -> None:
        os.pwrite(self._fd, value.to_bytes(8, "little"), 0)

    def begin_write(self) -> None:
        value = self.read()
        self._write(value + 1 if value % 2 == 0 else value + 2)

    def end_write(self) -> None:
        value = self.read()
        self._write(value + 1 if value % 2 else value + 2)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _translated(exc: sqlite3.DatabaseError, path: Path) -> StoreError:
    """A SQLite error as the store error it means: damage, a lock held too long, or other."""
    code = getattr(exc, "sqlite_errorname", "")
    if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in str(exc) or "not a database" in str(exc):
        return StoreCorrupt(
            f"{path / DB_NAME} is damaged ({exc}); semkit left it as it is. Restore the folder from a backup, "
            f"or recover what is readable with: sqlite3 {path / DB_NAME} .recover | sqlite3 recovered.sqlite"
        )
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in str(exc):
        return StoreLocked(f"{path} stayed locked by another process ({exc}); retry later")
    return StoreError(f"SQLite failed on {path}: {exc}")


def _sqlite_errors(method: Callable[..., _R]) -> Callable[..., _R]:
    """Foreign SQLite errors leave the store as ``StoreError`` subclasses (``StoreCorrupt``...)."""

    @functools.wraps(method)
    def translating(self: EmbeddedStore, *args: Any, **kwargs: Any) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _translated(exc, self.path) from None

    return translating


class EmbeddedStore:
    """A ``VectorStore`` in one folder: SQLite (WAL) for data, FAISS HNSW as a derived index.

    ``exact_threshold``: below this many live records every query is an exact scan. Measured
    with ``benchmarks/search.py --crossover-only`` (MiniLM 384-d, one thread): HNSW (ef 64)
    is faster from ~2k rows, but exact stays under ~1 ms up to 20k (the matrix fits the L3
    cache), is exact, and needs no graph build (~8 s at 20k); from ~50k the scan is bound by
    DRAM (10+ ms) against 0.25 ms for HNSW. Hence 20k. ``index="none"``
    disables the approximate index (always exact). ``ef_search`` is the HNSW search breadth
    when a query passes none. ``filter_exact_fraction``: a filter keeping at most
    ``max(exact_threshold, fraction x live rows)`` rows is answered exactly over those rows.
    ``index_save_every``: changes applied to an in-memory HNSW graph before its file is
    rewritten (it is also saved on ``close()``). ``durable=True`` fsyncs every commit
    (``synchronous=FULL``); ``False`` keeps commits safe against process crashes but not
    power loss. ``record_cache``: how many search hits' records (id, text, metadata) are kept
    in memory for repeated hits, dropped whenever the database changes (0 turns it off).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 30.0,
        exact_threshold: int = 20_000,
        index: Literal["hnsw", "none"] = "hnsw",
        ef_search: int = 64,
        hnsw_m: int = 16,
        ef_construction: int = 64,
        filter_exact_fraction: float = 0.1,
        compact_fraction: float = 0.25,
        index_save_every: int = 20_000,
        durable: bool = True,
        record_cache: int = 20_000,
    ) -> None:
        if index not in ("hnsw", "none"):
            raise InvalidInput(f"index must be 'hnsw' or 'none', got {index!r}")
        self.path = Path(path).expanduser()
        self.lock_timeout = float(lock_timeout)
        self.exact_threshold = int(exact_threshold)
        self.index_kind = index
        self.ef_search = int(ef_search)
        self.ann_params = AnnParams(int(hnsw_m), int(ef_construction))
        self.filter_exact_fraction = float(filter_exact_fraction)
        self.compact_fraction = float(compact_fraction)
        self.index_save_every = int(index_save_every)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / INDEX_DIR).mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.path}: {exc}") from None
        # Made by the first write: importing filelock costs ~8 ms, a tenth of opening a 30k store
        # for reading, and a process that only reads never needs it.
        self._filelock: Any = None
        self._lock = threading.RLock()
        self._closed = False
        self._registry: dict[str, _Entry] = {}
        self._registry_version: int | None = None
        self._seen_stamp = -1  # the change stamp at our last full check (-1: check next time)
        self._trust_stamp_until = 0.0
        self._lives: dict[int, _Live] = {}
        self._records = _RecordCache(max(int(record_cache), 0))
        try:
            self._stamp = _ChangeStamp(self.path / STAMP_NAME)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path / STAMP_NAME}: {exc}") from None
        try:
            self._db = sqlite3.connect(
                str(self.path / DB_NAME), isolation_level=None, check_same_thread=False,
                timeout=max(self.lock_timeout, 1.0),
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        except sqlite3.Error as exc:
            self._stamp.close()
            raise StoreError(f"cannot open the SQLite database in {self.path}: {exc}") from None
        try:
            self._init_schema()
            self._store_id = self._db.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self._db.close()
            self._stamp.close()
            raise _translated(exc, self.path) from None
        except StoreError:
            self._db.close()
            self._stamp.close()
            raise
        self._remove_orphans()

    # --- plumbing ---------------------------------------------------------------------------

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EmbeddedStore {str(self.path)!r}>"

    def _write_lock(self) -> Any:
        """The cross-process writer lock. Always taken *before* ``self._lock``, so queries in
        this process keep running while a write waits for another process's write."""
        import filelock

        if self._filelock is None:
            with self._lock:  # one FileLock object per store, whichever thread writes first
                if self._filelock is None:
                    self._filelock = filelock.FileLock(str(self.path / LOCK_NAME))
        try:
            return self._filelock.acquire(timeout=self.lock_timeout)
        except filelock.Timeout:
            raise StoreLocked(
                f"another process has been writing to {self.path} for over {self.lock_timeout:g}s "
                f"(lock file {self.path / LOCK_NAME}); retry later, raise lock_timeout, or stop the "
                "other writer"
            ) from None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self.path} is closed; open a new EmbeddedStore")

    def _init_schema(self) -> None:
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if not has_meta and any((self.path / INDEX_DIR).glob("c*.ann")):
            # Index files with no database: store.sqlite was emptied or replaced. Treating the
            # folder as a new store would delete those files as orphans.
            raise StoreCorrupt(
                f"{self.path / DB_NAME} holds no semkit data, but {self.path / INDEX_DIR} holds index files "
                "of collections: the database file was truncated or replaced. Restore the folder from a "
                "backup; nothing was changed"
            )
        if has_meta:
            version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version and int(version[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer semkit (schema {version[0]}); upgrade semkit"
                )
            return
        with self._write_lock(), self._txn():
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS collections (cid INTEGER PRIMARY KEY AUTOINCREMENT, "
                "name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL, seq INTEGER NOT NULL DEFAULT 0, "
                "floor INTEGER NOT NULL DEFAULT 0)"
            )
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))

    class _Txn:
        """A transaction; a write one (IMMEDIATE, always under ``write.lock``) is bracketed
        by the change stamp, so readers in every process see that something changed."""

        def __init__(self, db: sqlite3.Connection, mode: str, stamp: _ChangeStamp) -> None:
            self.db, self.mode = db, mode
            self.stamp = stamp if mode == "IMMEDIATE" else None

        def __enter__(self) -> sqlite3.Connection:
            if self.stamp is not None:
                self.stamp.begin_write()
            try:
                self.db.execute(f"BEGIN {self.mode}")
            except BaseException:
                if self.stamp is not None:
                    self.stamp.end_write()
                raise
            return self.db

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            try:
                if exc_type is None:
                    self.db.execute("COMMIT")
                else:
                    self.db.execute("ROLLBACK")
            finally:
                if self.stamp is not None:
                    self.stamp.end_write()  # only once the commit is visible to readers

    def _txn(self, mode: str = "IMMEDIATE") -> EmbeddedStore._Txn:
        return EmbeddedStore._Txn(self._db, mode, self._stamp)

    def _index_path(self, cid: int) -> Path:
        return self.path / INDEX_DIR / f"c{cid}.ann"

    def _remove_orphans(self) -> None:
        """Index files of dropped collections and temp files of dead processes."""
        cids = {row[0] for row in self._db.execute("SELECT cid FROM collections")}
        for file in (self.path / INDEX_DIR).iterdir():
            name = file.name
            if name.endswith(".tmp"):
                pid = name.rsplit(".", 2)[-2]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    file.unlink(missing_ok=True)
            elif (name.startswith("c") and name.endswith(".ann") and name[1:-4].isdigit()
                  and int(name[1:-4]) not in cids):
                file.unlink(missing_ok=True)

    # --- registry ---------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload the registry when any other connection committed since we last looked.

        First the change stamp (``_ChangeStamp``, shared memory): unchanged and even since
        the last full check means no commit since. Otherwise ``PRAGMA data_version``, SQLite's
        own answer. SQLite's files are never opened beside it: on Linux, closing any
        descriptor of a file drops every POSIX lock the process holds on it, SQLite's
        WAL-index lock included, which let another process reset the WAL index under this
        one (SIGBUS during a commit).
        """
        stamp = self._stamp.read()
        if stamp == self._seen_stamp and time.monotonic() < self._trust_stamp_until:
            return
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if stamp % 2 == 0:
            self._seen_stamp = stamp
            self._trust_stamp_until = time.monotonic() + STAMP_TRUST_SECONDS
        else:
            self._seen_stamp = -1
        if version == self._registry_version:
            return
        registry = {}
        for cid, name, spec, seq, floor in self._db.execute("SELECT cid, name, spec, seq, floor FROM collections"):
            registry[name] = _Entry(cid, CollectionSpec.from_json(json.loads(spec)), seq, floor)
        self._registry = registry
        self._registry_version = version
        self._records.clear()  # something was committed: cached records may be stale
        live_cids = {e.cid for e in registry.values()}
        for cid in [c for c in self._lives if c not in live_cids]:
            del self._lives[cid]

    def _touched(self) -> None:
        # Our own commits do not change our data_version: force the next refresh.
        self._registry_version = None
        self._seen_stamp = -1

    def _entry(self, name: str) -> _Entry:
        self._check_open()
        self._refresh()
        entry = self._registry.get(name)
        if entry is None:
            raise CollectionNotFound(
                f"no collection named {name!r} in {self.path}; existing: {sorted(self._registry) or 'none'}"
            )
        return entry

    # --- collections ------------------------------------------------------------------------

    @_sqlite_errors
    def create_collection(self, spec: CollectionSpec) -> None:
        base.check_spec(spec)
        with self._write_lock(), self._lock:
            self._check_open()
            with self._txn() as db:
                if db.execute("SELECT 1 FROM collections WHERE name=?", (spec.name,)).fetchone():
                    raise CollectionExists(
                        f"collection {spec.name!r} already exists; open it, or drop it first to recreate it"
                    )
                cur = db.execute(
                    "INSERT INTO collections (name, spec, seq) VALUES (?, ?, 0)",
                    (spec.name, json.dumps(spec.to_json())),
                )
                _create_tables(db, int(cur.lastrowid or 0))
            self._touched()

    @_sqlite_errors
    def get_collection(self, name: str) -> CollectionSpec | None:
        with self._lock:
            self._check_open()
            self._refresh()
            entry = self._registry.get(name)
            return entry.spec if entry else None

    @_sqlite_errors
    def list_collections(self) -> list[CollectionSpec]:
        with self._lock:
            self._check_open()
            self._refresh()
            return [self._registry[n].spec for n in sorted(self._registry)]

    @_sqlite_errors
    def drop_collection(self, name: str) -> None:
        with self._write_lock(), self._lock:
            self._entry(name)
            with self._txn() as db:
                row = db.execute("SELECT cid FROM collections WHERE name=?", (name,)).fetchone()
                if row is None:
                    raise CollectionNotFound(f"no collection named {name!r} in {self.path}")
                _drop_tables(db, row[0])
                db.execute("DELETE FROM collections WHERE cid=?", (row[0],))
            self._touched()
            self._lives.pop(row[0], None)
            self._index_path(row[0]).unlink(missing_ok=True)
            self._checkpoint_after_large_delete()

    @_sqlite_errors
    def rename_collection(self, old: str, new: str) -> None:
        """One SQLite transaction: ``new`` (if any) is dropped and ``old`` takes its name.

        Index files are named by the collection's internal id, not its name, so nothing on
        disk needs renaming and a crash cannot leave the two halves disagreeing.
        """
        if not isinstance(new, str) or not new:
            raise InvalidInput("the new collection name must be a non-empty string")
        with self._write_lock(), self._lock:
            self._entry(old)
            if old == new:
                return
            with self._txn() as db:
                row = db.execute("SELECT cid, spec FROM collections WHERE name=?", (old,)).fetchone()
                if row is None:
                    raise CollectionNotFound(f"no collection named {old!r} in {self.path}")
                target = db.execute("SELECT cid FROM collections WHERE name=?", (new,)).fetchone()
                if target is not None:
                    _drop_tables(db, target[0])
                    db.execute("DELETE FROM collections WHERE cid=?", (target[0],))
                spec = replace(CollectionSpec.from_json(json.loads(row[1])), name=new)
                db.execute(
                    "UPDATE collections SET name=?, spec=? WHERE cid=?",
                    (new, json.dumps(spec.to_json()), row[0]),
                )
            self._touched()
            if target is not None:
                self._lives.pop(target[0], None)
                self._index_path(target[0]).unlink(missing_ok=True)

    # --- writes -----------------------------------------------------------------------------

    @_sqlite_errors
    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: Matrix,
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        with self._lock:
            entry = self._entry(name)
        # Validated and serialised before any lock or transaction: all rows land or none, and
        # other writers wait only for the SQL.
        prepared = base.prepare_rows(entry.spec, ids, vectors, texts, metadata)
        ids = prepared.ids
        rows = [
            (i, text, _text_hash(text), meta, vector.tobytes())
            for i, text, meta, vector in zip(ids, prepared.texts, prepared.metadata, prepared.vectors, strict=True)
        ]
        if not rows:
            return
        cid = entry.cid
        with self._write_lock(), self._lock:
            self._check_open()
            with self._txn() as db:
                seq = self._next_seq(db, cid, name)
                old = _select_pks(db, cid, "id", ids)
                if old:
                    _kill_pks(db, cid, old, seq)
                db.executemany(
                    f"INSERT INTO c{cid} (id, text, text_hash, metadata, vector, seq) "
                    f"VALUES (?, ?, ?, ?, ?, {seq})",
                    rows,
                )
            self._touched()

    @_sqlite_errors
    def update_metadata(
        self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]
    ) -> int:
        ids, texts = base.prepare_metadata_update(ids, metadata)
        with self._write_lock(), self._lock:
            cid = self._entry(name).cid
            rows = list(zip(texts, ids, strict=True))
            if not rows:
                return 0
            with self._txn() as db:
                self._next_seq(db, cid, name, bump=False)
                cur = db.executemany(f"UPDATE c{cid} SET metadata=? WHERE id=?", rows)
                found = cur.rowcount
            self._touched()
            return max(found, 0)

    @_sqlite_errors
    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        base.check_delete(ids, where)
        with self._write_lock(), self._lock:
            cid = self._entry(name).cid
            with self._txn() as db:
                seq = self._next_seq(db, cid, name, bump=False)
                if ids is not None:
                    pks = _select_pks(db, cid, "id", list(dict.fromkeys(ids)), where)
                else:
                    sql, params = compile_filter(where)
                    pks = [r[0] for r in db.execute(f"SELECT pk FROM c{cid} WHERE {sql}", params)]
                if pks:
                    _kill_pks(db, cid, pks, seq + 1)
                    db.execute("UPDATE collections SET seq=? WHERE cid=?", (seq + 1, cid))
            self._touched()
            if len(pks) >= LARGE_DELETE_RECORDS:
                self._checkpoint_after_large_delete()
            return len(pks)

    def _checkpoint_after_large_delete(self) -> None:
        """Copy the write-ahead log back into the database and empty it, now: a large delete
        or drop wrote every page it freed into the log. SQLite's TRUNCATE checkpoint does it,
        with the busy timeout at zero so it never waits: while another process is reading, it
        gives way, and ``journal_size_limit`` cuts the log back at a later write instead."""
        busy_ms = int(self._db.execute("PRAGMA busy_timeout").fetchone()[0])  # as connect() set it
        self._db.execute("PRAGMA busy_timeout=0")
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:  # the delete has committed: this must not fail it
            log.debug("checkpoint after a large delete deferred: %s", exc)
        finally:
            self._db.execute(f"PRAGMA busy_timeout={busy_ms}")

    def _next_seq(self, db: sqlite3.Connection, cid: int, name: str, bump: bool = True) -> int:
        """Inside a write transaction: check the collection still exists, bump its seq."""
        row = db.execute("SELECT seq FROM collections WHERE cid=?", (cid,)).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection {name!r} was dropped by another process")
        if not bump:
            return int(row[0])
        db.execute("UPDATE collections SET seq=? WHERE cid=?", (row[0] + 1, cid))
        return int(row[0]) + 1

    # --- reads ------------------------------------------------------------------------------

    @_sqlite_errors
    def get(self, name: str, ids: Sequence[str], include_vectors: bool = False) -> list[Record]:
        ids = list(ids)
        with self._lock:
            found = self._fetch(self._entry(name).cid, ids, include_vectors)
        if len(found) == len(ids):
            return [found[i] for i in ids]
        return [_copy(found[i]) for i in ids if i in found]

    def _fetch(self, cid: int, ids: list[str], include_vectors: bool) -> dict[str, Record]:
        """The records of ``ids`` (those that exist), by id. One statement when the ids fit in
        one (a single SELECT reads one snapshot, no BEGIN/COMMIT round trips); larger lists
        are read chunk by chunk inside one read transaction."""
        cols = "id, text, metadata" + (", vector" if include_vectors else "")
        found: dict[str, Record] = {}

        def read(db: sqlite3.Connection, chunk: list[str]) -> None:
            marks = ",".join("?" * len(chunk))
            for row in db.execute(f"SELECT {cols} FROM c{cid} WHERE id IN ({marks})", chunk):
                found[row[0]] = _record(row, include_vectors)

        if len(ids) <= _CHUNK:
            if ids:
                read(self._db, list(dict.fromkeys(ids)))
            return found
        with self._txn("DEFERRED") as db:
            for start in range(0, len(ids), _CHUNK):
                read(db, list(dict.fromkeys(ids[start:start + _CHUNK])))
        return found

    @_sqlite_errors
    def texts(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        ids = list(ids)
        with self._lock:
            cid = self._entry(name).cid
            out: dict[str, str | None] = {}
            with self._txn("DEFERRED") as db:
                for start in range(0, len(ids), _CHUNK):
                    chunk = list(dict.fromkeys(ids[start:start + _CHUNK]))
                    marks = ",".join("?" * len(chunk))
                    out.update(db.execute(f"SELECT id, text FROM c{cid} WHERE id IN ({marks})", chunk))
        return {i: out[i] for i in ids if i in out}

    @_sqlite_errors
    def count(self, name: str, where: Node | None = None) -> int:
        with self._lock:
            cid = self._entry(name).cid
            sql, params = compile_filter(where)
            return int(self._db.execute(f"SELECT count(*) FROM c{cid} WHERE {sql}", params).fetchone()[0])

    def scan(
        self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
        where: Node | None = None,
    ) -> Iterator[list[Record]]:
        """Batches in insertion (pk) order; each batch is read in its own short transaction,
        so a long scan neither holds memory nor blocks writers."""
        try:
            yield from self._scan(name, batch_size, include_vectors, where)
        except sqlite3.DatabaseError as exc:
            raise _translated(exc, self.path) from None

    def _scan(self, name: str, batch_size: int, include_vectors: bool, where: Node | None) -> Iterator[list[Record]]:
        base.check_batch_size(batch_size)
        with self._lock:
            cid = self._entry(name).cid
        sql, params = compile_filter(where)
        cols = "pk, id, text, metadata" + (", vector" if include_vectors else "")
        last = 0
        while True:
            with self._lock:
                self._entry(name)
                rows = self._db.execute(
                    f"SELECT {cols} FROM c{cid} WHERE pk > ? AND {sql} ORDER BY pk LIMIT ?",
                    [last, *params, batch_size],
                ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [_record(r[1:], include_vectors) for r in rows]

    @_sqlite_errors
    def keyword_query(self, name: str, text: str, k: int, where: Node | None = None) -> Neighbors:
        """SQLite FTS5 ``bm25()`` (k1=1.2, b=0.75); records sharing at least one term with the
        query, scores higher-is-better. Query words are quoted, so FTS5 syntax in user text
        (``AND``, ``*``, ``"``, ``:``) is searched for literally."""
        k = base.check_k(k)
        terms = query_terms(text)
        with self._lock:
            cid = self._entry(name).cid
            if not terms:
                return Neighbors([], np.zeros(0, dtype=np.float32))
            match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
            if where is None and k <= _CHUNK:
                # The FTS table ranks alone (its rowid is the record's pk) and only the k best are
                # joined to their ids: joining every matching row first cost a third of the query.
                ranked = self._db.execute(
                    f"SELECT rowid, bm25(c{cid}_fts) AS s FROM c{cid}_fts WHERE c{cid}_fts MATCH ? "
                    "ORDER BY s, rowid LIMIT ?", [match, k]).fetchall()
                ids = dict(self._db.execute(
                    f"SELECT pk, id FROM c{cid} WHERE pk IN ({','.join('?' * len(ranked))})",
                    [pk for pk, _ in ranked]).fetchall()) if ranked else {}
                # A record deleted in between is left out (pks are AUTOINCREMENT: never another record's).
                rows = [(ids[pk], s) for pk, s in ranked if pk in ids]
                return Neighbors([r[0] for r in rows], np.array([-r[1] for r in rows], dtype=np.float32))
            sql, params = compile_filter(where, "t.metadata")
            rows = self._db.execute(
                f"SELECT t.id, bm25(c{cid}_fts) AS s FROM c{cid}_fts JOIN c{cid} AS t ON t.pk = c{cid}_fts.rowid "
                f"WHERE c{cid}_fts MATCH ? AND {sql} ORDER BY s, t.pk LIMIT ?",
                [match, *params, k],
            ).fetchall()
        return Neighbors([r[0] for r in rows], np.array([-r[1] for r in rows], dtype=np.float32))

    # --- vector search ----------------------------------------------------------------------

    @_sqlite_errors
    def query(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None,
    ) -> list[Neighbors]:
        with self._lock:
            live, answers = self._search(name, vectors, k, where, exact, ef)
            ids = live.ids
            return [Neighbors([ids[p] for p in pos.tolist()], scores) for pos, scores in answers]

    @_sqlite_errors
    def query_records(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None, include_vectors: bool = False,
    ) -> list[base.ScoredRecords]:
        """``query`` with the hits' records, under one lock: the records are read by rowid
        (their positions' pks) in one SELECT, or from the record cache."""
        return self.query_hits(name, vectors, k, where, exact, ef, include_vectors, _scored_record)

    def query_hits(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None, include_vectors: bool = False,
        make: HitMaker[_R] = _scored_record,  # type: ignore[assignment]
        *, prepared: bool = False,
    ) -> list[list[_R]]:
        """``query_records`` building each hit with ``make(id, score, text, metadata, vector)``
        straight from the cached row: what ``Collection.search`` calls, so no intermediate
        ``Record`` is made per hit. A hit whose row another process deleted between the
        search and the fetch is left out. ``prepared``: the caller already checked the
        query vectors for NaN/infinity and unit-normalised them for cosine (``Collection``
        does); their type and width are still checked here.

        SQLite errors become store errors as with ``_sqlite_errors``, without its wrapper: an
        extra Python frame and argument packing cost ~3 us per search with the caches cold."""
        try:
            with self._lock:
                if (prepared and where is None and not exact and not include_vectors and type(k) is int and k > 0
                        and not self._closed):
                    # The hot path, ``Collection.search(vector)``: one query straight to the graph
                    # of an up-to-date mirror, skipping ``_search``'s generality (with the caches
                    # cold after a graph search, that cost a fifth of the search itself). Any
                    # other case (unknown name, stale mirror, no graph yet) takes the general path.
                    self._refresh()
                    entry = self._registry.get(name)
                    live = None if entry is None else self._lives.get(entry.cid)
                    if (
                        live is not None and live.ann is not None and live.seq == entry.seq  # type: ignore[union-attr]
                        and live.n - live.n_dead >= self.exact_threshold and type(vectors) is np.ndarray
                        and vectors.ndim == 2 and vectors.shape[1] == live.dims and vectors.dtype == np.float32
                        and vectors.flags.c_contiguous and len(vectors)
                    ):
                        allowed = live.allowed_bits() if live.n_dead else None
                        # scratch: the arrays are read below, under the lock, before any other search
                        scores, found = live.ann.search(vectors, k, ef or self.ef_search, allowed, live.matrix,
                                                        scratch=True)
                        if len(found) == 1:
                            if found[0, -1] >= 0:  # k hits; else the general path decides (exact fallback)
                                rows = self._records.rows.get(live.cid)
                                hits = None if rows is None else _cached_hits(
                                    rows, live.pks[found].tolist()[0], scores.tolist()[0], make, True)
                                if hits is not None:
                                    return [hits]
                                return self._hits(live, [(found[0], scores[0])], False, make)
                        elif found[:, -1].min() >= 0:
                            # a batch: the pks and scores of all queries in two array operations
                            keyed = list(zip(live.pks[found].tolist(), scores.tolist(), strict=True))
                            return self._keyed_hits(live.cid, keyed, False, make)
                live, answers = self._search(name, vectors, k, where, exact, ef, prepared)
                return self._hits(live, answers, include_vectors, make)
        except sqlite3.DatabaseError as exc:
            raise _translated(exc, self.path) from None

    def _hits(self, live: _Live, answers: list[_Found], include_vectors: bool,
              make: HitMaker[_R]) -> list[list[_R]]:
        pks = live.pks
        keyed = [(pks[pos].tolist(), scores.tolist()) for pos, scores in answers]
        return self._keyed_hits(live.cid, keyed, include_vectors, make)

    def _keyed_hits(self, cid: int, keyed: list[tuple[list[int], list[float]]], include_vectors: bool,
                    make: HitMaker[_R]) -> list[list[_R]]:
        """Hits per query from its hits' pks and scores: records from the record cache, the
        others read by pk in one statement (and cached)."""
        cache = self._records
        if include_vectors or not cache.capacity:
            wanted = list(dict.fromkeys(pk for pk_list, _ in keyed for pk in pk_list))
            read = self._read_rows(cid, wanted, include_vectors)
            return [
                [make(r[0], s, r[1], _metadata(r[2]), _vector(r[3]) if include_vectors else None)
                 for pk, s in zip(pk_list, score_list, strict=True) if (r := read.get(pk)) is not None]
                for pk_list, score_list in keyed
            ]
        rows = cache.of(cid)
        # The usual case first: every record cached, one lookup per hit.
        out = [_cached_hits(rows, pk_list, score_list, make, True) for pk_list, score_list in keyed]
        todo = [i for i, hits in enumerate(out) if hits is None]
        if not todo:
            return out  # type: ignore[return-value]
        # Resolved into a local dict before anything is added to the cache: a batch with more
        # distinct hits than the cache holds would otherwise evict rows before they are read.
        found: dict[int, _CachedRow] = {}
        missing = []
        for i in todo:
            for pk in keyed[i][0]:
                cached = rows.get(pk)
                if cached is None:
                    missing.append(pk)
                else:
                    found[pk] = cached
        if missing:
            for pk, row in self._read_rows(cid, list(dict.fromkeys(missing)), False).items():
                found[pk] = cache.put(rows, pk, row[0], row[1], row[2])
        for i in todo:
            out[i] = _cached_hits(found, *keyed[i], make, False)
        return out  # type: ignore[return-value]

    def _read_rows(self, cid: int, pks: list[int], include_vectors: bool) -> dict[int, tuple[Any, ...]]:
        """``pk -> (id, text, metadata JSON[, vector blob])`` for the pks that still exist.
        At most k x queries pks: rowid lookups, one statement per chunk."""
        cols = "pk, id, text, metadata" + (", vector" if include_vectors else "")
        found: dict[int, tuple[Any, ...]] = {}
        for start in range(0, len(pks), _CHUNK):
            chunk = pks[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {cols} FROM c{cid} WHERE pk IN ({marks})", chunk):
                found[row[0]] = row[1:]
        return found

    def _search(self, name: str, vectors: Matrix, k: int, where: Node | None, exact: bool,
                ef: int | None, prepared: bool = False) -> tuple[_Live, list[_Found]]:
        """Top-k positions and scores per query (caller holds ``self._lock``)."""
        k = base.check_k(k)
        entry = self._entry(name)
        spec = entry.spec
        queries = vectors
        if not (prepared and type(queries) is np.ndarray and queries.dtype == np.float32 and queries.ndim == 2
                and queries.shape[1] == spec.dimensions and queries.flags.c_contiguous):
            queries = _prepare_queries(vectors, spec)
        live = self._lives.get(entry.cid)
        if live is None or live.seq != entry.seq:
            live = self._live(entry)
        if where is None and not exact and self.index_kind == "hnsw" and live.n_alive >= self.exact_threshold:
            return live, self._approximate(live, spec, queries, k, None, ef or self.ef_search)
        nothing = [(_NO_POSITIONS, np.zeros(0, dtype=np.float32)) for _ in range(len(queries))]
        if not live.n_alive:
            return live, nothing
        positions: np.ndarray | None = None
        if where is not None:
            sql, params = compile_filter(where)
            pks = np.fromiter(
                (r[0] for r in self._db.execute(f"SELECT pk FROM c{entry.cid} WHERE {sql}", params)),
                dtype=np.int64,
            )
            positions = live.positions(pks)
            if not len(positions):
                return live, nothing
        n_candidates = live.n_alive if positions is None else len(positions)
        small = max(self.exact_threshold, int(self.filter_exact_fraction * live.n_alive))
        if (
            exact or self.index_kind == "none" or live.n_alive < self.exact_threshold
            or (positions is not None and n_candidates <= small)
        ):
            return live, self._exact(live, spec.metric, queries, k, positions)
        return live, self._approximate(live, spec, queries, k, positions, ef or self.ef_search)

    def _exact(self, live: _Live, metric: str, queries: np.ndarray, k: int,
               positions: np.ndarray | None) -> list[_Found]:
        if positions is None:
            matrix, sqn = live.matrix[: live.n], live.sqnorms[: live.n]
            dead = np.flatnonzero(~live.alive[: live.n]) if live.n_dead else None
            index = None
        else:
            positions = np.sort(positions)
            matrix, sqn, dead, index = live.matrix[positions], live.sqnorms[positions], None, positions
        out: list[_Found] = []
        # Bound the score block to ~64 MB whatever the collection size.
        block = max(1, min(len(queries), (16 << 20) // max(len(matrix), 1)))
        for start in range(0, len(queries), block):
            q = queries[start:start + block]
            scores = _inner_products(q, matrix)
            if metric == "l2":
                qn = np.einsum("ij,ij->i", q, q)[:, None]
                scores = -np.sqrt(np.maximum(qn + sqn[None, :] - 2.0 * scores, 0.0))
            if dead is not None:
                scores[:, dead] = -np.inf
            for row in scores:
                top = _top_k(row, k)
                out.append((top if index is None else index[top], row[top].astype(np.float32)))
        return out

    def _approximate(self, live: _Live, spec: CollectionSpec, queries: np.ndarray, k: int,
                     positions: np.ndarray | None, ef: int) -> list[_Found]:
        ann = self._ensure_ann(live, spec)
        allowed = None
        n_candidates = live.n_alive
        if positions is not None:
            mask = np.zeros(live.n, dtype=bool)
            mask[positions] = True
            allowed = np.packbits(mask, bitorder="little")
            n_candidates = len(positions)
            # A filter hides part of the graph: widen the search in proportion.
            ef = int(ef * min(8.0, max(1.0, live.n_alive / n_candidates)))
        elif live.n_dead:
            allowed = live.allowed_bits()
        # A quantised (float16/int8/binary) index ranks its candidates by float32 from the matrix.
        scores, found = ann.search(queries, k, ef, allowed, float_rows=live.matrix)
        want = min(k, n_candidates)
        complete = found[0, -1] >= 0 if len(found) == 1 else found[:, -1].min() >= 0
        if want == k and complete:
            # The hot path: every query got its k hits.
            return list(zip(found, scores, strict=True))
        out: list[_Found] = []
        for r in range(len(queries)):
            pos = found[r]
            if pos[-1] < 0:
                pos = pos[pos >= 0]
            if len(pos) >= want:
                out.append((pos[:k], scores[r, : len(pos[:k])]))
                continue
            # The graph search ran dry (filter or tombstones cut it off): answer exactly.
            out.extend(self._exact(live, spec.metric, queries[r:r + 1], k, positions))
        return out

    # --- the in-memory mirror and its derived index ------------------------------------------

    def _live(self, entry: _Entry) -> _Live:
        live = self._lives.get(entry.cid)
        if live is None:
            live = self._load(entry)
            self._lives[entry.cid] = live
        elif live.seq != entry.seq:
            self._catch_up(live, entry)
        return live

    def _load(self, entry: _Entry) -> _Live:
        """Mirror a collection from SQLite, reusing its index file when it checks out."""
        spec, cid = entry.spec, entry.cid
        path = self._index_path(cid)
        if self.index_kind == "hnsw" and path.exists():
            try:
                ann, _file_seq, file_pks = AnnIndex.load(
                    path, dims=spec.dimensions, metric=spec.metric, dtype=spec.dtype, tag=self._tag(cid),
                )
            except IndexFileError as exc:
                log.warning("ignoring the HNSW index of collection %r and rebuilding it: %s", spec.name, exc)
            else:
                live = self._mirror(entry, file_pks)
                if live is not None:
                    first_new = len(file_pks)
                    if ann.needs_vectors:
                        # A graph-only file: its vectors are the rows just read from SQLite (rows
                        # deleted since the file was saved are zeros: tombstones, never returned).
                        # Borrowed, not copied: FAISS reads the store's matrix (one copy in memory).
                        ann.attach_vectors(live.matrix[:first_new], borrow=True)
                    ann.add(live.matrix[first_new: live.n])
                    live.ann = ann
                    live.ann_unsaved = (live.n - first_new) + live.n_dead
                    self._maybe_save(live, spec)
                    return live
                log.warning("the HNSW index of collection %r disagrees with SQLite; rebuilding it", spec.name)
        live = self._mirror(entry, None)
        assert live is not None
        return live

    def _mirror(self, entry: _Entry, file_pks: np.ndarray | None) -> _Live | None:
        """Stream every row from SQLite straight into the in-memory arrays (one copy).

        With ``file_pks`` (an index file's positions), positions follow the file: its pks
        first (those deleted since stay as tombstones), then the rows added after it. Returns
        ``None`` if SQLite holds a row the file should have but has not (a foreign file).
        """
        cid, dims = entry.cid, entry.spec.dimensions
        live = _Live(cid=cid, dims=dims, l2=entry.spec.metric == "l2")
        base = 0 if file_pks is None else len(file_pks)
        last = int(file_pks[-1]) if file_pks is not None and len(file_pks) else 0
        with self._txn("DEFERRED") as db:
            seq = db.execute("SELECT seq FROM collections WHERE cid=?", (cid,)).fetchone()
            if seq is None:
                raise CollectionNotFound(f"collection {entry.spec.name!r} was dropped by another process")
            n_new = db.execute(f"SELECT count(*) FROM c{cid} WHERE pk > ?", (last,)).fetchone()[0]
            size = base + n_new
            live.reserve(size)
            live.ids = [None] * size
            if file_pks is not None:
                live.pks[:base] = file_pks
            live.alive[:size] = False
            cur = db.execute(f"SELECT pk, id, vector FROM c{cid} ORDER BY pk")
            nxt, alive = base, 0
            # Batches of 1,024 rows (1.5 MB of 384-d vectors): joined and copied while they are
            # still in the CPU cache; 8,192 took ~20 ms longer over 30k rows.
            while batch := cur.fetchmany(1024):
                pk_col, id_col, vec_col = zip(*batch, strict=True)
                pks = np.array(pk_col, dtype=np.int64)
                n_old = int(np.searchsorted(pks, last, side="right"))
                if n_old:
                    assert file_pks is not None
                    pos_old = np.searchsorted(file_pks, pks[:n_old])
                    if (pos_old >= base).any() or (file_pks[np.minimum(pos_old, base - 1)] != pks[:n_old]).any():
                        return None
                    pos = np.concatenate([pos_old, np.arange(nxt, nxt + len(batch) - n_old)])
                else:
                    pos = np.arange(nxt, nxt + len(batch))
                nxt += len(batch) - n_old
                if nxt > size:
                    return None  # rows appeared mid-read: impossible inside one transaction
                vecs = np.frombuffer(b"".join(vec_col), dtype=np.float32).reshape(len(batch), dims)
                if pos[-1] - pos[0] == len(pos) - 1 and (len(pos) < 2 or (np.diff(pos) == 1).all()):
                    # The usual case (no deletions in this stretch): slices, not fancy indexing,
                    # a visible share of opening a store.
                    start = int(pos[0])
                    where: slice | np.ndarray = slice(start, start + len(pos))
                    live.ids[start:start + len(pos)] = id_col
                else:
                    where = pos
                    ids = live.ids
                    for p, record_id in zip(pos.tolist(), id_col, strict=True):
                        ids[p] = record_id
                live.pks[where] = pks
                live.matrix[where] = vecs
                if live.l2:
                    live.sqnorms[where] = np.einsum("ij,ij->i", vecs, vecs)
                live.alive[where] = True
                alive += len(batch)
        live.n = size
        live.n_dead = size - alive
        live.seq = int(seq[0])
        return live

    def _catch_up(self, live: _Live, entry: _Entry) -> None:
        cid = entry.cid
        with self._txn("DEFERRED") as db:
            row = db.execute("SELECT seq, floor FROM collections WHERE cid=?", (cid,)).fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {entry.spec.name!r} was dropped by another process")
            stale = live.seq < row[1]
            new = [] if stale else db.execute(
                f"SELECT pk, id, vector FROM c{cid} WHERE pk > ? ORDER BY pk", (live.last_pk,)
            ).fetchall()
            dead = np.fromiter(
                (r[0] for r in db.execute(f"SELECT pk FROM c{cid}_dead WHERE seq > ?", (live.seq,))),
                dtype=np.int64,
            )
        if stale:
            # Deletions we have not applied were pruned from the log: mirror afresh.
            had_ann = live.ann is not None
            live.__dict__.update(self._load(entry).__dict__)
            if had_ann:
                self._ensure_ann(live, entry.spec)
            return
        killed = live.kill(dead)
        if new:
            vecs = np.frombuffer(b"".join(r[2] for r in new), dtype=np.float32).reshape(len(new), -1)
            live.append(np.array([r[0] for r in new], dtype=np.int64), [r[1] for r in new], vecs,
                        np.ones(len(new), dtype=bool))
            if live.ann is not None:
                live.ann.add(vecs)
        live.seq = int(row[0])
        if live.ann is not None:
            live.ann_unsaved += len(new) + killed
        if live.n_dead > self.compact_fraction * live.n and live.n_dead >= 64:
            # Too many tombstones: renumber positions and rebuild the graph.
            had_ann = live.ann is not None
            live.compact()
            if had_ann:
                self._ensure_ann(live, entry.spec)
            return
        self._maybe_save(live, entry.spec)

    def _ensure_ann(self, live: _Live, spec: CollectionSpec) -> AnnIndex:
        if live.ann is None:
            ann = AnnIndex(spec.dimensions, spec.metric, spec.dtype, self.ann_params)
            step = 65_536
            for start in range(0, live.n, step):
                ann.add(live.matrix[start:min(start + step, live.n)])
            live.ann = ann
            live.ann_unsaved = max(live.n, 1)
            self._maybe_save(live, spec, force=True)
        return live.ann

    def _maybe_save(self, live: _Live, spec: CollectionSpec, force: bool = False) -> None:
        if live.ann is None or not live.ann_unsaved:
            return
        if not force and live.ann_unsaved < self.index_save_every:
            return
        try:
            live.ann.save(self._index_path(live.cid), seq=live.seq, rowids=live.pks[: live.n],
                          tag=self._tag(live.cid))
            live.ann_unsaved = 0
        except OSError as exc:  # the index is derived: failing to cache it is not fatal
            log.warning("could not save the HNSW index of collection %r: %s", spec.name, exc)

    def _tag(self, cid: int) -> dict[str, Any]:
        return {"store_id": self._store_id, "cid": cid}

    @_sqlite_errors
    def build_index(self, name: str) -> None:
        """Build (or catch up) the HNSW index now and save it, instead of on the first query."""
        with self._lock:
            entry = self._entry(name)
            live = self._live(entry)
            if self.index_kind == "hnsw":
                self._ensure_ann(live, entry.spec)
                self._maybe_save(live, entry.spec, force=True)

    def close(self) -> None:
        """Save HNSW indexes with unsaved changes and close the database. Idempotent."""
        with self._lock:
            if self._closed:
                return
            for live in self._lives.values():
                spec = next((e.spec for e in self._registry.values() if e.cid == live.cid), None)
                if spec is not None:
                    self._maybe_save(live, spec, force=True)
            self._lives.clear()
            self._closed = True
            self._db.close()
            self._stamp.close()


# --- SQL helpers --------------------------------------------------------------------------


def _create_tables(db: sqlite3.Connection, cid: int) -> None:
    t = f"c{cid}"
    db.execute(
        f"CREATE TABLE {t} (pk INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
        "text TEXT, text_hash BLOB, metadata TEXT NOT NULL DEFAULT '{}', vector BLOB NOT NULL, "
        "seq INTEGER NOT NULL)"
    )
    db.execute(f"CREATE TABLE {t}_dead (pk INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
    db.execute(f"CREATE INDEX {t}_dead_seq ON {t}_dead (seq)")
    db.execute(
        f"CREATE VIRTUAL TABLE {t}_fts USING fts5(text, content='{t}', content_rowid='pk', "
        f"tokenize=\"{_FTS_TOKENIZE}\")"
    )
    db.execute(
        f"CREATE TRIGGER {t}_ai AFTER INSERT ON {t} WHEN new.text IS NOT NULL BEGIN "
        f"INSERT INTO {t}_fts (rowid, text) VALUES (new.pk, new.text); END"
    )
    db.execute(
        f"CREATE TRIGGER {t}_ad AFTER DELETE ON {t} WHEN old.text IS NOT NULL BEGIN "
        f"INSERT INTO {t}_fts ({t}_fts, rowid, text) VALUES ('delete', old.pk, old.text); END"
    )
    db.execute(
        f"CREATE TRIGGER {t}_au AFTER UPDATE OF text ON {t} BEGIN "
        f"INSERT INTO {t}_fts ({t}_fts, rowid, text) SELECT 'delete', old.pk, old.text WHERE old.text IS NOT NULL; "
        f"INSERT INTO {t}_fts (rowid, text) SELECT new.pk, new.text WHERE new.text IS NOT NULL; END"
    )


def _drop_tables(db: sqlite3.Connection, cid: int) -> None:
    t = f"c{cid}"
    for stmt in (f"DROP TABLE IF EXISTS {t}_fts", f"DROP TABLE IF EXISTS {t}_dead", f"DROP TABLE IF EXISTS {t}"):
        db.execute(stmt)


def _select_pks(db: sqlite3.Connection, cid: int, column: str, values: list[Any],
                where: Node | None = None) -> list[int]:
    sql, params = compile_filter(where)
    out: list[int] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        out.extend(
            r[0] for r in db.execute(
                f"SELECT pk FROM c{cid} WHERE {column} IN ({marks}) AND {sql}", [*chunk, *params]
            )
        )
    return out


def _kill_pks(db: sqlite3.Connection, cid: int, pks: list[int], seq: int) -> None:
    db.executemany(f"INSERT OR REPLACE INTO c{cid}_dead (pk, seq) VALUES (?, {int(seq)})", ((p,) for p in pks))
    for start in range(0, len(pks), _CHUNK):
        chunk = pks[start:start + _CHUNK]
        db.execute(f"DELETE FROM c{cid} WHERE pk IN ({','.join('?' * len(chunk))})", chunk)
    if seq % 64 == 0:
        _prune_dead_log(db, cid, seq)


def _prune_dead_log(db: sqlite3.Connection, cid: int, seq: int) -> None:
    """Bound the catch-up log: past ``DEAD_LOG_MAX`` entries, drop those older than this
    write. A mirror older than the new floor then reloads from SQLite instead of catching up."""
    if db.execute(f"SELECT count(*) FROM c{cid}_dead").fetchone()[0] <= DEAD_LOG_MAX:
        return
    db.execute(f"DELETE FROM c{cid}_dead WHERE seq < ?", (seq,))
    db.execute("UPDATE collections SET floor = ? WHERE cid = ?", (seq - 1, cid))


def _metadata(meta_json: str) -> dict[str, Any]:
    # Most records carry no metadata: skip the JSON parser (a visible share of a search) for "{}".
    return {} if meta_json == "{}" else json.loads(meta_json)  # type: ignore[no-any-return]


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).copy()


def _record(row: tuple[Any, ...], include_vectors: bool) -> Record:
    return Record(id=row[0], vector=_vector(row[3]) if include_vectors else None, text=row[1],
                  metadata=_metadata(row[2]))


def _copy(record: Record) -> Record:
    # `get` may list one id twice: hand out independent objects.
    return Record(
        id=record.id, vector=None if record.vector is None else record.vector.copy(),
        text=record.text, metadata=json.loads(json.dumps(record.metadata)),
    )


_SINGLE_THREAD_QUERIES = 4


def _inner_products(q: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``q @ matrix.T``. A few queries are memory-bound scans: they run on one thread with
    FAISS's SIMD kernel, because a two-thread BLAS gemv collapses when the other core is busy
    (FACTS: 36 ms vs 4 ms) and the second core is better spent on another query. Larger
    batches are compute-bound and go to BLAS."""
    if len(q) > _SINGLE_THREAD_QUERIES or not matrix.flags.c_contiguous:
        return q @ matrix.T
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is part of the store extra
        return q @ matrix.T
    n, d = matrix.shape
    out = np.empty((len(q), n), dtype=np.float32)
    ptr = faiss.swig_ptr
    for i in range(len(q)):
        # SWIG exports it at run time; faiss's type stubs do not list it.
        faiss.fvec_inner_products_ny(ptr(out[i]), ptr(q[i]), ptr(matrix), d, n)  # type: ignore[attr-defined]
    return out


def _top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best finite scores, best first; ties keep position (insertion) order."""
    n = len(row)
    if k < n:
        part = np.argpartition(-row, k - 1)[:k]
        cand = np.flatnonzero(row >= row[part].min())
    else:
        cand = np.arange(n)
    order = cand[np.argsort(-row[cand], kind="stable")][:k]
    if len(order) and row[order[-1]] == -np.inf:
        order = order[row[order] > -np.inf]
    return order


def _prepare_queries(vectors: Any, spec: CollectionSpec) -> np.ndarray:
    """Validate query vectors (and unit-normalise them for cosine) with little per-call cost."""
    q = vectors
    if not (type(q) is np.ndarray and q.dtype == np.float32 and q.ndim == 2 and q.flags.c_contiguous):
        q = as_matrix(q, spec.dimensions)
    elif q.shape[1] != spec.dimensions:
        raise DimensionMismatch(spec.dimensions, q.shape[1])
    if len(q) == 1:
        sq = float(np.dot(q[0], q[0]))
        if not math.isfinite(sq):
            if not np.isfinite(q).all():
                raise InvalidInput("query vectors contain NaN or infinite values; fix those rows")
            sq = float(np.dot(q[0].astype(np.float64), q[0].astype(np.float64)))
        if spec.metric == "cosine" and sq > 0 and abs(sq - 1.0) > 1e-6:
            q = q * np.float32(1.0 / math.sqrt(sq))
        return q
    if not np.isfinite(q).all():
        raise InvalidInput("query vectors contain NaN or infinite values; fix those rows")
    if spec.metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", q, q, dtype=np.float64)).astype(np.float32)
        norms[norms == 0] = 1.0
        q = q / norms[:, None]
    return q


def _text_hash(text: str | None) -> bytes | None:
    return None if text is None else hashlib.sha256(text.encode()).digest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
