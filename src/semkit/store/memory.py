"""``MemoryStore``: the in-process reference ``VectorStore``.

Obviously correct rather than fast: a dict of collections, exact NumPy search over every
record, filters evaluated with ``filters.matches`` (the reference semantics) and the plain
BM25 of ``store/keyword.py`` for keyword search. Every other backend must answer the contract
suite as this one does. Nothing is persisted; each ``MemoryStore()`` is independent.
Thread-safe: one lock guards all state, and records handed out are copies.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import CollectionExists, CollectionNotFound
from ..types import Matrix
from ..vectors import as_matrix, scores
from . import base
from .base import CollectionSpec, Neighbors, Record
from .filters import Node, matches
from .keyword import bm25_top_k


@dataclass
class _Table:
    spec: CollectionSpec
    rows: dict[str, Record] = field(default_factory=dict)
    # Stacked vectors for search, rebuilt lazily after a write: (ids, matrix) or None.
    _stacked: tuple[list[str], Matrix] | None = None

    def stacked(self) -> tuple[list[str], Matrix]:
        if self._stacked is None:
            ids = list(self.rows)
            matrix = (
                np.stack([self.rows[i].vector for i in ids]).astype(np.float32)  # type: ignore[misc]
                if ids else np.zeros((0, self.spec.dimensions), dtype=np.float32)
            )
            self._stacked = (ids, matrix)
        return self._stacked

    def touched(self) -> None:
        self._stacked = None


class MemoryStore:
    """Reference ``VectorStore`` kept in process memory."""

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self._lock = threading.RLock()

    # --- collections --------------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> None:
        base.check_spec(spec)
        with self._lock:
            if spec.name in self._tables:
                raise CollectionExists(
                    f"collection {spec.name!r} already exists; open it, or drop it first to recreate it"
                )
            self._tables[spec.name] = _Table(spec)

    def get_collection(self, name: str) -> CollectionSpec | None:
        with self._lock:
            table = self._tables.get(name)
            return table.spec if table else None

    def list_collections(self) -> list[CollectionSpec]:
        with self._lock:
            return [t.spec for _, t in sorted(self._tables.items())]

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self._table(name)
            del self._tables[name]

    def rename_collection(self, old: str, new: str) -> None:
        with self._lock:
            table = self._table(old)
            del self._tables[old]
            table.spec = replace(table.spec, name=new)
            self._tables[new] = table  # replaces any collection called `new` in one step

    # --- writes -------------------------------------------------------------------------

    def upsert(self, name: str, ids: Sequence[str], vectors: Matrix, texts: Sequence[str | None] | None = None,
               metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        with self._lock:
            table = self._table(name)
            # Validated and copied before the table is touched: all rows land or none.
            prepared = base.prepare_rows(table.spec, ids, vectors, texts, metadata)
            rows = [
                Record(id=i, vector=prepared.vectors[n].copy(), text=prepared.texts[n], metadata=meta)
                for n, (i, meta) in enumerate(zip(prepared.ids, prepared.metadata_dicts(), strict=True))
            ]
            for row in rows:
                table.rows.pop(row.id, None)  # a replaced record moves to the end, like a fresh insert
                table.rows[row.id] = row
            table.touched()

    def update_metadata(
        self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]
    ) -> int:
        ids, texts = base.prepare_metadata_update(ids, metadata)
        fresh = [json.loads(text) for text in texts]
        with self._lock:
            table = self._table(name)
            found = 0
            for i, meta in zip(ids, fresh, strict=True):
                row = table.rows.get(i)
                if row is not None:
                    row.metadata = meta
                    found += 1
            return found

    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        base.check_delete(ids, where)
        with self._lock:
            table = self._table(name)
            candidates = list(table.rows) if ids is None else [i for i in dict.fromkeys(ids) if i in table.rows]
            doomed = [i for i in candidates if matches(where, table.rows[i].metadata)]
            for i in doomed:
                del table.rows[i]
            if doomed:
                table.touched()
            return len(doomed)

    # --- reads --------------------------------------------------------------------------

    def get(self, name: str, ids: Sequence[str], include_vectors: bool = False) -> list[Record]:
        with self._lock:
            table = self._table(name)
            return [_copy(table.rows[i], include_vectors) for i in ids if i in table.rows]

    def texts(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        with self._lock:
            table = self._table(name)
            return {i: table.rows[i].text for i in ids if i in table.rows}

    def count(self, name: str, where: Node | None = None) -> int:
        with self._lock:
            table = self._table(name)
            if where is None:
                return len(table.rows)
            return sum(1 for r in table.rows.values() if matches(where, r.metadata))

    def scan(self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
             where: Node | None = None) -> Iterator[list[Record]]:
        base.check_batch_size(batch_size)
        with self._lock:
            ids = list(self._table(name).rows)
        # Ids are snapshotted up front; records deleted while the caller iterates are skipped.
        for start in range(0, len(ids), batch_size):
            with self._lock:
                table = self._table(name)
                batch = [
                    _copy(table.rows[i], include_vectors)
                    for i in ids[start:start + batch_size]
                    if i in table.rows and matches(where, table.rows[i].metadata)
                ]
            if batch:
                yield batch

    def query(self, name: str, vectors: Matrix, k: int, where: Node | None = None, exact: bool = False,
              ef: int | None = None) -> list[Neighbors]:
        # Always exact: `exact` and `ef` tune approximate backends and change nothing here.
        base.check_k(k)
        with self._lock:
            table = self._table(name)
            queries = as_matrix(vectors, table.spec.dimensions)
            ids, matrix = table.stacked()
            if where is not None:
                keep = [n for n, i in enumerate(ids) if matches(where, table.rows[i].metadata)]
                ids = [ids[n] for n in keep]
                matrix = matrix[keep]
            metric = table.spec.metric
        if not ids:
            return [Neighbors([], np.zeros(0, dtype=np.float32)) for _ in range(len(queries))]
        all_scores = scores(queries, matrix, metric)
        out = []
        for row in all_scores:
            # Stable sort on the negated score: ties keep insertion order, so answers are repeatable.
            order = np.argsort(-row, kind="stable")[:k]
            out.append(Neighbors([ids[n] for n in order], row[order].astype(np.float32)))
        return out

    def keyword_query(self, name: str, text: str, k: int, where: Node | None = None) -> Neighbors:
        """Okapi BM25 over the texts of the matching records (``store/keyword.py``)."""
        base.check_k(k)
        with self._lock:
            table = self._table(name)
            docs = [(r.id, r.text) for r in table.rows.values() if r.text is not None and matches(where, r.metadata)]
        return bm25_top_k(text, docs, k)

    def close(self) -> None:
        """Nothing to release; the data lives as long as this object."""

    # --- helpers ------------------------------------------------------------------------

    def _table(self, name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            raise CollectionNotFound(
                f"no collection named {name!r}; existing: {sorted(self._tables) or 'none'}"
            )
        return table

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self._tables)} collections>"


def _copy(row: Record, include_vector: bool) -> Record:
    return Record(
        id=row.id,
        vector=row.vector.copy() if include_vector and row.vector is not None else None,
        text=row.text,
        metadata=copy.deepcopy(row.metadata),
    )
