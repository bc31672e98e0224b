"""PostgreSQL + pgvector backend: the layout a PostgreSQL user expects.

One table per collection, in the store's schema (``public`` by default)::

    semkit_<name> (
        id        text PRIMARY KEY DEFAULT gen_random_uuid()::text,  -- byte-order ("C") collation
        content   text,                      -- the embedded text, if any
        metadata  jsonb NOT NULL DEFAULT '{}',
        embedding vector(n),                 -- halfvec(n) if n > 2000 or dtype float16
                                             -- (dtype binary: a bit index on it, pg_quantized)
        fts       tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(content, ''))) STORED
    )
    indexes: HNSW on embedding with the metric's opclass, GIN on metadata, GIN on fts

and a registry ``semkit_collections(name, table_name, spec jsonb, text_search_config,
created_at)`` holding each collection's fingerprint. Names of letters, digits
and ``_`` map to ``semkit_<name>`` (capitals kept: ``"semkit_MyDocs"``); other names get a slug
plus a hash (``pg_sql.table_name``). Plain SQL works on the tables, reads and seed-style writes:
``SELECT id, content FROM semkit_docs ORDER BY embedding <=> '[...]' LIMIT 5``,
``INSERT INTO semkit_docs (content, embedding) VALUES (...)``.

A user's existing table can be a collection too, served in place (``attach_table``): its
registry row's spec holds an ``attachment`` and every operation on it goes to ``pg_attached``.
k-NN queries (``pg_read.Knn``) are shared by both kinds of table.

Writes: binary COPY into a temporary staging table, then ``INSERT ... ON CONFLICT (id) DO
UPDATE``, in one transaction per call. Inserting through an HNSW index costs ~1 ms a row, while
building the index over the whole table costs ~0.15 ms a row, so a batch of at least 1,000 rows
that is at least a quarter of the table drops the index and rebuilds it in the same transaction
(``bulk_rebuild``; readers of that table wait for the commit). The rebuilt index uses the
store's ``hnsw_m``/``hnsw_ef_construction``.

Queries: ``ORDER BY embedding <=> q LIMIT k`` through HNSW (``hnsw.ef_search``, and with
pgvector >= 0.8 ``hnsw.iterative_scan = relaxed_order`` so filtered scans keep going until k
rows match). A filtered query whose filter matches at most ``exact_threshold`` rows — or
``exact=True`` — is answered exactly with index scans disabled (bitmap scans on the GIN index
still narrow the rows), so it returns exactly the top-k among the matching rows. Larger match
sets are approximate, like unfiltered queries. ``explain()`` shows the plan a query gets.

Keyword search: PostgreSQL full-text search on ``fts``. Any word of the query may match (an OR
of the words, stemmed with the collection's text search configuration), ranked by
``ts_rank(fts, q, 1)``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    InvalidInput,
    MissingDependency,
    StoreError,
    TableNotAttached,
)
from ..types import Matrix
from ..vectors import as_matrix
from . import base, pg_attached, pg_quantized, pg_replicas
from .base import CollectionSpec, Neighbors, Record, ScoredRecords
from .filters import Node
from .pg_read import MAX_EF_SEARCH, OPERATORS, copy_record, keyset_scan, occurrences, record_from_row
from .pg_sql import REGISTRY_TABLE, compile_filter, index_names, keyword_tsquery, quote_ident, refuse_nul, table_name

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg_pool import PoolTimeout
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependency("psycopg", "postgres", "The PostgreSQL (pgvector) store") from _exc

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool


MAX_VECTOR_INDEX_DIMS = 2000
"""pgvector indexes ``vector`` columns up to 2,000 dimensions ..."""
MAX_HALFVEC_INDEX_DIMS = 4000
"""... and ``halfvec`` columns up to 4,000; beyond that queries are exact scans."""
MAX_DIMS = 16000

_OPCLASS = {"cosine": "cosine_ops", "dot": "ip_ops", "l2": "l2_ops"}
_REBUILD_MIN_ROWS = 1000
_REBUILD_RATIO = 4  # rebuild when the table holds at most 4x the rows being written


@dataclass(frozen=True)
class _Info:
    """What the store needs to know about one collection's table."""

    spec: CollectionSpec
    table: str
    fts_config: str
    schema: str
    attached: pg_attached.Attachment | None = None
    """Set for a user's table served in place (``pg_attached``): every operation goes there."""

    @functools.cached_property
    def qualified(self) -> str:
        """``"schema"."table"``, quoted for SQL text."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @property
    def vector_type(self) -> str:
        return _vector_type(self.spec)

    @property
    def indexable(self) -> bool:
        limit = MAX_HALFVEC_INDEX_DIMS if self.vector_type == "halfvec" else MAX_VECTOR_INDEX_DIMS
        return self.spec.dimensions <= limit


def _vector_type(spec: CollectionSpec) -> str:
    if spec.dtype == "float16" or spec.dimensions > MAX_VECTOR_INDEX_DIMS:
        return "halfvec"
    return "vector"


class PgVectorStore:
    """A ``VectorStore`` on PostgreSQL with the pgvector extension.

    ``dsn``: a libpq URI or key=value string (``postgresql://user:pass@host:5432/db``).
    ``schema``: where the tables live (created if missing). ``ef_search``: the HNSW search
    breadth for every query of this store (server default otherwise, 40); per query, pass
    ``ef=``. ``exact_threshold``: a filtered query matching at most this many rows is answered
    exactly. ``bulk_rebuild``: rebuild the HNSW index after a batch that is large compared with
    the table (see the module docstring). ``maintenance_work_mem`` (e.g. ``"1GB"``): memory for
    those builds; HNSW builds that outgrow it are much slower.

    ``replicas``: DSNs of streaming read replicas (or ``?semkit_replicas=host:port,...`` in
    ``dsn``): searches go round-robin over them, everything else to the primary, and a replica
    that is down or more than ``max_replica_lag`` seconds behind is skipped with a
    ``ReplicaWarning``. ``read_your_writes=True``: every search sees this store's earlier writes
    (per block: ``with store.read_your_writes():``). See ``pg_replicas``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_min: int = 1,
        pool_max: int = 8,
        ef_search: int | None = None,
        exact_threshold: int = 20_000,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        bulk_rebuild: bool = True,
        maintenance_work_mem: str | None = None,
        text_search_config: str = "english",
        create_extension: bool = True,
        connect_timeout: float = 10.0,
        pool_timeout: float = 30.0,
        replicas: Sequence[str] = (),
        read_your_writes: bool = False,
        max_replica_lag: float = 5.0,
        replica_retry_after: float = 5.0,
        replica_check_interval: float = 1.0,
    ) -> None:
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigError("a PostgreSQL DSN is required, e.g. postgresql://user@localhost:5432/mydb")
        if ef_search is not None and not 1 <= ef_search <= MAX_EF_SEARCH:
            raise ConfigError(f"ef_search must be between 1 and {MAX_EF_SEARCH}, got {ef_search}")
        if not 1 <= pool_min <= pool_max:
            raise ConfigError(f"need 1 <= pool_min <= pool_max, got pool_min={pool_min}, pool_max={pool_max}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text_search_config):
            raise ConfigError(f"text_search_config must be a configuration name like 'english', "
                              f"got {text_search_config!r}")
        dsn, uri_replicas = pg_replicas.split_replicas(dsn)
        self._dsn = dsn
        self._masked = mask_dsn(dsn)
        self._secret = _password(dsn)
        self.schema = schema
        self.ef_search = ef_search
        self.exact_threshold = exact_threshold
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction
        self.bulk_rebuild = bulk_rebuild
        self.maintenance_work_mem = maintenance_work_mem
        self.text_search_config = text_search_config
        self._connect_timeout = connect_timeout
        self._infos: dict[str, _Info] = {}
        self._sql_cache: dict[tuple[Any, ...], str] = {}
        # hnsw.ef_search of each pooled connection that a query changed (absent: the default
        # set up by the pool's configure); see pg_read.Knn.use_breadth.
        self._session_ef: weakref.WeakKeyDictionary[psycopg.Connection[Any], int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._closed = False
        self.pgvector_version = self._prepare_database(create_extension)
        self._iterative = _version_tuple(self.pgvector_version) >= (0, 8)
        self._pool = self._open_pool(self._dsn, pool_min, pool_max, pool_timeout)
        self._replicas = pg_replicas.open_replicas(
            self, [*uri_replicas, *replicas],
            # A replica that cannot hand out a connection quickly is skipped, not waited for.
            lambda replica: self._open_pool(replica, 1, pool_max, min(pool_timeout, connect_timeout, 2.0)),
            mask=mask_dsn, max_lag=max_replica_lag, retry_after=replica_retry_after,
            check_interval=replica_check_interval,
            read_your_writes=read_your_writes, connect_timeout=connect_timeout,
        )

    def __repr__(self) -> str:
        return f"PgVectorStore({self._masked!r}, schema={self.schema!r})"

    # --- connections ------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._dsn, autocommit=True, connect_timeout=int(self._connect_timeout))
        except psycopg.Error as exc:
            raise self._connection_error(exc) from None

    def _prepare_database(self, create_extension: bool) -> str:
        """Check pgvector, create the schema and the registry; return pgvector's version."""
        with self._connect() as conn, _Translating(self, "opening the store"):
            version = _extension_version(conn)
            if version is None:
                if not create_extension:
                    raise StoreError(self._no_extension_message(conn, None))
                try:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg.Error as exc:
                    raise StoreError(self._no_extension_message(conn, exc)) from None
                version = _extension_version(conn) or "0"
            # Using the type loads pgvector's library, which defines its hnsw.* settings.
            conn.execute("SELECT '[1]'::vector")
            setting = conn.execute("SELECT current_setting('hnsw.ef_search', true)").fetchone()[0]  # type: ignore[index]
            self.server_ef_search = int(setting) if setting and str(setting).isdigit() else 40
            with conn.transaction():
                # Two processes opening a fresh database at once must not race on CREATE TABLE.
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('semkit registry'))")
                if conn.execute("SELECT to_regnamespace(%s)", (self.schema,)).fetchone()[0] is None:  # type: ignore[index]
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
                if conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}".{REGISTRY_TABLE}',)).fetchone()[0] is None:  # type: ignore[index]
                    conn.execute(sql.SQL(
                        """CREATE TABLE {} (
                            name text PRIMARY KEY,
                            table_name text NOT NULL UNIQUE,
                            spec jsonb NOT NULL,
                            text_search_config text NOT NULL DEFAULT 'english',
                            created_at timestamptz NOT NULL DEFAULT now())"""
                    ).format(self._qualified(REGISTRY_TABLE)))
            return version

    def _no_extension_message(self, conn: psycopg.Connection[Any], exc: psycopg.Error | None) -> str:
        db = conn.info.dbname
        available = conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()[0]  # type: ignore[index]
        if not available:
            return (
                f"the pgvector extension is not installed on the PostgreSQL server at "
                f"{self._where()}. Install pgvector on the server (https://github.com/pgvector/pgvector"
                f"#installation, or use a host that ships it, e.g. Supabase or the pgvector/pgvector "
                f"Docker image), then run: CREATE EXTENSION vector; in database {db!r}"
            )
        reason = f" (creating it failed: {self._scrub(str(exc).strip())})" if exc is not None else ""
        return (
            f"the pgvector extension is available but not enabled in database {db!r}{reason}. "
            f"Connect as a user allowed to create extensions and run: CREATE EXTENSION vector;"
        )

    def _open_pool(self, dsn: str, pool_min: int, pool_max: int, timeout: float) -> ConnectionPool:
        from psycopg_pool import ConnectionPool

        try:
            from pgvector.psycopg import register_vector
        except ImportError as exc:  # pragma: no cover
            raise MissingDependency("pgvector", "postgres", "The PostgreSQL (pgvector) store") from exc

        settings: list[tuple[str, str]] = [("jit", "off")]
        if self.ef_search is not None:
            settings.append(("hnsw.ef_search", str(self.ef_search)))
        if self._iterative:
            settings.append(("hnsw.iterative_scan", "relaxed_order"))
            settings.append(("ivfflat.iterative_scan", "relaxed_order"))  # binary collections' bit index

        def configure(conn: psycopg.Connection[Any]) -> None:
            register_vector(conn)
            # Parsing a vector loads pgvector's library, which defines the hnsw.* settings; set
            # before that, they would be placeholders that SHOW and current_setting reject.
            conn.execute("SELECT '[1]'::vector")
            # JIT compilation costs tens of milliseconds and never pays off for k-NN queries.
            for name, value in settings:
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))

        pool = ConnectionPool(
            dsn, min_size=pool_min, max_size=pool_max, open=False, timeout=timeout,
            configure=configure, kwargs={"autocommit": True, "connect_timeout": int(self._connect_timeout)},
            name="semkit-pgvector",
        )
        pool.open(wait=False)
        return pool

    def _session(self, action: str, collection: str | None = None, *, read: bool = False) -> _Session:
        """A pooled connection to the primary for ``action``; psycopg errors inside become semkit
        errors. With replicas, the primary's WAL position is noted after each session that is not
        ``read`` (read-your-writes)."""
        return _Session(self, action, collection, read)

    def _search(self, action: str, collection: str, run: Any) -> Any:
        """``run(conn)`` for a search: on a replica if there are any (``pg_replicas``)."""
        if self._replicas is not None:
            return self._replicas.search(action, collection, run)
        with _Session(self, action, collection, True) as conn:
            return run(conn)

    def read_your_writes(self) -> AbstractContextManager[None]:
        """Searches in this block see this store's earlier writes, on replicas or the primary."""
        return pg_replicas.read_your_writes()

    def replica_stats(self) -> dict[str, int]:
        """Searches answered by the primary and by each replica (empty without replicas)."""
        return {} if self._replicas is None else self._replicas.stats()

    def _conn(self) -> _Session:
        return _Session(self, "using the connection pool")

    def _pool_timeout(self, exc: Exception) -> StoreError:
        err = StoreError(
            f"no PostgreSQL connection available from {self._where()} within "
            f"{self._pool.timeout:.0f}s ({self._scrub(str(exc))}). Check that the server is up, "
            f"or raise pool_max (now {self._pool.max_size}) if many threads share this store."
        )
        err.retryable = True
        return err

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._replicas is not None:
                self._replicas.close()
            self._pool.close()

    def __enter__(self) -> PgVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- errors -----------------------------------------------------------------------

    def _where(self) -> str:
        params = _conninfo(self._dsn)
        host = params.get("host") or params.get("hostaddr") or "localhost (default socket)"
        return f"{host}:{params.get('port') or 5432}"

    def _scrub(self, text: str) -> str:
        text = text.replace(self._dsn, self._masked)
        if self._secret and len(self._secret) >= 3:
            text = text.replace(self._secret, "***")
        return text

    def _connection_error(self, exc: psycopg.Error) -> StoreError:
        detail = self._scrub(str(exc).strip())
        lowered = detail.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            hint = "Check the user name and password in the DSN (or PGPASSWORD / ~/.pgpass)."
        elif "does not exist" in lowered and "database" in lowered:
            hint = "Create the database first (CREATE DATABASE ...) or fix its name in the DSN."
        else:
            hint = (
                "Start PostgreSQL with pgvector (for example: docker run -d -p 5432:5432 "
                "-e POSTGRES_PASSWORD=... pgvector/pgvector:pg17), or point semkit at a running "
                "server such as Supabase: semkit.connect('postgresql://USER:PASSWORD@HOST:5432/DB')."
            )
        err = StoreError(f"cannot connect to PostgreSQL at {self._where()} ({self._masked}): {detail}. {hint}")
        err.retryable = isinstance(exc, psycopg.OperationalError) and "authentication" not in lowered
        return err

    def _translate(self, exc: psycopg.Error, action: str, collection: str | None) -> StoreError:
        """The semkit error for a psycopg exception raised while doing ``action``."""
        if isinstance(exc, psycopg.errors.UndefinedTable):
            if collection is None:
                return StoreError(f"{action}: a semkit table is missing in schema {self.schema!r}")
            self._forget(collection)
            return CollectionNotFound(
                f"collection {collection!r} not found (its table was dropped); "
                "list collections with list_collections()"
            )
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return StoreError(
                f"{action}: permission denied on {self._where()}: {self._scrub(str(exc).strip())}. "
                f"The user needs USAGE and CREATE on schema {self.schema!r} "
                f"(GRANT USAGE, CREATE ON SCHEMA {self.schema} TO <user>;) and rights on the semkit tables."
            )
        if pg_replicas.connection_lost(exc):
            # The connection was open: the server went away (restart, crash, network) mid-call.
            err = StoreError(
                f"lost the connection to PostgreSQL at {self._where()} while {action}: "
                f"{self._scrub(str(exc).strip())}. Each write is one transaction, so it committed whole or not "
                f"at all; upserts are idempotent, so retrying the call is safe once the server is back"
            )
            err.retryable = True
            return err
        err = StoreError(f"{action} failed in PostgreSQL: {self._scrub(str(exc).strip())}")
        # A statement timeout or lock timeout (57014, 55P03), a serialization failure or deadlock.
        err.retryable = getattr(exc, "sqlstate", None) in ("57014", "55P03", "40001", "40P01")
        return err

    # --- collections ------------------------------------------------------------------

    def _qualified(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def _forget(self, name: str) -> None:
        with self._lock:
            self._infos.pop(name, None)

    def _info(self, name: str) -> _Info:
        with self._lock:
            info = self._infos.get(name)
        if info is not None:
            return info
        info = self._load_info(name)
        if info is None:
            raise CollectionNotFound(
                f"collection {name!r} does not exist in schema {self.schema!r}; "
                "create it first (list_collections() shows what exists)"
            )
        with self._lock:
            self._infos[name] = info
        return info

    def _load_info(self, name: str) -> _Info | None:
        query = sql.SQL("SELECT spec, table_name, text_search_config FROM {} WHERE name = %s").format(
            self._qualified(REGISTRY_TABLE))
        with self._session("reading the collection registry") as conn:
            row = conn.execute(query, (name,)).fetchone()
        if row is None:
            return None
        attached = pg_attached.recorded_attachment(row[0])
        return _Info(CollectionSpec.from_json(row[0]), row[1], row[2], self.schema, attached)

    def attachment(self, name: str) -> pg_attached.Attachment | None:
        """Which table and columns collection ``name`` is, if it is an attached table."""
        return self._info(name).attached

    def _attached(self, info: _Info) -> pg_attached.AttachedTable:
        """The operations of an attached collection, on the user's table."""
        assert info.attached is not None
        return pg_attached.AttachedTable(self, info.spec, info.attached)

    def attach_table(
        self, name: str, *, table: str, id: str, text: str, vector: str, metadata: str | None = None,
        columns: Sequence[str] = (), fts: str | None = None, embedder: str | None = None,
        dimensions: int | None = None, metric: str | None = None, create_fts_index: bool = False,
    ) -> CollectionSpec:
        """Serve an existing table as collection ``name``, in place (see ``pg_attached``).

        ``dimensions`` (the model's) must match the vector column's. Nothing in the table
        changes; ``create_fts_index=True`` adds the keyword-search expression index to it.
        """
        if metric is not None and metric not in OPERATORS:
            raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(OPERATORS)}")
        with self._session(f"attaching {table!r} as collection {name!r}") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('semkit registry'))")
            attachment, dims, chosen = pg_attached.inspect_table(
                conn, self, table=table, id=id, text=text, vector=vector, metadata=metadata,
                columns=list(columns), fts=fts, metric=metric, dimensions=dimensions,  # type: ignore[arg-type]
            )
            spec = CollectionSpec(
                name=name, dimensions=dims, metric=chosen, embedder=embedder,
                dtype="float16" if attachment.vector_type == "halfvec" else "float32",
                normalized=chosen == "cosine",
            )
            _check_spec(spec)
            spec = pg_attached.register(conn, self, spec, attachment)
            if create_fts_index and fts is None:
                conn.execute(pg_attached.fts_index_sql(attachment))
        self._forget(name)
        return spec

    def get_collection(self, name: str) -> CollectionSpec | None:
        info = self._load_info(name)
        with self._lock:
            if info is None:
                self._infos.pop(name, None)
            else:
                self._infos[name] = info
        return None if info is None else info.spec

    def list_collections(self) -> list[CollectionSpec]:
        query = sql.SQL("SELECT spec FROM {} ORDER BY name").format(self._qualified(REGISTRY_TABLE))
        with self._session("listing collections") as conn:
            return [CollectionSpec.from_json(row[0]) for row in conn.execute(query)]

    def create_collection(self, spec: CollectionSpec) -> None:
        _check_spec(spec)
        table = table_name(spec.name)
        info = _Info(spec, table, self.text_search_config, self.schema)
        names = index_names(table)
        vtype = info.vector_type
        qualified = self._qualified(table)
        statements = [
            sql.SQL(
                """CREATE TABLE {table} (
                    id text COLLATE "C" NOT NULL DEFAULT gen_random_uuid()::text,
                    content text,
                    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                    embedding {vtype}({dims}) NOT NULL,
                    fts tsvector GENERATED ALWAYS AS
                        (to_tsvector({cfg}::regconfig, coalesce(content, ''))) STORED,
                    CONSTRAINT {pkey} PRIMARY KEY (id))"""
            ).format(table=qualified, vtype=sql.SQL(vtype), dims=sql.Literal(spec.dimensions),
                     cfg=sql.Literal(self.text_search_config), pkey=sql.Identifier(names["pkey"])),
            sql.SQL("CREATE INDEX {} ON {} USING gin (metadata)").format(
                sql.Identifier(names["metadata"]), qualified),
            sql.SQL("CREATE INDEX {} ON {} USING gin (fts)").format(sql.Identifier(names["fts"]), qualified),
        ]
        if info.indexable and pg_quantized.index_at_create(info.spec):  # binary: once rows exist
            statements.append(self._hnsw_ddl(info))
        registry = sql.SQL(
            "INSERT INTO {} (name, table_name, spec, text_search_config) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING"
        ).format(self._qualified(REGISTRY_TABLE))
        with self._session(f"creating collection {spec.name!r}") as conn, conn.transaction():
            cur = conn.execute(registry, (spec.name, table, json.dumps(spec.to_json()), self.text_search_config))
            if cur.rowcount == 0:
                raise CollectionExists(
                    f"collection {spec.name!r} already exists in schema {self.schema!r}; open it, "
                    "or drop it first to start over"
                )
            if conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{table}"',)).fetchone()[0]:  # type: ignore[index]
                raise StoreError(
                    f"table {self.schema}.{table} already exists but is not a registered semkit "
                    f"collection; drop or rename that table, or choose another collection name"
                )
            self._refuse_foreign_table(conn, spec.name)
            for statement in statements:
                conn.execute(statement)
        with self._lock:
            self._infos[spec.name] = info

    def _refuse_foreign_table(self, conn: psycopg.Connection[Any], name: str) -> None:
        """A table that SQL calls ``name`` is the user's data: a new, empty ``semkit_<name>``
        beside it would silently answer every search with nothing."""
        found = pg_attached.foreign_table(conn, self, name)
        if found is not None:
            oid, table = found
            raise TableNotAttached(
                f"a table {table} already exists and is not a semkit collection, so collection {name!r} "
                f"would be a new, empty table beside it. To search that table in place: "
                f"{pg_attached.attach_hint(conn, name, oid, table)}. For a separate collection, choose another name"
            )

    def _hnsw_ddl(self, info: _Info) -> sql.Composed:
        key = pg_quantized.index_key(info.spec, info.vector_type, _OPCLASS[info.spec.metric])
        return sql.SQL(
            "CREATE INDEX {} ON {} USING hnsw ({}) WITH (m = {}, ef_construction = {})"
        ).format(sql.Identifier(index_names(info.table)["hnsw"]), self._qualified(info.table),
                 sql.SQL(key), sql.Literal(int(self.hnsw_m)), sql.Literal(int(self.hnsw_ef_construction)))

    def drop_collection(self, name: str) -> None:
        """Drop the collection and its table; for an attached table, forget the attachment
        only (the user's table and rows stay)."""
        with self._session(f"dropping collection {name!r}") as conn, conn.transaction():
            table = self._registered_table(conn, name, lock=True)
            if table is None:
                self._forget(name)
                raise CollectionNotFound(f"collection {name!r} does not exist in schema {self.schema!r}")
            if not _is_attached(table):
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._qualified(table)))
            conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(
                self._qualified(REGISTRY_TABLE)), (name,))
        self._forget(name)

    def _registered_table(self, conn: psycopg.Connection[Any], name: str, lock: bool = False) -> str | None:
        query = "SELECT table_name FROM {} WHERE name = %s" + (" FOR UPDATE" if lock else "")
        row = conn.execute(sql.SQL(query).format(self._qualified(REGISTRY_TABLE)), (name,)).fetchone()
        return None if row is None else row[0]

    def rename_collection(self, old: str, new: str) -> None:
        if old == new:
            self._info(old)
            return
        registry = self._qualified(REGISTRY_TABLE)
        with self._session(f"renaming collection {old!r} to {new!r}") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('semkit registry'))")
            row = conn.execute(sql.SQL("SELECT spec, table_name FROM {} WHERE name = %s FOR UPDATE").format(
                registry), (old,)).fetchone()
            if row is None:
                raise CollectionNotFound(f"collection {old!r} does not exist in schema {self.schema!r}")
            spec, old_table = CollectionSpec.from_json(row[0]), row[1]
            target = self._registered_table(conn, new, lock=True)
            if _is_attached(old_table) or (target is not None and _is_attached(target)):
                raise InvalidInput(
                    f"cannot replace collection {new!r} with {old!r}: one of them is an attached table, and "
                    f"semkit never rewrites or drops a table it does not own (re-embedding an attached "
                    f"table is not supported: write the new vectors with SQL, or copy it into a semkit "
                    f"collection first). Collection {old!r} is left as it was; drop it with db.drop({old!r})"
                )
            if target is not None:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._qualified(target)))
                conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(registry), (new,))
            new_table = table_name(new)
            if conn.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{new_table}"',)).fetchone()[0]:  # type: ignore[index]
                raise StoreError(
                    f"table {self.schema}.{new_table} exists but is not a registered semkit collection; "
                    "drop or rename that table first"
                )
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                self._qualified(old_table), sql.Identifier(new_table)))
            for index in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                (self.schema, new_table),
            ).fetchall():
                if index[0].startswith(old_table + "_"):
                    conn.execute(sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
                        sql.Identifier(self.schema), sql.Identifier(index[0]),
                        sql.Identifier(new_table + index[0][len(old_table):])))
            renamed = replace(spec, name=new)
            conn.execute(sql.SQL("UPDATE {} SET name = %s, table_name = %s, spec = %s WHERE name = %s").format(
                registry), (new, new_table, json.dumps(renamed.to_json()), old))
        self._forget(old)
        self._forget(new)

    # --- writes -----------------------------------------------------------------------

    def upsert(self, name: str, ids: Sequence[str], vectors: Matrix, texts: Sequence[str | None] | None = None,
               metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).upsert(ids, vectors, texts, metadata)
        # Like every semkit store, cosine collections keep unit vectors: what get() returns and
        # what a user's own `<#>`/`<->` SQL sees are the directions that were compared.
        prepared = base.prepare_rows(info.spec, ids, vectors, texts, metadata, check_string=refuse_nul)
        if prepared.ids:
            self._write(name, info, list(zip(prepared.ids, prepared.texts, prepared.metadata, prepared.vectors,
                                             strict=True)))

    def _write(self, name: str, info: _Info, rows: list[tuple[str, str | None, str, np.ndarray]]) -> None:
        target = self._qualified(info.table)
        cast = sql.SQL("::halfvec({})").format(sql.Literal(info.spec.dimensions)) \
            if info.vector_type == "halfvec" else sql.SQL("")
        insert = sql.SQL(
            "INSERT INTO {target} (id, content, metadata, embedding) "
            "SELECT id, content, metadata::jsonb, embedding{cast} FROM semkit_stage "
            "ON CONFLICT (id) DO UPDATE SET content = EXCLUDED.content, "
            "metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding"
        ).format(target=target, cast=cast)
        hnsw = sql.Identifier(self.schema, index_names(info.table)["hnsw"])
        with self._session(f"writing to collection {name!r}", name) as conn:
            rebuild = self._should_rebuild(conn, info, len(rows))
            bits = info.spec.dtype == "binary" and info.indexable and pg_quantized.bit_index_due(conn, info, len(rows))
            with conn.transaction():
                if bits:  # first statement, like `rebuild`'s DROP below and for the same reason
                    pg_quantized.drop_bit_index(conn, info)
                if rebuild:
                    # First statement of the transaction, so the table lock is taken before any
                    # weaker one: two concurrent bulk loads queue up instead of deadlocking.
                    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(hnsw))
                conn.execute(
                    "CREATE TEMP TABLE semkit_stage (id text, content text, metadata text, embedding vector) "
                    "ON COMMIT DROP"
                )
                with conn.cursor() as cur:
                    with cur.copy("COPY semkit_stage FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(["text", "text", "text", "vector"])
                        for row in rows:
                            copy.write_row(row)
                    cur.execute(insert)
                if bits:
                    pg_quantized.create_bit_index(self, conn, info)
                if rebuild:
                    if self.maintenance_work_mem:
                        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)",
                                     (self.maintenance_work_mem,))
                    conn.execute(self._hnsw_ddl(info))

    def _should_rebuild(self, conn: psycopg.Connection[Any], info: _Info, batch: int) -> bool:
        if not (self.bulk_rebuild and info.indexable and batch >= _REBUILD_MIN_ROWS) or info.spec.dtype == "binary":
            return False
        # Counting stops at the ratio, so this costs at most a few times the batch size.
        limit = batch * _REBUILD_RATIO + 1
        query = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) s").format(
            self._qualified(info.table))
        existing = conn.execute(query, (limit,)).fetchone()[0]  # type: ignore[index]
        return bool(existing < limit)

    def update_metadata(self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> int:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).update_metadata(ids, metadata)
        ids, texts = base.prepare_metadata_update(ids, metadata, check_string=refuse_nul)
        if not ids:
            return 0
        query = sql.SQL(
            "UPDATE {} AS t SET metadata = u.m FROM unnest(%s::text[], %s::jsonb[]) AS u(id, m) "
            "WHERE t.id = u.id"
        ).format(self._qualified(info.table))
        with self._session(f"updating metadata in {name!r}", name) as conn:
            return conn.execute(query, (ids, texts)).rowcount

    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).delete(ids, where)
        base.check_delete(ids, where)
        clause, params = compile_filter(where)
        if ids is not None:
            ids = list(ids)
            if not ids:
                return 0
            clause = f"id = ANY(%s) AND {clause}"
            params = [ids, *params]
        query = sql.SQL("DELETE FROM {} WHERE " + clause).format(self._qualified(info.table))
        with self._session(f"deleting from {name!r}", name) as conn:
            return conn.execute(query, params).rowcount

    # --- reads ------------------------------------------------------------------------

    def _vector_column(self, info: _Info) -> str:
        # halfvec values come back as float32 through an explicit cast: one loader for both.
        return "embedding::vector" if info.vector_type == "halfvec" else "embedding"

    def get(self, name: str, ids: Sequence[str], include_vectors: bool = False) -> list[Record]:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).get(ids, include_vectors)
        ids = list(ids)
        if not ids:
            return []
        columns = "id, content, metadata" + (f", {self._vector_column(info)}" if include_vectors else "")
        query = sql.SQL("SELECT " + columns + " FROM {} WHERE id = ANY(%s)").format(
            self._qualified(info.table))
        with self._session(f"reading from {name!r}", name) as conn:
            found = {row[0]: record_from_row(row, include_vectors) for row in conn.execute(query, (ids,))}
        return [found[i] if j == 0 else copy_record(found[i])
                for i, j in occurrences(ids) if i in found]

    def texts(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).texts(ids)
        ids = list(ids)
        if not ids:
            return {}
        query = sql.SQL("SELECT id, content FROM {} WHERE id = ANY(%s)").format(self._qualified(info.table))
        with self._session(f"reading texts from {name!r}", name) as conn:
            return {row[0]: row[1] for row in conn.execute(query, (ids,))}

    def count(self, name: str, where: Node | None = None) -> int:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).count(where)
        clause, params = compile_filter(where)
        query = sql.SQL("SELECT count(*) FROM {} WHERE " + clause).format(self._qualified(info.table))
        with self._session(f"counting {name!r}", name) as conn:
            return int(conn.execute(query, params).fetchone()[0])  # type: ignore[index]

    def scan(
        self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
        where: Node | None = None,
    ) -> Iterator[list[Record]]:
        info = self._info(name)
        if info.attached is not None:
            yield from self._attached(info).scan(batch_size, include_vectors, where)
            return
        base.check_batch_size(batch_size)
        clause, params = compile_filter(where)
        columns = "id, content, metadata" + (f", {self._vector_column(info)}" if include_vectors else "")
        query = sql.SQL(
            "SELECT " + columns + " FROM {} WHERE id > %s AND " + clause + " ORDER BY id LIMIT %s"
        ).format(self._qualified(info.table))
        yield from keyset_scan(
            lambda: self._session(f"scanning {name!r}", name),
            lambda conn, last: conn.execute(query, [last or "", *params, batch_size]).fetchall(),
            batch_size, include_vectors,
        )

    def query(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None,
    ) -> list[Neighbors]:
        info, queries, k = self._check_query(name, vectors, k, ef)
        if info.attached is not None:
            return self._attached(info).query(queries, k, where, exact, ef)
        knn = pg_quantized.knn(self, info, where, k, ef)
        return self._search(f"querying {name!r}", name,  # type: ignore[no-any-return]
                            lambda conn: knn.answer(conn, queries, exact))

    def query_records(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None, include_vectors: bool = False,
    ) -> list[ScoredRecords]:
        """``query`` with the hits' records, read by the k-NN statement itself (one round trip
        per query, no second fetch)."""
        info, queries, k = self._check_query(name, vectors, k, ef)
        if info.attached is not None:
            return self._attached(info).query_records(queries, k, where, exact, ef, include_vectors)
        knn = pg_quantized.knn(self, info, where, k, ef).with_records(include_vectors)
        return self._search(f"querying {name!r}", name,  # type: ignore[no-any-return]
                            lambda conn: knn.answer_records(conn, queries, exact))

    def explain(
        self, name: str, vector: Matrix, k: int = 10, where: Node | None = None,
        exact: bool = False, ef: int | None = None, analyze: bool = False,
    ) -> str:
        """PostgreSQL's plan for ``query(name, vector, k, where, exact, ef)`` (first query row),
        under the same settings: shows whether the HNSW index is used."""
        info, queries, k = self._check_query(name, vector, k, ef)
        if info.attached is not None:
            return self._attached(info).explain(queries, k, where, exact, ef, analyze)
        knn = pg_quantized.knn(self, info, where, k, ef)
        with self._session(f"explaining a query on {name!r}", name) as conn:
            plan = knn.plan(conn, queries, exact, analyze)
        return plan

    def _check_query(self, name: str, vectors: Matrix, k: int, ef: int | None) -> tuple[_Info, Matrix, int]:
        info = self._info(name)
        queries = as_matrix(vectors, info.spec.dimensions)
        k = base.check_k(k)
        if ef is not None and not 1 <= ef <= MAX_EF_SEARCH:
            raise InvalidInput(f"ef must be between 1 and {MAX_EF_SEARCH}, got {ef}")
        return info, queries, k

    def keyword_query(self, name: str, text: str, k: int, where: Node | None = None) -> Neighbors:
        info = self._info(name)
        if info.attached is not None:
            return self._attached(info).keyword_query(text, k, where)
        tsquery = keyword_tsquery(text)
        base.check_k(k)
        if tsquery is None:
            return Neighbors([], np.zeros(0, dtype=np.float32))
        clause, params = compile_filter(where)
        # ts_rank (frequency-based, normalised by log length) rewards documents matching more
        # distinct words; ts_rank_cd's cover density would score one word twice like two words.
        query = sql.SQL(
            "SELECT id, ts_rank(fts, q, 1) AS score FROM {}, to_tsquery({}::regconfig, %s) q "
            "WHERE fts @@ q AND " + clause + " ORDER BY score DESC, id LIMIT %s"
        ).format(self._qualified(info.table), sql.Literal(info.fts_config))
        rows = self._search(f"keyword search in {name!r}", name,
                            lambda conn: conn.execute(query, [tsquery, *params, int(k)]).fetchall())
        return Neighbors([r[0] for r in rows], np.asarray([r[1] for r in rows], dtype=np.float32))


