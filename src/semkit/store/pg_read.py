"""Reading a pgvector table: k-nearest-neighbour queries (through HNSW, or exact) and result
rows turned into ``Record``/``Neighbors``.

Shared by semkit's own tables (``pgvector``) and the user's tables served in place
(``pg_attached``): a ``Knn`` reads what it queries from its ``info`` — ``qualified`` (the FROM
text), ``spec.metric``, ``vector_type``, ``indexable`` — and its store's settings
(``ef_search``, ``exact_threshold``...). Its ``sql`` is what a subclass changes for other
column names.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Neighbors, Record
from .filters import Node
from .pg_sql import compile_filter

if TYPE_CHECKING:
    import psycopg

    from .pgvector import PgVectorStore, _Info

MAX_EF_SEARCH = 1000
OPERATORS = {"cosine": "<=>", "dot": "<#>", "l2": "<->"}
"""pgvector's distance operator for each metric."""


class Knn:
    """One k-NN request: its SQL, and how it runs (HNSW or exact)."""

    id_column = "id"
    id_cast = ""
    """What turns the id into the collection's string id (``::text`` for other id types)."""
    vector_column = "embedding"
    record_vectors = False
    record_columns = ""
    """Extra columns each answer row carries after ``(id, distance)``: empty for ids and scores
    only, ``content, metadata[, vector]`` once ``with_records`` is called."""

    def __init__(self, store: PgVectorStore, info: _Info, where: Node | None, k: int, ef: int | None) -> None:
        self.store, self.info, self.where, self.k, self.ef = store, info, where, k, ef
        self.clause, self.params = compile_filter(where)

    def with_records(self, include_vectors: bool) -> Knn:
        """Answer with each hit's text and metadata (and vector) in the same statement: one
        round trip per query instead of the k-NN query followed by a fetch of the hits."""
        vector = f"{self.vector_column}::vector" if self.info.vector_type == "halfvec" else self.vector_column
        self.record_columns = ", content, metadata" + (f", {vector} AS embedding" if include_vectors else "")
        self.record_vectors = include_vectors
        return self

    def use_exact(self, conn: psycopg.Connection[Any], exact: bool) -> bool:
        if exact or not self.info.indexable or self.k > MAX_EF_SEARCH:
            return True
        if self.where is None:
            return False
        # Count matches only up to the threshold: cheap when the filter is broad, and when it
        # is narrow the exact scan would read those same rows anyway.
        limit = self.store.exact_threshold
        query = f"SELECT count(*) FROM (SELECT 1 FROM {self.info.qualified} WHERE {self.clause} LIMIT %s) s"
        return int(conn.execute(query, [*self.params, limit + 1]).fetchone()[0]) <= limit  # type: ignore[index]

    def sql(self, exact: bool, explain: str | None) -> str:
        key = (self.info.qualified, self.info.spec.metric, self.info.vector_type, self.clause, self.k,
               exact, explain, self.record_columns)
        cache = self.store._sql_cache
        text = cache.get(key)
        if text is None:
            operator = OPERATORS[self.info.spec.metric]
            qcast = "::halfvec" if self.info.vector_type == "halfvec" else ""
            # The exact path breaks distance ties by id so answers are repeatable; the HNSW
            # path must order by distance alone or the index cannot serve the ORDER BY.
            order = f"d, {self.id_column}" if exact else "d"
            # k is written into the SQL, not bound: psycopg prepares a statement after a few
            # runs, and a generic plan with "LIMIT $n" is costed without k and skips the index.
            text = (f"SELECT {self.id_column}{self.id_cast}, {self.vector_column} {operator} %s{qcast} AS d"
                    f"{self.record_columns} FROM {self.info.qualified} WHERE {self.clause} "
                    f"ORDER BY {order} LIMIT {int(self.k)}")
            if explain is not None:
                text = f"EXPLAIN {explain} {text}"
            if len(cache) > 512:
                cache.clear()
            cache[key] = text
        return text

    def answer(self, conn: psycopg.Connection[Any], queries: np.ndarray, exact: bool) -> list[Neighbors]:
        """The top-k of each query row: HNSW or exact as ``use_exact`` decides."""
        metric = self.info.spec.metric
        return [neighbors(rows, metric) for rows in self.answer_rows(conn, queries, exact)]

    def answer_records(self, conn: psycopg.Connection[Any], queries: np.ndarray,
                       exact: bool) -> list[list[tuple[Record, float]]]:
        """``answer`` with each hit's record (call ``with_records`` first)."""
        metric, vectors = self.info.spec.metric, self.record_vectors
        return [scored_records(rows, metric, vectors) for rows in self.answer_rows(conn, queries, exact)]

    def answer_rows(self, conn: psycopg.Connection[Any], queries: np.ndarray,
                    exact: bool) -> list[list[tuple[Any, ...]]]:
        """Each query row's answer rows ``(id, distance, ...)``, nearest first."""
        use_exact = self.use_exact(conn, exact)
        results = self.run(conn, queries, exact=use_exact)
        if not use_exact and self.where is not None:
            # An iterative scan can stop early (hnsw.max_scan_tuples) although the filter
            # matches more than k rows: a short answer is redone exactly.
            short = [i for i, rows in enumerate(results) if len(rows) < self.k]
            if short:
                redo = self.run(conn, queries[short], exact=True)
                for i, rows in zip(short, redo, strict=True):
                    results[i] = rows
        if not use_exact:
            results = [in_order(rows) for rows in results]
        return results

    def plan(self, conn: psycopg.Connection[Any], queries: np.ndarray, exact: bool, analyze: bool) -> str:
        """``EXPLAIN`` of the first query row, as ``answer`` would run it."""
        use_exact = self.use_exact(conn, exact)
        rows = self.run(conn, queries[:1], exact=use_exact, explain="ANALYZE" if analyze else "")[0]
        return "\n".join(str(r[0]) for r in rows)

    def run(self, conn: psycopg.Connection[Any], queries: np.ndarray, *, exact: bool,
            explain: str | None = None) -> list[list[tuple[Any, ...]]]:
        query = self.sql(exact, explain)
        params = self.params
        if not exact:
            self.use_breadth(conn)
            if len(queries) == 1:
                return [conn.execute(query, [queries[0], *params]).fetchall()]
        # Pipeline mode sends every statement before reading any answer: one network round
        # trip for all the queries instead of one each. SET LOCAL lasts until the transaction
        # ends, so the connection goes back clean.
        with conn.pipeline(), conn.transaction() if exact else contextlib.nullcontext():
            if exact:
                # Turns off the HNSW index scan; bitmap scans (the GIN index on metadata) still run.
                conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
            cursors = [conn.execute(query, [q, *params]) for q in queries]
            return [cur.fetchall() for cur in cursors]

    def use_breadth(self, conn: psycopg.Connection[Any]) -> None:
        """Give the connection this request's ``hnsw.ef_search``, only if it has another one.

        A session setting remembered per pooled connection, not SET LOCAL in a transaction per
        query: the transaction and its set_config took a single query from 0.8 ms to 1.4 ms in
        benchmarks/search.py --pg, while callers mostly repeat one ``ef``.
        Connections are autocommit, so a session setting cannot be rolled back behind our back;
        a broken connection is replaced by the pool and starts again from the default.
        """
        default = self.store.ef_search or self.store.server_ef_search
        breadth = min(max(self.ef or default, self.k), MAX_EF_SEARCH)
        known = self.store._session_ef
        if known.get(conn, default) != breadth:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (str(breadth),))
            known[conn] = breadth


