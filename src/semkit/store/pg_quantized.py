"""Compressed collections on PostgreSQL + pgvector: which ``dtype`` maps to what pgvector really
stores, the index for each, and the k-NN query of a binary collection.

pgvector's types are ``vector`` (float32), ``halfvec`` (float16), ``bit`` and ``sparsevec``;
it has no int8 vector, so ``dtype="int8"`` is refused rather than stored as something else:

==========  =============================  ===============================================
dtype       column                         index
==========  =============================  ===============================================
float32     ``vector(n)``                  HNSW ``embedding vector_<metric>_ops``
float16     ``halfvec(n)``                 HNSW ``embedding halfvec_<metric>_ops``
binary      ``vector(n)`` (``halfvec``     IVFFlat ``(binary_quantize(embedding)::bit(n))
            above 2,000 dims)              bit_hamming_ops``: one bit per dimension
int8        refused (``ConfigError``)
==========  =============================  ===============================================

A binary collection keeps its full vectors in the table and indexes only their sign bits
(``binary_quantize``: 1 where the value is positive). A query walks the bit index by Hamming
distance for ``RESCORE_FACTOR x k`` candidates, then ranks those by the metric's exact distance
on the full vectors, the rescoring pgvector's documentation describes, in one statement::

    SELECT c.id, c.d FROM (SELECT $q AS v) q, LATERAL (
        SELECT id, embedding <=> q.v AS d FROM t WHERE <filter>
        ORDER BY binary_quantize(embedding)::bit(n) <~> binary_quantize(q.v)::bit(n) LIMIT 10k) c
    ORDER BY c.d, c.id LIMIT k

The bit index is IVFFlat, not HNSW: an HNSW graph's links (~300 bytes a row in pgvector's
pages) would be 6x the 48 bytes of bits, while IVFFlat keeps one ~64-byte tuple per row, 1/30
of a float32 HNSW index at 384 dims. Its lists are trained from the rows present when it is
built, so it is never built on an empty table (pgvector warns of low recall then):

- below ``IVF_MIN_ROWS`` rows there is no bit index; the same query scans every row's bits,
  which is exact over the bits and fast at that size;
- the write that brings the table to ``IVF_MIN_ROWS`` builds it with
  ``ann_index.binary_lists(rows)`` lists (~sqrt(rows), as the embedded store's IVF);
- a write that finds the table grown so that twice the lists are due (~4x the rows) rebuilds it,
  in the write's transaction; a table with an older HNSW bit index (earlier versions) keeps
  using it until its next write builds the IVFFlat one and drops it;
- each query sets ``ivfflat.probes`` to a third of the lists (``ann_index.binary_probes``).

The table keeps full precision, and scores are exact. Measured in
``benchmarks/compression.py --pg``.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..types import StorageDtype
from .ann_index import RESCORE_FACTOR as _EMBEDDED_FACTOR
from .ann_index import binary_lists, binary_probes
from .pg_read import MAX_EF_SEARCH, OPERATORS, Knn
from .pg_sql import index_names, quote_ident

if TYPE_CHECKING:
    import psycopg

    from .base import CollectionSpec
    from .filters import Node
    from .pgvector import PgVectorStore, _Info

PG_DTYPES: tuple[StorageDtype, ...] = ("float32", "float16", "binary")
"""The dtypes a pgvector collection really stores (see the table above)."""
RESCORE_FACTOR = _EMBEDDED_FACTOR["binary"]
"""Bit-index candidates per wanted hit; the same factor as the embedded store's binary index,
measured to keep recall@10 >= 0.95 on MiniLM vectors (``benchmarks/compression.py``)."""
IVF_MIN_ROWS = 1000
"""Rows a binary table needs before its bit index is built (25 lists of ~40 rows)."""
LISTS_TTL = 10.0
"""Seconds a query trusts the lists it read from the catalog (another process may rebuild)."""
_lists: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, float]]] = weakref.WeakKeyDictionary()
"""Per store, per index: ``(lists, when read)``; 0 lists: no IVFFlat index (none, or old HNSW)."""
_session_probes: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
"""``ivfflat.probes`` each pooled connection was given."""


def check_dtype(dtype: str) -> None:
    """Refuse a dtype pgvector cannot really store, saying what to use instead."""
    if dtype in PG_DTYPES:
        return
    if dtype == "int8":
        raise ConfigError(
            "pgvector has no int8 vector type (it stores vector = float32, halfvec = float16, bit and "
            "sparsevec), so a PostgreSQL collection cannot be int8. Use dtype='float16' (halfvec: half "
            "the size), dtype='binary' (a bit index, rescored with the full vectors), or the embedded "
            "store, whose int8 index is real"
        )
    raise ConfigError(f"the PostgreSQL store keeps {', '.join(PG_DTYPES)} collections, not {dtype!r}")


def index_key(spec: CollectionSpec, vector_type: str, opclass: str) -> str:
    """What the collection's vector index is built on: ``<column or expression> <opclass>``."""
    if spec.dtype == "binary":
        return f"({_bits('embedding', spec.dimensions)}) bit_hamming_ops"
    return f"embedding {vector_type}_{opclass}"