class _Session:
    """Check a connection out of the pool; translate psycopg errors on the way out.

    A plain class rather than a generator context manager: it sits on every query's path.
    """

    __slots__ = ("action", "collection", "conn", "read", "store")

    def __init__(self, store: PgVectorStore, action: str, collection: str | None = None, read: bool = False) -> None:
        self.store, self.action, self.collection, self.read = store, action, collection, read

    def __enter__(self) -> psycopg.Connection[Any]:
        store = self.store
        if store._closed:
            raise StoreError("this PgVectorStore is closed; open a new one")
        try:
            self.conn = store._pool.getconn()
        except PoolTimeout as exc:
            raise store._pool_timeout(exc) from None
        return self.conn

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        store = self.store
        if exc is None and store._replicas is not None and not self.read:
            try:
                store._replicas.note_write(self.conn)
            except psycopg.Error as lost:
                exc = lost
        # putconn rolls back a connection left in a transaction and drops a broken one.
        store._pool.putconn(self.conn)
        if isinstance(exc, psycopg.Error):
            if pg_replicas.connection_lost(exc):
                # The server restarted or the network dropped: the pool's other idle connections
                # are likely dead too; replace them now rather than fail one call each.
                with contextlib.suppress(Exception):
                    store._pool.check()
            raise store._translate(exc, self.action, self.collection) from None
        return False


