"""``MemoryStore``: the in-process reference ``VectorStore``.

Obviously correct rather than fast: a dict of collections, exact NumPy search over every
record, filters evaluated with ``filters.matches`` (the reference semantics) and a plain BM25
for keyword search. Every other backend must answer the contract suite as this one does.
Nothing is persisted; each ``MemoryStore()`` is independent. Thread-safe: one lock guards all
state, and records handed out are copies.
"""

from __future__ import annotations

import copy
import math
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import CollectionNotFound, InvalidInput, StoreError
from ..types import Matrix
from ..vectors import as_matrix, normalize, scores
from .base import CollectionSpec, Neighbors, Record, check_rows, check_spec
from .filters import Node, matches

BM25_K1 = 1.2
BM25_B = 0.75
_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Keyword-search tokens: lower-cased runs of word characters (Unicode-aware)."""
    return _TOKEN.findall(text.lower())


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
        check_spec(spec)
        with self._lock:
            if spec.name in self._tables:
                raise StoreError(
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

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: Matrix,
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        ids = list(ids)
        with self._lock:
            table = self._table(name)
            spec = table.spec
            matrix = as_matrix(vectors, spec.dimensions) if len(ids) or np.size(vectors) else (
                np.zeros((0, spec.dimensions), dtype=np.float32)
            )
            check_rows(ids, matrix, texts, metadata)
            if spec.metric == "cosine":
                matrix = normalize(matrix)
            # Validate and copy everything before touching the table: all rows land or none.
            rows = [
                Record(
                    id=i,
                    vector=matrix[n].copy(),
                    text=texts[n] if texts is not None else None,
                    metadata=copy.deepcopy(dict(metadata[n])) if metadata is not None else {},
                )
                for n, i in enumerate(ids)
            ]
            for row in rows:
                table.rows.pop(row.id, None)  # a replaced record moves to the end, like a fresh insert
                table.rows[row.id] = row
            table.touched()

    def update_metadata(
        self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]
    ) -> int:
        ids = list(ids)
        if len(metadata) != len(ids):
            raise InvalidInput(f"{len(ids)} ids but {len(metadata)} metadata dicts; pass one per id")
        with self._lock:
            table = self._table(name)
            found = 0
            for i, meta in zip(ids, metadata, strict=True):
                row = table.rows.get(i)
                if row is not None:
                    row.metadata = copy.deepcopy(dict(meta))
                    found += 1
            return found

    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        if ids is None and where is None:
            raise InvalidInput(
                "delete needs ids=, where= or both; to remove every record drop the collection"
            )
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

    def scan(
        self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
        where: Node | None = None,
    ) -> Iterator[list[Record]]:
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size}")
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

    def query(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None,
    ) -> list[Neighbors]:
        # Always exact: `exact` and `ef` tune approximate backends and change nothing here.
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
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
        """Okapi BM25 (k1=1.2, b=0.75, Lucene's idf) over ``tokenize``d texts; only records
        sharing at least one term with the query are returned."""
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
        terms = set(tokenize(text))
        with self._lock:
            table = self._table(name)
            docs = [
                (r.id, Counter(tokenize(r.text)))
                for r in table.rows.values()
                if r.text is not None and matches(where, r.metadata)
            ]
        if not docs or not terms:
            return Neighbors([], np.zeros(0, dtype=np.float32))
        n_docs = len(docs)
        avg_len = sum(sum(c.values()) for _, c in docs) / n_docs or 1.0
        df = {t: sum(1 for _, c in docs if t in c) for t in terms}
        idf = {t: math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
        ranked: list[tuple[float, int, str]] = []
        for pos, (doc_id, counts) in enumerate(docs):
            length = sum(counts.values())
            score = 0.0
            for t in terms:
                tf = counts.get(t, 0)
                if tf:
                    score += idf[t] * tf * (BM25_K1 + 1) / (
                        tf + BM25_K1 * (1 - BM25_B + BM25_B * length / avg_len)
                    )
            if score > 0:
                ranked.append((-score, pos, doc_id))
        ranked.sort()
        top = ranked[:k]
        return Neighbors([d for _, _, d in top], np.array([-s for s, _, _ in top], dtype=np.float32))

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