def knn(store: PgVectorStore, info: _Info, where: Node | None, k: int, ef: int | None) -> Knn:
    """The k-NN request for this collection's dtype."""
    if info.spec.dtype == "binary":
        return BinaryKnn(store, info, where, k, ef)
    return Knn(store, info, where, k, ef)


def index_at_create(spec: CollectionSpec) -> bool:
    """Whether ``create_collection`` builds the vector index (not a binary one: no rows yet)."""
    return spec.dtype != "binary"


def binary_index_name(table: str) -> str:
    """The bit IVFFlat index of a binary collection's table (``<table>_embedding_hnsw`` was the
    name of the HNSW bit index earlier versions built; it is dropped when this one is built)."""
    return f"{table}_embedding_ivf"


def _index_state(conn: psycopg.Connection[Any], info: _Info) -> tuple[str | None, int]:
    """``(access method, lists)`` of the collection's bit IVFFlat index; ``(None, 0)`` if none."""
    name = f"{quote_ident(info.schema)}.{quote_ident(binary_index_name(info.table))}"
    row = conn.execute(
        "SELECT am.amname, c.reloptions FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
        "WHERE c.oid = to_regclass(%s)", (name,)).fetchone()
    if row is None:
        return None, 0
    options = dict(o.split("=", 1) for o in row[1] or [])
    return row[0], int(options.get("lists", 0)) if row[0] == "ivfflat" else 0


def bit_index_due(conn: psycopg.Connection[Any], info: _Info, batch: int) -> bool:
    """Whether a write of ``batch`` rows to a binary collection should (re)build its bit IVFFlat
    index: none yet and the table reaches ``IVF_MIN_ROWS``, or ~4x the rows it was trained on
    (twice the lists due), or the table still has an older HNSW bit index. Asked before the
    write's transaction (autocommit: no lock kept), so the write's first statement can take the
    table lock for the rebuild, as ``PgVectorStore``'s bulk rebuild does: taking it after the
    insert could deadlock with another writer."""
    method, lists = _index_state(conn, info)
    if method == "ivfflat":
        # The statistics' live-row estimate (plus this batch): enough to notice 4x growth,
        # where count(*) would read the whole table at every write.
        est = conn.execute("SELECT coalesce(n_live_tup, 0) FROM pg_stat_user_tables WHERE relid = %s::regclass",
                           (info.qualified,)).fetchone()
        if binary_lists((est[0] if est else 0) + batch) < 2 * lists:
            return False
    limit = IVF_MIN_ROWS if method is None else 4 * lists * lists
    rows = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM {info.qualified} LIMIT %s) s",
                        (limit,)).fetchone()[0]  # type: ignore[index]
    if method is None:
        return rows + batch >= IVF_MIN_ROWS
    return binary_lists(rows + batch) >= 2 * lists


def drop_bit_index(conn: psycopg.Connection[Any], info: _Info) -> None:
    """Drop the bit index (and an older HNSW one): the write's first statement."""
    for name in (binary_index_name(info.table), index_names(info.table)["hnsw"]):
        conn.execute(f"DROP INDEX IF EXISTS {quote_ident(info.schema)}.{quote_ident(name)}")