def keyset_scan(
    session: Callable[[], AbstractContextManager[psycopg.Connection[Any]]],
    fetch: Callable[[psycopg.Connection[Any], Any], list[tuple[Any, ...]]],
    batch_size: int, include_vectors: bool,
) -> Iterator[list[Record]]:
    """Every row in batches, by keyset pagination on the id: ``fetch(conn, last)`` reads the
    batch after id ``last`` (``None``: the first), ordered by id, at most ``batch_size`` rows.

    No cursor or transaction stays open between batches, so a slow consumer holds no
    connection and no snapshot.
    """
    last = None
    while True:
        with session() as conn:
            rows = fetch(conn, last)
        if not rows:
            return
        yield [record_from_row(row, include_vectors) for row in rows]
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


def record_from_row(row: tuple[Any, ...], include_vectors: bool) -> Record:
    vector = None
    if include_vectors:
        vector = np.asarray(row[3].to_numpy(), dtype=np.float32).copy()
    return Record(id=row[0], vector=vector, text=row[1], metadata=dict(row[2] or {}))


def copy_record(record: Record) -> Record:
    return Record(record.id, None if record.vector is None else record.vector.copy(), record.text,
                  json.loads(json.dumps(record.metadata)))


def occurrences(ids: list[str]) -> Iterator[tuple[str, int]]:
    seen: dict[str, int] = {}
    for id_ in ids:
        yield id_, seen.get(id_, 0)
        seen[id_] = seen.get(id_, 0) + 1


def in_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows by distance: relaxed_order iterative scans may return them slightly out of order."""
    # Plain Python: for k rows, NumPy call overhead would cost more than the work.
    if any(rows[i][1] > rows[i + 1][1] for i in range(len(rows) - 1)):
        return sorted(rows, key=lambda r: r[1])
    return rows


def neighbors(rows: list[tuple[Any, ...]], metric: str) -> Neighbors:
    scores = [1.0 - r[1] for r in rows] if metric == "cosine" else [-r[1] for r in rows]
    return Neighbors([r[0] for r in rows], np.array(scores, dtype=np.float32))


def scored_records(rows: list[tuple[Any, ...]], metric: str, include_vectors: bool) -> list[tuple[Record, float]]:
    """Rows ``(id, distance, content, metadata[, vector])`` as ``(record, score)``, best first.

    Scores go through float32 like ``neighbors``' so both paths give the same numbers.
    """
    distances = np.array([r[1] for r in rows], dtype=np.float64)
    raw = 1.0 - distances if metric == "cosine" else -distances
    scores = raw.astype(np.float32).tolist()
    if include_vectors:
        return [(Record(r[0], np.asarray(r[4].to_numpy(), dtype=np.float32).copy(), r[2], dict(r[3] or {})), s)
                for r, s in zip(rows, scores, strict=True)]
    return [(Record(r[0], None, r[2], dict(r[3] or {})), s) for r, s in zip(rows, scores, strict=True)]


__all__ = ["MAX_EF_SEARCH", "OPERATORS", "Knn", "copy_record", "in_order", "keyset_scan", "neighbors",
           "occurrences", "record_from_row", "scored_records"]
