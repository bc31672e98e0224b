"""Read replicas for the PostgreSQL store: writes go to the primary, searches to the replicas.

::

    db = semkit.connect("postgresql://app@primary/db", replicas=["postgresql://app@replica1/db"])
    db = semkit.connect("postgresql://app@primary/db?semkit_replicas=replica1:5432,replica2:5432")

The URI form (what ``SEMKIT_DB``, ``--db`` and the server take) names each replica by
``host[:port]``; it uses the primary's user, password, database and other parameters.

Routing. k-NN searches (``query``, ``query_records``, ``explain`` stays on the primary) and
keyword searches go round-robin over the replicas; everything else — writes, ``get``, ``count``,
``scan``, the collection registry — goes to the primary. Collections attached to an existing
table (``Database.attach``, ``pg_attached``) are searched the same way, by the same rules.

Never an error for a search because of a replica. A replica whose connection fails is skipped
(no search waits for it) until a background check, every ``retry_after`` seconds, connects
again; a replica lagging more than ``max_lag`` seconds behind the primary,
or missing a table the primary has (not replayed yet), is skipped for that search. Each skip
falls back to the next replica, then to the primary, with a ``ReplicaWarning`` when a replica
goes out of service (not on every search). Only if the primary fails too is there an error.

Lag is measured on the replica, the usual way: 0 when it has replayed everything it received,
else the age of the last transaction it replayed. It is probed at most every
``check_interval`` seconds per replica (one extra statement), so a search runs on a replica
whose state is at most that old. A replica cut off from its primary looks current: it has
replayed all it received.

Read-your-writes (``read_your_writes=True`` for every search of the store, or a block under
``with store.read_your_writes():``): after this store's last write, a search goes to a replica
only once its replay position (``pg_last_wal_replay_lsn()``) has reached the primary's WAL
position recorded after that write (``pg_current_wal_insert_lsn()``, read after each primary
session); otherwise it goes to the primary, which always has the write. It does not wait for the
replica: the primary answers at once. Measured on one host (``benchmarks/pgvector_overhead.py
--replica``, primary with ``synchronous_commit=on``): a read-your-writes search right after a
one-row upsert went to the primary 8 and 20 times in 200 (two runs; the replica replayed the
write 0.08-0.11 ms p50 after that search, 3.6 ms p95 under load), and cost one extra round trip (the replica's
position is probed because it is older than the write). With ``synchronous_commit=off`` the
primary holds WAL back from replicas for up to ``wal_writer_delay``, so such searches go to the
primary for that long. It covers this store's own writes, not other processes' (those are seen
once replayed, like any replica read).
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from .pgvector import PgVectorStore

log = logging.getLogger("semkit.store.replicas")
T = TypeVar("T")

URI_PARAMETER = "semkit_replicas"
"""The query parameter of a ``postgresql://`` URI that lists replicas as ``host[:port],...``."""

_PROBE = (
    "SELECT pg_last_wal_replay_lsn()::text, CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8"
)
"""The replica's replay position and lag in seconds (a primary passed as a replica: NULL, 0).

A replica that has replayed no commit since it started has no timestamp to measure by: it counts
as current (0) until its first replayed commit, which comes within moments when it is behind."""

_consistent: contextvars.ContextVar[bool] = contextvars.ContextVar("semkit_read_your_writes", default=False)


class ReplicaWarning(UserWarning):
    """A replica went out of service; searches are answered by another replica or the primary."""


_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})
"""admin_shutdown, crash_shutdown, cannot_connect_now: the server is stopping or starting."""