def create_bit_index(store: PgVectorStore, conn: psycopg.Connection[Any], info: _Info) -> None:
    """Build the bit IVFFlat index with ``binary_lists`` of the rows now in the table (after the
    write's insert, in its transaction), if there are enough; otherwise queries scan the bits."""
    rows = conn.execute(f"SELECT count(*) FROM {info.qualified}").fetchone()[0]  # type: ignore[index]
    if rows < IVF_MIN_ROWS:  # upserts replaced rows instead of adding them
        return
    if store.maintenance_work_mem:
        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (store.maintenance_work_mem,))
    lists = binary_lists(rows)
    conn.execute(f"CREATE INDEX {quote_ident(binary_index_name(info.table))} ON {info.qualified} USING ivfflat "
                 f"(({_bits('embedding', info.spec.dimensions)}) bit_hamming_ops) WITH (lists = {int(lists)})")
    _lists.setdefault(store, {})[info.qualified] = (lists, time.monotonic())


def _current_lists(store: PgVectorStore, conn: psycopg.Connection[Any], info: _Info) -> int:
    known = _lists.setdefault(store, {})
    cached = known.get(info.qualified)
    if cached is None or time.monotonic() - cached[1] > LISTS_TTL:
        cached = known[info.qualified] = (_index_state(conn, info)[1], time.monotonic())
    return cached[0]


def _bits(expression: str, dims: int) -> str:
    return f"binary_quantize({expression})::bit({int(dims)})"


class BinaryKnn(Knn):
    """A k-NN request on a binary collection: bit-index candidates, rescored in the same query.

    Exact requests (``exact=True``, small filters) scan the full vectors like any collection.
    """

    def __init__(self, store: PgVectorStore, info: _Info, where: Node | None, k: int, ef: int | None) -> None:
        self.candidates = min(RESCORE_FACTOR * k, MAX_EF_SEARCH)
        # An HNSW scan returns at most ef_search rows: the search must be as broad as the candidates.
        default = store.ef_search or store.server_ef_search
        super().__init__(store, info, where, k, max(ef or default, self.candidates))

    def sql(self, exact: bool, explain: str | None) -> str:
        if exact:
            return super().sql(exact, explain)
        info, column, dims = self.info, self.vector_column, self.info.spec.dimensions
        qcast = "::halfvec" if info.vector_type == "halfvec" else "::vector"
        ident = quote_ident("id")
        # The query vector is bound once (q.v); its bits are a constant of the inner scan, so
        # the bit index serves the inner ORDER BY. k and the candidate count are written into
        # the SQL, like the base class does, so a generic plan still uses the index.
        # With records, the inner scan carries content/metadata(/embedding) out under those names.
        outer = (", c.content, c.metadata" + (", c.embedding" if self.record_vectors else "")
                 if self.record_columns else "")
        text = (
            f"SELECT c.{ident}, c.d{outer} FROM (SELECT %s{qcast} AS v) q, LATERAL ("
            f"SELECT {self.id_column}{self.id_cast} AS {ident}, {column} {OPERATORS[info.spec.metric]} q.v AS d"
            f"{self.record_columns} FROM {info.qualified} WHERE {self.clause} "
            f"ORDER BY {_bits(column, dims)} <~> {_bits('q.v', dims)} LIMIT {int(self.candidates)}) c "
            f"ORDER BY c.d, c.{ident} LIMIT {int(self.k)}"
        )
        return text if explain is None else f"EXPLAIN {explain} {text}"

    def use_breadth(self, conn: psycopg.Connection[Any]) -> None:
        """``hnsw.ef_search`` (an older HNSW bit index) and ``ivfflat.probes`` for the lists."""
        super().use_breadth(conn)
        lists = _current_lists(self.store, conn, self.info)
        probes = binary_probes(lists) if lists else 1
        if _session_probes.get(conn, 1) != probes:
            conn.execute("SELECT set_config('ivfflat.probes', %s, false)", (str(probes),))
            _session_probes[conn] = probes


__all__ = [
    "IVF_MIN_ROWS",
    "PG_DTYPES",
    "RESCORE_FACTOR",
    "BinaryKnn",
    "binary_index_name",
    "bit_index_due",
    "check_dtype",
    "create_bit_index",
    "drop_bit_index",
    "index_at_create",
    "index_key",
    "knn",
]
