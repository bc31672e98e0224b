"""The persistent embedding cache: the same text is never embedded, or paid for, twice.

One SQLite file (``embeddings.sqlite3``) under ``semkit.config.cache_dir()``, in WAL mode so
several processes can read and write it at once. Content-addressed: a row's key is
``sha256(fingerprint, kind, text)``, so a vector is found again whatever collection, process
or run asked for it, and a change of model, backend, precision or prefix (all part of the
fingerprint) can never serve a stale vector.

The cache is an optimisation, never a point of failure: a corrupt file is moved aside and
replaced by a fresh one, and a cache that cannot be opened at all is disabled with a warning
while embedding carries on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .. import config
from ..errors import InvalidInput, StoreError, StoreLocked
from ..types import Kind, Matrix
from ..vectors import check_texts
from .base import (
    STREAM_PIECE,
    Embedder,
    EmbedderWrapper,
    EmbeddingResult,
    check_kind,
    embed_stream,
    supports_images,
)

logger = logging.getLogger(__name__)

FILENAME = "embeddings.sqlite3"
SCHEMA_VERSION = 1
LOOKUP_CHUNK = 500
"""Keys per ``IN (...)`` lookup: well under SQLite's bound-parameter limit on every build."""
BUSY_TIMEOUT_MS = 60_000
"""How long a writer waits for another process's transaction before giving up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    key    BLOB PRIMARY KEY,   -- sha256(fingerprint NUL kind NUL text)
    fp     INTEGER NOT NULL,   -- fingerprint_id(fingerprint), for stats and clear
    dims   INTEGER NOT NULL,
    vector BLOB NOT NULL       -- little-endian float32
);
CREATE INDEX IF NOT EXISTS vectors_fp ON vectors (fp);
CREATE TABLE IF NOT EXISTS fingerprints (
    id          INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
"""

T = TypeVar("T")


def cache_key(fingerprint: str, kind: str, text: str) -> bytes:
    """The 32-byte content address of one (embedder, kind, text)."""
    h = hashlib.sha256()
    h.update(fingerprint.encode("utf-8"))
    h.update(b"\0")
    h.update(kind.encode("utf-8"))
    h.update(b"\0")
    # surrogatepass: texts read with errors="surrogateescape" must still get a key
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.digest()