def connection_lost(exc: BaseException) -> bool:
    """Whether a psycopg error means the server or the connection is gone (so another server may
    answer, and a retry later may work), not that the statement failed (a timeout, a full disk)."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    # No SQLSTATE: the client saw the socket close or could not connect.
    return state is None or state.startswith("08") or state in _SERVER_GONE


def split_replicas(dsn: str) -> tuple[str, list[str]]:
    """The primary's DSN without ``semkit_replicas=``, and one DSN per replica it lists."""
    if "://" not in dsn or URI_PARAMETER not in dsn:
        return dsn, []
    parts = urlsplit(dsn)
    params = parse_qsl(parts.query, keep_blank_values=True)
    listed = [value for key, value in params if key == URI_PARAMETER]
    rest = [(key, value) for key, value in params if key != URI_PARAMETER]
    # %20 for spaces, not "+": libpq does not read "+" as a space (options=-c%20search_path=...).
    query = urlencode(rest, quote_via=quote)
    primary = urlunsplit(parts._replace(query=query))
    userinfo = parts.netloc.rpartition("@")[0]
    replicas = []
    for address in (a.strip() for value in listed for a in value.split(",")):
        if not address or "/" in address or "@" in address:
            raise ConfigError(
                f"{URI_PARAMETER} lists replicas as host[:port] separated by commas (they use the primary's "
                f"user, password and database), got {address!r}; for other settings pass "
                f"replicas=['postgresql://...'] to connect()"
            )
        netloc = f"{userinfo}@{address}" if userinfo else address
        replicas.append(urlunsplit(parts._replace(netloc=netloc, query=query)))
    return primary, replicas


@contextlib.contextmanager
def read_your_writes() -> Iterator[None]:
    """Searches in this block (this thread or task) see this store's writes made before them."""
    token = _consistent.set(True)
    try:
        yield
    finally:
        _consistent.reset(token)


