"""Compressed collections on PostgreSQL + pgvector: which ``dtype`` maps to what pgvector really
stores, the HNSW index for each, and the k-NN query of a binary collection.

pgvector's types are ``vector`` (float32), ``halfvec`` (float16), ``bit`` and ``sparsevec``;
it has no int8 vector, so ``dtype="int8"`` is refused rather than stored as something else:

==========  =============================  ===============================================
dtype       column                         HNSW index
==========  =============================  ===============================================
float32     ``vector(n)``                  ``embedding vector_<metric>_ops``
float16     ``halfvec(n)``                 ``embedding halfvec_<metric>_ops``
binary      ``vector(n)`` (``halfvec``     ``(binary_quantize(embedding)::bit(n))
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

So the index (what must stay in memory for fast queries) is ~1/6 the size of a float32 HNSW
index at 384 dims (the graph's links are the same size for every type); the table keeps full
precision, and scores are exact. Measured in ``benchmarks/compression.py --pg``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..types import StorageDtype
from .pg_read import MAX_EF_SEARCH, OPERATORS, Knn
from .pg_sql import quote_ident

if TYPE_CHECKING:
    from .base import CollectionSpec
    from .filters import Node
    from .pgvector import PgVectorStore, _Info

PG_DTYPES: tuple[StorageDtype, ...] = ("float32", "float16", "binary")
"""The dtypes a pgvector collection really stores (see the table above)."""
RESCORE_FACTOR = 10
"""Bit-index candidates per wanted hit; the same factor as the embedded store's binary index,
measured to keep recall@10 >= 0.95 on MiniLM vectors (``benchmarks/compression.py``)."""


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
    """What the collection's HNSW index is built on: ``<column or expression> <opclass>``."""
    if spec.dtype == "binary":
        return f"({_bits('embedding', spec.dimensions)}) bit_hamming_ops"
    return f"embedding {vector_type}_{opclass}"


def knn(store: PgVectorStore, info: _Info, where: Node | None, k: int, ef: int | None) -> Knn:
    """The k-NN request for this collection's dtype."""
    if info.spec.dtype == "binary":
        return BinaryKnn(store, info, where, k, ef)
    return Knn(store, info, where, k, ef)


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


__all__ = ["PG_DTYPES", "RESCORE_FACTOR", "BinaryKnn", "check_dtype", "index_key", "knn"]
