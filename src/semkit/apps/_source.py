"""One view of "the items an app works on", whether they live in a collection or a matrix.

Apps accept a ``Collection`` (anything with a ``store`` implementing the ``VectorStore``
protocol and a ``name``), a ``Source`` made by ``from_matrix``, a bare matrix, or a tuple
``(ids, vectors[, texts[, metadata]])``. All become a ``Source``: ids, a float32 matrix of
unit rows (n×d fits in RAM; n×n never has to), texts, metadata, and a batched kNN search —
the store's own ``query`` for a collection, FAISS over the matrix otherwise.

Apps work in cosine space: rows are unit-normalised on load, so inner product = cosine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput, ModelMismatch
from ..store import filters
from ..types import Kind, Matrix
from ..vectors import as_matrix, normalize
from ._knn import KnnGraph, MatrixIndex, check_k, knn_graph

_SCAN_BATCH = 10_000


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
            shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InvalidInput(
                f"{len(missing)} of the {what} are not in this collection: {shown}; "
                "check the ids (e.g. with collection.get) or add those items first"
            )
        return np.fromiter((rows[i] for i in ids), dtype=np.int64, count=len(ids))

    def search(self, queries: Matrix, k: int, where: Mapping[str, Any] | filters.Node | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query: (m, k) row indices (-1 = fewer matches) and cosine scores."""
        k = check_k(k)
        queries = normalize(as_matrix(queries, self.dimensions))
        node = where if isinstance(where, filters.Compare | filters.Exists | filters.And | filters.Or) \
            else filters.parse(where)
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
        raise InvalidInput("there are no items to work on (the collection is empty); add items first")
    return src


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


__all__ = ["Source", "as_source", "check_same_model", "from_matrix"]