def _lsn(text: str | None) -> int:
    """A ``pg_lsn`` (``'16/B374D848'``) as a number; ``None`` (not a replica) is 0."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class Replica:
    """One replica: its pool and what was last seen of it."""

    dsn: str
    masked: str
    pool: ConnectionPool
    down: bool = False
    checked_at: float = float("-inf")
    replay_lsn: int = 0
    lag: float = 0.0
    lagging: bool = False
    searches: int = 0


@dataclass
class ReplicaSet:
    """The replicas of one ``PgVectorStore`` and the routing of its searches."""

    store: PgVectorStore
    replicas: list[Replica]
    max_lag: float
    retry_after: float
    check_interval: float
    read_your_writes: bool
    connect_timeout: float = 2.0
    primary_searches: int = 0
    last_write_lsn: int = 0
    closed: bool = False
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def search(self, action: str, collection: str, run: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``run(conn)`` on the next fit replica, else on the primary."""
        import psycopg
        from psycopg_pool import PoolTimeout

        need = self.last_write_lsn if (self.read_your_writes or _consistent.get()) else 0
        start = next(self._turn)
        count = len(self.replicas)
        now = time.monotonic()
        for offset in range(count):
            replica = self.replicas[(start + offset) % count]
            if replica.down:
                continue
            try:
                conn = replica.pool.getconn()
            except PoolTimeout as exc:
                self._out_of_service(replica, f"no connection within {replica.pool.timeout:g}s ({exc})")
                continue
            try:
                if self._fit(replica, conn, need, now):
                    result = run(conn)
                    replica.searches += 1
                    return result
            except psycopg.Error as exc:
                if connection_lost(exc):
                    self._out_of_service(replica, str(exc).strip())
                    continue
                # e.g. a table the primary has and the replica has not replayed yet: this search only.
                log.info("replica %s could not answer %s (%s); asking the primary", replica.masked, action,
                         str(exc).strip())
                break
            finally:
                replica.pool.putconn(conn)
        with self.store._session(action, collection, read=True) as conn:
            result = run(conn)
        self.primary_searches += 1
        return result

    def _fit(self, replica: Replica, conn: psycopg.Connection[Any], need: int, now: float) -> bool:
        """Whether ``replica`` may answer: not lagging beyond ``max_lag``, and (read-your-writes)
        past ``need``. Probes it when its state is older than ``check_interval``."""
        if now - replica.checked_at >= self.check_interval or replica.replay_lsn < need:
            lsn, lag = conn.execute(_PROBE).fetchone()  # type: ignore[misc]
            replica.replay_lsn, replica.lag, replica.checked_at = _lsn(lsn), float(lag), time.monotonic()
            lagging = replica.lag > self.max_lag
            if lagging and not replica.lagging:
                warnings.warn(
                    f"PostgreSQL replica {replica.masked} is {replica.lag:.1f}s behind its primary (more than "
                    f"max_lag={self.max_lag:g}s); searches go to other replicas or the primary until it catches up",
                    ReplicaWarning, stacklevel=4,
                )
            elif replica.lagging and not lagging:
                log.info("replica %s caught up (lag %.3fs)", replica.masked, replica.lag)
            replica.lagging = lagging
        if replica.lagging:
            return False
        # A replica that is really a primary (replay position NULL) has every write.
        return replica.replay_lsn >= need or replica.replay_lsn == 0

    def _out_of_service(self, replica: Replica, reason: str) -> None:
        with self._lock:
            if replica.down:
                return
            replica.down = True
        warnings.warn(
            f"PostgreSQL replica {replica.masked} is unreachable ({self.store._scrub(reason)}); searches go to "
            f"other replicas or the primary, and it is tried again every {self.retry_after:g}s",
            ReplicaWarning, stacklevel=4,
        )
        # Searches skip it without waiting; a background thread finds out when it is back.
        threading.Thread(target=self._watch, args=(replica,), name="semkit-replica-watch", daemon=True).start()

    def _watch(self, replica: Replica) -> None:
        import psycopg

        while not self.closed:
            time.sleep(self.retry_after)
            try:
                psycopg.connect(replica.dsn, connect_timeout=max(1, int(self.connect_timeout))).close()
            except psycopg.Error as exc:
                log.info("replica %s still unreachable: %s", replica.masked, self.store._scrub(str(exc).strip()))
                continue
            with contextlib.suppress(Exception):
                replica.pool.check()  # replace the connections that died with the server
            replica.checked_at = float("-inf")  # probe its lag before the first search
            replica.down = False
            log.info("replica %s is back in service", replica.masked)
            return

    def note_write(self, conn: psycopg.Connection[Any]) -> None:
        """Remember the primary's WAL position after a session on it (read-your-writes)."""
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        lsn = _lsn(row[0] if row else None)
        with self._lock:
            self.last_write_lsn = max(self.last_write_lsn, lsn)

    def stats(self) -> dict[str, int]:
        """Searches answered so far: ``{"primary": n, "<replica DSN, masked>": n, ...}``."""
        return {"primary": self.primary_searches, **{r.masked: r.searches for r in self.replicas}}

    def close(self) -> None:
        self.closed = True
        for replica in self.replicas:
            replica.pool.close()


def open_replicas(store: PgVectorStore, dsns: Sequence[str], open_pool: Callable[[str], ConnectionPool], *,
                  mask: Callable[[str], str], max_lag: float, retry_after: float, check_interval: float,
                  read_your_writes: bool, connect_timeout: float) -> ReplicaSet | None:
    """The store's ``ReplicaSet`` (``None`` without replicas); pools open in the background, so
    a replica that is down at start is only skipped."""
    if isinstance(dsns, str):
        raise ConfigError("replicas= takes a list of DSNs, e.g. replicas=['postgresql://user@replica1/db']")
    if max_lag <= 0 or retry_after <= 0 or check_interval < 0:
        raise ConfigError(f"need max_replica_lag > 0, replica_retry_after > 0 and replica_check_interval >= 0, "
                          f"got {max_lag}, {retry_after}, {check_interval}")
    replicas = [Replica(dsn, mask(dsn), open_pool(dsn)) for dsn in dsns]
    if not replicas:
        return None
    return ReplicaSet(store, replicas, max_lag, retry_after, check_interval, read_your_writes, connect_timeout)


__all__ = ["URI_PARAMETER", "Replica", "ReplicaSet", "ReplicaWarning", "connection_lost", "open_replicas",
           "read_your_writes", "split_replicas"]
