"""One view of "the items an app works on", whether they live in a collection or a matrix.

Apps accept a ``Collection`` (anything with a ``store`` implementing the ``VectorStore``
protocol and a ``name``), a ``Source`` made by ``from_matrix``, a bare matrix, or a tuple
``(ids, vectors[, texts[, metadata]])``. All become a ``Source``: ids, a float32 matrix of
unit rows (n×d fits in RAM; n×n never has to), texts, metadata, and a batched kNN search —
the store's own ``query`` for a collection, FAISS over the matrix otherwise.

Apps work in cosine space: rows are unit-normalised on load, so inner product = cosine.

Apps that only need a few items and their neighbours (recommend) use ``as_items`` instead: a
cosine collection then stays in its store (``CollectionItems``: point reads and the store's
own kNN search), and anything else becomes a ``Source``; both answer ``vectors_of`` and
``nearest``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput, ModelMismatch
from ..store import filters
from ..store.base import query_records
from ..types import Kind, Matrix
from ..vectors import as_matrix, normalize
from ._knn import KnnGraph, MatrixIndex, check_k, knn_graph

_SCAN_BATCH = 10_000


@dataclass(frozen=True)
class Neighbour:
    """One kNN answer: an item, its cosine score, and (when asked) its unit vector."""

    id: str
    score: float
    text: str | None
    metadata: Mapping[str, Any]
    vector: np.ndarray | None = None


@dataclass
class Source:
    """Items for an app: ``ids[i]`` has vector ``vectors[i]``, ``texts[i]``, ``metadata[i]``."""

    ids: list[str]
    vectors: Matrix
    texts: list[str | None]
    metadata: list[dict[str, Any]]
    embedder: str | None = None
    """Id of the model that made the vectors (``None`` for bring-your-own vectors)."""
    collection: Any = None
    """The collection these items came from, if any (its store answers kNN queries)."""
    model: Any = None
    """The ``Embedder`` that made the vectors, when known: needed to embed new texts."""
    exact: bool | None = None
    """Force exact (True) or approximate (False) kNN; ``None`` lets the index decide."""
    _row: dict[str, int] | None = field(default=None, repr=False)
    _index: MatrixIndex | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])

    def row_map(self) -> dict[str, int]:
        if self._row is None:
            self._row = {item: i for i, item in enumerate(self.ids)}
        return self._row

    def rows(self, ids: Sequence[str], what: str = "ids") -> np.ndarray:
        """Row numbers of ``ids``; unknown ids are an ``InvalidInput`` naming them."""
        if isinstance(ids, str):
            ids = [ids]
        rows = self.row_map()
        missing = [i for i in ids if i not in rows]
        if missing:
            raise _unknown_ids(missing, what)
        return np.fromiter((rows[i] for i in ids), dtype=np.int64, count=len(ids))

    def vectors_of(self, ids: Sequence[str], what: str = "ids") -> Matrix:
        """The unit vectors of ``ids``, in order; unknown ids are an ``InvalidInput``."""
        return self.vectors[self.rows(ids, what)]

    def nearest(self, query: Matrix, k: int, where: Mapping[str, Any] | filters.Node | None = None,
                vectors: bool = False) -> list[Neighbour]:
        """The ``k`` items nearest to one unit ``query`` vector (cosine), best first."""
        rows, scores = self.search(np.asarray(query, dtype=np.float32)[None, :], min(k, len(self)), where)
        return [
            Neighbour(self.ids[r], s, self.texts[r], self.metadata[r], self.vectors[r] if vectors else None)
            for r, s in zip(rows[0].tolist(), scores[0].tolist(), strict=True) if r >= 0
        ]

    def search(self, queries: Matrix, k: int, where: Mapping[str, Any] | filters.Node | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query: (m, k) row indices (-1 = fewer matches) and cosine scores."""
        k = check_k(k)
        queries = normalize(as_matrix(queries, self.dimensions))
        node = _filter_node(where)
        if self.collection is not None and _store_speaks_cosine(self.collection):
            return self._store_search(queries, k, node)
        if node is not None:
            return self._filtered_search(queries, k, node)
        if self._index is None:
            self._index = MatrixIndex(self.vectors, exact=self.exact)
        return self._index.search(queries, k)

    def graph(self, k: int, rows: np.ndarray | None = None) -> KnnGraph:
        """The k nearest other items of every item, or of ``rows`` only (O(n·k) memory)."""
        return knn_graph(self.vectors, check_k(k), lambda q, kk: self.search(q, kk), rows=rows)

    def embed(self, texts: Sequence[str], kind: Kind = "document") -> Matrix:
        """Embed texts with the collection's own model (so they land in the same space)."""
        embedder = self.embedder_model()
        if embedder is None or not hasattr(embedder, "embed"):
            raise InvalidInput(
                "these items have no embedding model to embed new texts with; pass vectors "
                "instead, or pass embedder=semkit.model(...) — the model that made the vectors"
            )
        return normalize(embedder.embed(list(texts), kind))

    def embedder_model(self) -> Any:
        """The embedder object; a collection loads its recorded model only now, when needed."""
        if self.model is None and self.collection is not None:
            self.model = getattr(self.collection, "model", None)
        return self.model

    # --- helpers --------------------------------------------------------------------------

    def _store_search(self, queries: Matrix, k: int, node: filters.Node | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        col = self.collection
        rows = self.row_map()
        out_idx = np.full((len(queries), k), -1, dtype=np.int64)
        out_sc = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for start in range(0, len(queries), 1024):
            answers = col.store.query(col.name, queries[start:start + 1024], k, where=node,
                                      exact=bool(self.exact))
            for j, ans in enumerate(answers):
                # an id added after this snapshot was loaded has no row here: skip it
                pairs = [(rows[i], s) for i, s in zip(ans.ids, ans.scores, strict=True) if i in rows][:k]
                for c, (r, s) in enumerate(pairs):
                    out_idx[start + j, c] = r
                    out_sc[start + j, c] = s
        return out_idx, out_sc

    def _filtered_search(self, queries: Matrix, k: int, node: filters.Node
                         ) -> tuple[np.ndarray, np.ndarray]:
        allowed = np.fromiter((filters.matches(node, m) for m in self.metadata), dtype=bool,
                              count=len(self.metadata))
        subset = np.flatnonzero(allowed)
        out_idx = np.full((len(queries), k), -1, dtype=np.int64)
        out_sc = np.full((len(queries), k), -np.inf, dtype=np.float32)
        if len(subset) == 0:
            return out_idx, out_sc
        idx, sc = MatrixIndex(np.ascontiguousarray(self.vectors[subset]), exact=True).search(queries, k)
        valid = idx >= 0
        out_idx[valid] = subset[idx[valid]]
        out_sc[valid] = sc[valid]
        return out_idx, out_sc


def from_matrix(vectors: Any, ids: Sequence[str] | None = None, texts: Sequence[str | None] | None = None,
                metadata: Sequence[Mapping[str, Any]] | None = None, *, embedder: Any = None,
                exact: bool | None = None) -> Source:
    """A source over plain vectors: ids default to ``"0".."n-1"``.

    ``embedder`` (an ``Embedder`` or its id) names the model that made the vectors; apps that
    embed new text (zero-shot labels, scoring new texts) need the object, not only the id.
    """
    mat = as_matrix(vectors)
    norms = np.linalg.norm(mat, axis=1)
    if len(mat) and not np.allclose(norms, 1.0, atol=1e-4):
        mat = normalize(mat)  # a copy; unit vectors (most models' output) are used as given
    n = len(mat)
    ids_list = [str(i) for i in range(n)] if ids is None else [str(i) for i in ids]
    texts_list: list[str | None] = [None] * n if texts is None else list(texts)
    meta_list = [{} for _ in range(n)] if metadata is None else [dict(m or {}) for m in metadata]
    for name, seq in (("ids", ids_list), ("texts", texts_list), ("metadata", meta_list)):
        if len(seq) != n:
            raise InvalidInput(f"{n} vectors but {len(seq)} {name}; pass one per vector")
    if len(set(ids_list)) != n:
        raise InvalidInput("ids must be unique; found repeated ids")
    return Source(ids=ids_list, vectors=mat, texts=texts_list, metadata=meta_list,
                  embedder=_embedder_id(embedder), exact=exact,
                  model=None if embedder is None or isinstance(embedder, str) else embedder)


def _embedder_id(embedder: Any) -> str | None:
    if embedder is None or isinstance(embedder, str):
        return embedder
    return str(getattr(embedder, "id", None) or embedder)


def as_source(source: Any, *, exact: bool | None = None, require_items: bool = True) -> Source:
    """Turn whatever an app was given into a ``Source`` (see the module docstring)."""
    if isinstance(source, Source):
        src = source
    elif _is_collection(source):
        src = _load_collection(source)
    elif isinstance(source, np.ndarray):
        src = from_matrix(source)
    elif isinstance(source, tuple) and 2 <= len(source) <= 4:
        ids, vectors, *rest = source
        src = from_matrix(vectors, ids, *rest)
    else:
        raise InvalidInput(
            f"cannot use a {type(source).__name__} as items: pass a collection, a 2-D array of "
            "vectors, a tuple (ids, vectors[, texts[, metadata]]) or semkit.apps.from_matrix(...)"
        )
    if exact is not None:
        src.exact = exact
    if require_items and len(src) == 0:
        raise _no_items()
    return src


class CollectionItems:
    """A cosine collection seen through its store: point reads and the store's kNN search,
    never a full load, so an app's cost follows the items it touches, not the collection."""

    def __init__(self, collection: Any, spec: Any, exact: bool | None = None) -> None:
        self.collection = collection
        self.spec = spec
        self.exact = exact
        self.embedder: str | None = spec.embedder

    @property
    def dimensions(self) -> int:
        return int(self.spec.dimensions)

    def vectors_of(self, ids: Sequence[str], what: str = "ids") -> Matrix:
        """The unit vectors of ``ids``, in order; unknown ids are an ``InvalidInput``."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        store, name = self.collection.store, self.collection.name
        found = {r.id: r.vector for r in store.get(name, ids, include_vectors=True)}
        missing = [i for i in ids if i not in found]
        if missing:
            if store.count(name) == 0:
                raise _no_items()
            raise _unknown_ids(missing, what)
        mat = np.asarray([found[i] for i in ids], dtype=np.float32).reshape(len(ids), self.spec.dimensions)
        return mat if self.spec.normalized else normalize(mat)

    def nearest(self, query: Matrix, k: int, where: Mapping[str, Any] | filters.Node | None = None,
                vectors: bool = False) -> list[Neighbour]:
        """The ``k`` items nearest to one unit ``query`` vector, best first: one store query,
        the hits' records (and vectors, if asked) read in the same call."""
        store, name = self.collection.store, self.collection.name
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        answer = query_records(store, name, query, check_k(k), _filter_node(where), bool(self.exact), None,
                               vectors)[0]
        out = []
        for record, score in answer:
            vec = record.vector
            if vec is not None and not self.spec.normalized:
                vec = normalize(vec)[0]
            out.append(Neighbour(record.id, score, record.text, record.metadata, vec))
        return out

    def embed(self, texts: Sequence[str], kind: Kind = "document") -> Matrix:
        """Embed texts with the collection's own model (so they land in the same space)."""
        model = getattr(self.collection, "model", None)
        if model is None or not hasattr(model, "embed"):
            raise InvalidInput(
                f"collection {self.collection.name!r} has no embedding model to embed texts with; "
                "pass vectors instead"
            )
        return normalize(model.embed(list(texts), kind))


Items = Source | CollectionItems


def as_items(source: Any, *, exact: bool | None = None) -> Items:
    """Like ``as_source``, but a cosine collection stays in its store (``CollectionItems``).

    Other metrics rank differently from the cosine apps work in, so those collections (and
    matrices, tuples, sources) become a loaded ``Source``.
    """
    if _is_collection(source) and not isinstance(source, Source):
        spec = source.store.get_collection(source.name)
        if spec is None:
            from ..errors import CollectionNotFound

            raise CollectionNotFound(f"collection {source.name!r} does not exist (it may have been dropped)")
        if spec.metric == "cosine":
            return CollectionItems(source, spec, exact)
    return as_source(source, exact=exact)


def _filter_node(where: Mapping[str, Any] | filters.Node | None) -> filters.Node | None:
    if isinstance(where, filters.Compare | filters.Exists | filters.And | filters.Or):
        return where
    return filters.parse(where)


def _unknown_ids(missing: list[str], what: str) -> InvalidInput:
    shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
    return InvalidInput(
        f"{len(missing)} of the {what} are not in this collection: {shown}; "
        "check the ids (e.g. with collection.get) or add those items first"
    )


def _no_items() -> InvalidInput:
    return InvalidInput("there are no items to work on (the collection is empty); add items first")


def _is_collection(obj: Any) -> bool:
    return hasattr(obj, "store") and hasattr(obj, "name") and hasattr(obj.store, "scan")


def _store_speaks_cosine(col: Any) -> bool:
    spec = col.store.get_collection(col.name)
    return spec is not None and spec.metric == "cosine"


def _load_collection(col: Any) -> Source:
    """Stream the collection into a preallocated matrix: memory is n×d, never n×n."""
    store, name = col.store, col.name
    spec = store.get_collection(name)
    if spec is None:
        from ..errors import CollectionNotFound

        raise CollectionNotFound(f"collection {name!r} does not exist (it may have been dropped)")
    capacity = max(store.count(name), 1)
    mat = np.empty((capacity, spec.dimensions), dtype=np.float32)
    ids: list[str] = []
    texts: list[str | None] = []
    meta: list[dict[str, Any]] = []
    for batch in store.scan(name, batch_size=_SCAN_BATCH, include_vectors=True):
        for rec in batch:
            if len(ids) == len(mat):  # rows added while scanning: grow
                mat = np.concatenate([mat, np.empty_like(mat)])
            mat[len(ids)] = rec.vector
            ids.append(rec.id)
            texts.append(rec.text)
            meta.append(dict(rec.metadata or {}))
    mat = mat[:len(ids)]
    if spec.metric != "cosine" or not spec.normalized:
        mat = normalize(mat)
    return Source(ids=ids, vectors=mat, texts=texts, metadata=meta, embedder=spec.embedder,
                  collection=col)


def check_same_model(expected: str | None, got: str | None, what: str) -> None:
    """Refuse to mix vector spaces: both ids known and different is an error."""
    if expected and got and expected != got:
        raise ModelMismatch(
            f"{what} was made with {expected!r} but these vectors come from {got!r}; vectors of "
            "different models are not comparable — use items embedded with the same model, or retrain"
        )


__all__ = ["CollectionItems", "Items", "Neighbour", "Source", "as_items", "as_source", "check_same_model",
           "from_matrix"]