class _Translating:
    """Translate psycopg errors (for code holding its own connection)."""

    def __init__(self, store: PgVectorStore, action: str) -> None:
        self.store, self.action = store, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if isinstance(exc, psycopg.Error):
            raise self.store._translate(exc, self.action, None) from None
        return False


# --- helpers ------------------------------------------------------------------------------


def _conninfo(dsn: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error:
        return {}


def _password(dsn: str) -> str | None:
    password = _conninfo(dsn).get("password")
    return str(password) if password else None


_URL_PASSWORD = re.compile(r"(?P<head>^[A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*:)(?P<pw>[^@/?#]*)(?P<at>@)")
_KV_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (URL userinfo, ``password=`` anywhere)."""
    masked = _URL_PASSWORD.sub(lambda m: m["head"] + "***" + m["at"], dsn)
    masked = _KV_PASSWORD.sub(lambda m: m["key"] + "***", masked)
    secret = _password(dsn)
    if secret and len(secret) >= 3:  # shorter strings would blank out unrelated characters
        masked = masked.replace(secret, "***")
    return masked


def _extension_version(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return None if row is None else str(row[0])


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3]) or (0,)


def _is_attached(table_name: str) -> bool:
    """Whether a registry ``table_name`` stands for an attached table (never a real table)."""
    return table_name.startswith("attached:")


def _check_spec(spec: CollectionSpec) -> None:
    base.check_spec(spec)
    if "\x00" in spec.name or len(spec.name) > 200:
        raise InvalidInput(f"collection name must be a non-empty string of at most 200 characters, "
                           f"got {spec.name!r}")
    if spec.dimensions > MAX_DIMS:
        raise InvalidInput(f"pgvector stores 1 to {MAX_DIMS} dimensions, got {spec.dimensions!r}")
    pg_quantized.check_dtype(spec.dtype)


__all__ = ["MAX_EF_SEARCH", "PgVectorStore", "mask_dsn", "quote_ident"]