def fingerprint_id(fingerprint: str) -> int:
    """A stable signed 64-bit id for a fingerprint, derived from it (not allocated), so every
    process agrees on it without coordination."""
    digest = hashlib.sha256(fingerprint.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class CacheStats:
    path: Path
    entries: int
    bytes: int
    """Bytes on disk: the database file plus its write-ahead log and shared-memory index."""
    per_fingerprint: dict[str, int] = field(default_factory=dict)
    disabled: str | None = None
    """Why the cache is not in use, or None when it works."""


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    message = str(exc).lower()
    return "malformed" in message or "not a database" in message


def _is_busy(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc).lower()


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class EmbeddingCache:
    """A content-addressed store of vectors, safe for several threads and processes.

    Each thread (and each process after a fork) gets its own SQLite connection, because
    ``sqlite3`` connections must not be shared between threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[sqlite3.Connection, int]] = []  # (connection, opener's pid)
        # Bumped when the file is replaced (corruption recovery), so every thread reconnects.
        self._generation = 0
        self.disabled: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._run(lambda conn: None)  # create the schema now, so problems surface at open
        except (OSError, StoreError) as exc:
            self._disable(f"cannot open the embedding cache at {self.path}: {exc}")

    @classmethod
    def open(cls, cache_dir: str | os.PathLike[str] | None = None) -> EmbeddingCache:
        """The cache in ``cache_dir`` (default: ``SEMKIT_CACHE_DIR`` or the user cache folder)."""
        return cls(config.cache_dir(cache_dir) / FILENAME)

    # --- public operations ----------------------------------------------------------------

    def get_many(self, fingerprint: str, kind: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """Cached vectors for ``texts`` in order; ``None`` where a text is not cached."""
        out: list[np.ndarray | None] = [None] * len(texts)
        if self.disabled or not texts:
            return out
        keys = [cache_key(fingerprint, kind, t) for t in texts]
        positions: dict[bytes, list[int]] = {}
        for i, key in enumerate(keys):
            positions.setdefault(key, []).append(i)
        unique = list(positions)

        def lookup(conn: sqlite3.Connection) -> list[tuple[bytes, int, bytes]]:
            rows: list[tuple[bytes, int, bytes]] = []
            for part in _chunks(unique, LOOKUP_CHUNK):
                marks = ",".join("?" * len(part))
                rows.extend(conn.execute(
                    f"SELECT key, dims, vector FROM vectors WHERE key IN ({marks})", part
                ).fetchall())
            return rows

        try:
            rows = self._run(lookup)
        except StoreError as exc:
            logger.warning("embedding cache lookup failed, embedding without it: %s", exc)
            return out
        for key, dims, blob in rows:
            if len(blob) != 4 * dims:  # a torn or foreign row: treat as a miss, it will be rewritten
                continue
            vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
            for i in positions[bytes(key)]:
                out[i] = vector
        return out

    def put_many(self, fingerprint: str, kind: str, texts: Sequence[str], vectors: Any) -> int:
        """Store vectors for texts in one transaction; returns how many rows were written."""
        if self.disabled or len(texts) == 0:
            return 0
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype="<f4"))
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise InvalidInput(f"put_many needs one vector per text, got {matrix.shape} for {len(texts)} texts")
        fp = fingerprint_id(fingerprint)
        dims = int(matrix.shape[1])
        rows = [(cache_key(fingerprint, kind, t), fp, dims, matrix[i].tobytes())
                for i, t in enumerate(texts)]

        def write(conn: sqlite3.Connection) -> None:
            # IMMEDIATE takes the write lock up front; a deferred transaction that upgrades
            # later can fail with SQLITE_BUSY without waiting in WAL mode.
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR IGNORE INTO fingerprints (id, fingerprint) VALUES (?, ?)",
                             (fp, fingerprint))
                # REPLACE rather than IGNORE so a malformed row left by an older writer is fixed
                conn.executemany("INSERT OR REPLACE INTO vectors (key, fp, dims, vector) VALUES (?, ?, ?, ?)",
                                 rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._run(write)
        return len(rows)

    def stats(self) -> CacheStats:
        size = sum(p.stat().st_size for p in self._files() if p.exists())
        if self.disabled:
            return CacheStats(self.path, 0, size, {}, self.disabled)

        def read(conn: sqlite3.Connection) -> list[tuple[str | None, int, int]]:
            return conn.execute(
                "SELECT f.fingerprint, v.fp, count(*) FROM vectors v "
                "LEFT JOIN fingerprints f ON f.id = v.fp GROUP BY v.fp"
            ).fetchall()

        per: dict[str, int] = {}
        for name, fp, count in self._run(read):
            per[name if name is not None else f"<unknown {fp}>"] = count
        size = sum(p.stat().st_size for p in self._files() if p.exists())
        return CacheStats(self.path, sum(per.values()), size, per)

    def clear(self, fingerprint: str | None = None) -> int:
        """Delete every cached vector, or only those of one embedder fingerprint; returns the
        number of vectors removed. The file keeps its size until ``vacuum()``."""
        if self.disabled:
            return 0

        def delete(conn: sqlite3.Connection) -> int:
            if fingerprint is None:
                cur = conn.execute("DELETE FROM vectors")
            else:
                cur = conn.execute("DELETE FROM vectors WHERE fp = ?", (fingerprint_id(fingerprint),))
            removed = cur.rowcount
            # A large delete leaves its pages in the write-ahead log until a checkpoint; SQLite's
            # own TRUNCATE checkpoint copies them back and empties the log (measured: a 214 MB
            # -wal file left behind by a clear while a server kept the cache open).
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return removed

        return self._run(delete)

    def vacuum(self) -> None:
        """Give the space of deleted vectors back to the file system (rewrites the file)."""
        if not self.disabled:
            self._run(lambda conn: conn.execute("VACUUM"))

    def close(self) -> None:
        """Close every connection this object opened (call it when no other thread is using the
        cache); using the cache again reopens lazily."""
        with self._lock:
            conns, self._connections = self._connections, []
            self._generation += 1
        for conn, pid in conns:
            # A connection inherited through fork() belongs to the parent: SQLite must not touch
            # it from the child, not even to close it.
            if pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f" disabled: {self.disabled}" if self.disabled else ""
        return f"<EmbeddingCache {self.path}{state}>"

    # --- connections, errors and recovery ---------------------------------------------------

    def _files(self) -> list[Path]:
        return [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False only so close() may close it from another thread; each
        # connection is used by the one thread that opened it.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Only takes effect on a new file. Rows are 1.5-12 KB: with 4 KB pages a quarter of
            # the file is slack and large vectors spill to overflow pages; 16 KB pages measured
            # 20% smaller and about 2x faster to read and write for 384-dim vectors.
            conn.execute("PRAGMA page_size = 16384")
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            # NORMAL is durable across application crashes in WAL mode; losing the last few
            # writes on power loss only costs re-embedding them.
            conn.execute("PRAGMA synchronous = NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the embedding cache {self.path} was written by a newer semkit (schema "
                    f"{version}); upgrade semkit or point SEMKIT_CACHE_DIR elsewhere"
                )
            if version < SCHEMA_VERSION:
                self._retry_busy(lambda: self._create_schema(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _retry_busy(action: Any) -> Any:
        # Switching to WAL and creating the schema can meet SQLITE_BUSY without the busy
        # handler being consulted while another process does the same at the same moment.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.01
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            if local.generation == self._generation:
                return conn
            self._forget(conn)  # the file was replaced by recovery: reconnect to the new one
        local.conn = None
        # The inode is taken before connecting: if the file turns out corrupt, recovery must
        # move exactly this file aside, not a fresh one another process has put in its place.
        local.inode = self._inode()
        conn = self._connect()
        with self._lock:
            self._connections.append((conn, os.getpid()))
            local.generation = self._generation
        local.conn, local.pid = conn, os.getpid()
        return conn

    def _forget(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._connections = [(c, pid) for c, pid in self._connections if c is not conn]
        with contextlib.suppress(sqlite3.Error):
            conn.close()

    def _inode(self) -> int | None:
        try:
            return self.path.stat().st_ino
        except OSError:
            return None

    def _run(self, operation: Any) -> Any:
        """Run ``operation(conn)``; translate SQLite errors; recover once from a corrupt file."""
        for attempt in (1, 2):
            try:
                return operation(self._conn())
            except sqlite3.DatabaseError as exc:
                if _is_corruption(exc) and attempt == 1:
                    self._recover(exc)
                    continue
                if _is_busy(exc):
                    raise StoreLocked(
                        f"the embedding cache {self.path} stayed locked by another process for "
                        f"{BUSY_TIMEOUT_MS // 1000} s; try again, or use a separate SEMKIT_CACHE_DIR"
                    ) from exc
                raise StoreError(f"embedding cache {self.path}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _recover(self, exc: BaseException) -> None:
        """Move a corrupt cache file aside and start a fresh one."""
        from filelock import FileLock

        seen_inode = getattr(self._local, "inode", None)
        # Other threads may be mid-query on their own connections: they are not closed here,
        # they reconnect on their next operation because the generation changed.
        with self._lock:
            self._generation += 1
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._forget(conn)
            self._local.conn = None
        moved = None
        try:
            with FileLock(f"{self.path}.lock", timeout=BUSY_TIMEOUT_MS / 1000):
                # Another process may have replaced the file already: nothing left to move.
                if seen_inode is not None and self._inode() not in (seen_inode, None):
                    return
                stamp = time.strftime("%Y%m%d-%H%M%S")
                for path in self._files():
                    if path.exists():
                        target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
                        os.replace(path, target)
                        if path == self.path:
                            moved = target
        except OSError as err:  # includes filelock.Timeout
            raise StoreError(
                f"the embedding cache {self.path} is corrupt ({exc}) and could not be moved aside "
                f"({err}); delete it by hand or point SEMKIT_CACHE_DIR elsewhere"
            ) from err
        logger.warning(
            "the embedding cache %s was unreadable (%s); moved it to %s and started a fresh cache",
            self.path, exc, moved,
        )

    def _disable(self, reason: str) -> None:
        self.disabled = reason
        self.close()
        logger.warning("%s; embedding continues without a cache", reason)


class CachedEmbedder(EmbedderWrapper):
    """An ``Embedder`` that asks the cache first and its inner embedder only for misses.

    The misses of one call go to the inner embedder as ONE stream (``embed_stream``), so a
    local model sorts all of them by length as it would without the cache (handing them over
    256 at a time brought padding back and cost 25% of throughput); each piece of the stream
    is written to the cache as it arrives, so an interrupted run keeps what it paid for.
    Items that are not strings (images) go to the inner embedder uncached, and so does
    ``embed_images`` (``EmbedderWrapper``).
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache, *, chunk_size: int = STREAM_PIECE) -> None:
        if chunk_size < 1:
            raise InvalidInput("chunk_size must be at least 1")
        super().__init__(inner)
        self.cache = cache
        self.chunk_size = chunk_size
        """Texts per call for an inner embedder that cannot stream a whole call itself."""

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        check_kind(kind)
        if not isinstance(items, str) and isinstance(items, Sequence) and any(
            not isinstance(item, str) for item in items
        ) and supports_images(self.inner):
            return self.inner.embed_result(items, kind)
        texts = check_texts(items)
        fingerprint = self.inner.fingerprint
        dims = self.inner.dimensions

        distinct = list(dict.fromkeys(texts))
        found: dict[str, np.ndarray] = {}
        for text, vector in zip(distinct, self.cache.get_many(fingerprint, kind, distinct), strict=True):
            if vector is not None and vector.shape == (dims,):
                found[text] = vector
        misses = [t for t in distinct if t not in found]

        computed: dict[str, np.ndarray] = {}
        # Each computed text's (tokens, truncated) when the model reports them; a hit gets
        # (-1, False): the model did not see it this time.
        counted: dict[str, tuple[int, bool]] | None = {}
        tokens = truncated = 0
        for start, result in embed_stream(self.inner, misses, kind, self.chunk_size) if misses else ():
            part = misses[start:start + len(result.vectors)]
            tokens += result.tokens
            truncated += result.truncated
            self._store(fingerprint, kind, part, result.vectors)
            computed.update(zip(part, result.vectors, strict=True))
            if counted is not None and result.text_tokens is not None and result.text_truncated is not None:
                counted.update(zip(part, zip(result.text_tokens.tolist(), result.text_truncated.tolist(),
                                             strict=True), strict=True))
            else:
                counted = None

        out = np.empty((len(texts), dims), dtype=np.float32)
        cached = 0
        for i, text in enumerate(texts):
            hit = found.get(text)
            if hit is not None:
                out[i] = hit
                cached += 1
            else:
                out[i] = computed[text]
        if cached:
            self.meter.add(cached_items=cached)
        text_tokens = text_truncated = None
        if counted is not None:
            per_text = [counted.get(t, (-1, False)) for t in texts]
            text_tokens = np.array([n for n, _ in per_text], dtype=np.int64)
            text_truncated = np.array([c for _, c in per_text], dtype=bool)
        return EmbeddingResult(vectors=out, truncated=truncated, tokens=tokens, cached=cached,
                               text_tokens=text_tokens, text_truncated=text_truncated)

    def _store(self, fingerprint: str, kind: str, texts: Sequence[str], vectors: Matrix) -> None:
        try:
            self.cache.put_many(fingerprint, kind, texts, vectors)
        except StoreError as exc:
            # The vectors are already paid for and are returned; only resumability is lost.
            logger.warning("could not write %d vectors to the embedding cache: %s", len(texts), exc)

    def __repr__(self) -> str:
        return f"<CachedEmbedder {self.fingerprint} cache={self.cache.path}>"
