"""``Collection``: one embedder tied to one collection of a store — the library's main object.

The store keeps finished vectors; this layer turns texts into them, and guards the
collection's fingerprint (``CollectionSpec``): vectors of another model or size never get in,
and changing the model is an explicit ``reembed``.

Upsert rules, shared by every backend:

- Upsert is idempotent by id. Ids must be unique within one call (a repeated id is an
  ``InvalidInput``, not last-wins: it is almost always a bug in the caller's data).
- Fields you do not pass are kept: ``texts=None`` keeps an existing record's text,
  ``metadata=None`` (or a ``None`` row in the list) keeps its metadata (new records get no
  text and ``{}``).
- A text equal to the stored one is not embedded again; with new ``metadata`` only the
  metadata is written. ``upsert(ids, metadata=...)`` alone is a metadata-only update and never
  calls the model (every id must already exist).
- Cosine collections store unit-length vectors (normalised on write and on query).
- Input is processed in batches of ``batch_size`` rows, so any iterable of any length works
  with bounded memory. When every input has a length (lists, arrays), the whole call is
  validated before anything is written; with one-shot iterators each batch is validated as it
  comes, so a bad row late in a stream leaves the earlier batches written (re-running the
  fixed upsert is safe: unchanged texts are not embedded again).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DimensionMismatch, InvalidInput, ModelMismatch
from .models.build import model_from_id, resolve_model, split_embedder_id
from .store import filters
from .store.base import (
    CollectionSpec,
    Record,
    VectorStore,
    check_batch_size,
    check_ids,
    check_k,
    metadata_json,
    query_records,
)
from .types import Matrix
from .vectors import as_matrix, check_texts, normalize

if TYPE_CHECKING:
    from .models.base import Embedder

DEFAULT_BATCH_SIZE = 1_000
REEMBED_SUFFIX = "__reembed"

Filter = Mapping[str, Any] | str | None


@dataclass(frozen=True)
class Hit:
    """One search result: higher ``score`` is better for every metric."""

    id: str
    score: float
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)


_new_object = object.__new__


def _hit(hit_id: str, score: float, text: str | None, metadata: dict[str, Any],
         vector: np.ndarray | None) -> Hit:
    """``Hit(...)`` at a third of the cost: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__``, a visible share of a search returning ten hits."""
    hit = _new_object(Hit)
    fields = hit.__dict__
    fields["id"] = hit_id
    fields["score"] = score
    fields["text"] = text
    fields["metadata"] = metadata
    fields["vector"] = vector
    return hit


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert did."""

    count: int
    """Rows processed."""
    embedded: int
    """Texts sent to the embedder (its cache may still have answered some of them)."""
    unchanged: int
    """Texts equal to the stored ones: not embedded again."""


@dataclass
class _Batch:
    ids: list[str]
    texts: list[str | None] | None
    vectors: Matrix | None
    metadata: list[dict[str, Any] | None] | None
    """Per-row ``None`` (or no list at all) keeps the stored metadata."""


class Collection:
    """Records (id, text, vector, metadata) embedded by one model, in one store collection.

    Get one from ``Database.collection``; construct directly only to wrap a store yourself.
    """

    def __init__(self, store: VectorStore, spec: CollectionSpec, model: Embedder | None = None) -> None:
        if model is not None:
            _check_model(spec, model)
        self._store = store
        self._spec = spec
        self._model = model
        self._query_hits = getattr(store, "query_hits", None)  # the embedded store builds hits itself

    # --- identity -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def spec(self) -> CollectionSpec:
        return self._spec

    @property
    def dimensions(self) -> int:
        return self._spec.dimensions

    @property
    def metric(self) -> str:
        return self._spec.metric

    @property
    def store(self) -> VectorStore:
        return self._store

    @property
    def model(self) -> Embedder | None:
        """The embedder, loaded on first use from the recorded id; ``None`` for a
        bring-your-own-vectors collection."""
        if self._model is None and self._spec.embedder is not None:
            model = model_from_id(self._spec.embedder)
            _check_model(self._spec, model)
            self._model = model
        return self._model

    def info(self) -> dict[str, Any]:
        """The collection's spec and record count, as plain JSON-ready data."""
        return {**self._spec.to_json(), "count": len(self)}

    def __len__(self) -> int:
        return self._store.count(self.name)

    def __repr__(self) -> str:
        model = self._spec.embedder or "own vectors"
        return f"<Collection {self.name!r} {model} {self.dimensions}d {self.metric}>"

    # --- writes -------------------------------------------------------------------------

    def upsert(
        self,
        ids: Iterable[str],
        texts: Iterable[str | None] | None = None,
        vectors: Any = None,
        metadata: Iterable[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> UpsertResult:
        """Insert or update records by id (see the module docstring for the rules).

        ``progress``, if given, is called with the number of rows done after each batch.
        """
        check_batch_size(batch_size)
        if isinstance(ids, str):
            raise InvalidInput("ids must be a list of strings; wrap a single id in a list: ids=[id]")
        if texts is None and vectors is None and metadata is None:
            raise InvalidInput("nothing to upsert: pass texts=, vectors= and/or metadata=")
        if texts is not None and vectors is None and self._spec.embedder is None:
            raise InvalidInput(
                f"collection {self.name!r} stores your own vectors and has no model to embed texts; "
                "pass vectors= with the texts, or create the collection with a model"
            )
        if _all_sized(ids, texts, vectors, metadata):
            # Everything is in memory already: validate it all so a bad row writes nothing.
            for _ in self._batches(ids, texts, vectors, metadata, batch_size):
                pass
        done = embedded = unchanged = 0
        for batch in self._batches(ids, texts, vectors, metadata, batch_size):
            e, u = self._write(batch)
            done += len(batch.ids)
            embedded += e
            unchanged += u
            if progress is not None:
                progress(done)
        return UpsertResult(done, embedded, unchanged)

    def delete(self, ids: Iterable[str] | str | None = None, where: Filter = None) -> int:
        """Delete by ids, by filter, or both (records matching both); returns how many went."""
        node = filters.parse(where)
        if ids is None and node is None:
            raise InvalidInput(
                "delete needs ids= or where=; to remove the whole collection use db.drop(name)"
            )
        id_list = _id_list(ids) if ids is not None else None
        return self._store.delete(self.name, ids=id_list, where=node)

    def reembed(
        self, model: str | Embedder, *, batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> Collection:
        """Embed every record's text with ``model`` and switch to it atomically.

        The new vectors go to a shadow collection (``NAME__reembed``); the switch is one
        ``rename_collection``, so searches see either the old collection or the new one. An
        interrupted re-embed leaves the shadow behind and the next call resumes it (texts
        already embedded are skipped). Records written to the collection while a re-embed runs
        may be missed: pause writers. Returns this collection, now using ``model``.
        """
        check_batch_size(batch_size)
        embedder = resolve_model(model, None)
        missing = self._store.count(self.name) - sum(
            1 for batch in self._store.scan(self.name, batch_size=10_000, include_vectors=False)
            for r in batch if r.text is not None
        )
        if missing:
            example = next(
                r.id for batch in self._store.scan(self.name, include_vectors=False)
                for r in batch if r.text is None
            )
            raise InvalidInput(
                f"{missing} records of {self.name!r} have no text (e.g. {example!r}), so they cannot "
                "be re-embedded; upsert their texts or delete them first. Nothing was changed."
            )
        shadow_spec = replace(
            self._spec, name=self.name + REEMBED_SUFFIX, embedder=embedder.id,
            dimensions=embedder.dimensions,
        )
        old_shadow = self._store.get_collection(shadow_spec.name)
        if old_shadow is not None and old_shadow.fingerprint() != shadow_spec.fingerprint():
            self._store.drop_collection(shadow_spec.name)
            old_shadow = None
        if old_shadow is None:
            self._store.create_collection(shadow_spec)
        shadow = Collection(self._store, shadow_spec, embedder)
        done = 0
        for batch in self._store.scan(self.name, batch_size=batch_size, include_vectors=False):
            shadow.upsert(
                [r.id for r in batch], texts=[r.text for r in batch],
                metadata=[r.metadata for r in batch], batch_size=batch_size,
            )
            done += len(batch)
            if progress is not None:
                progress(done)
        if old_shadow is not None:
            # Resumed: records deleted from the collection since the interrupted run must not
            # come back with the switch.
            gone: list[str] = []
            for batch in self._store.scan(shadow_spec.name, batch_size=10_000, include_vectors=False):
                ids = [r.id for r in batch]
                present = self._store.texts(self.name, ids)
                gone.extend(i for i in ids if i not in present)
            for start in range(0, len(gone), 10_000):
                self._store.delete(shadow_spec.name, ids=gone[start:start + 10_000])
        self._store.rename_collection(shadow_spec.name, self.name)
        self._spec = self._store.get_collection(self.name) or replace(shadow_spec, name=self.name)
        self._model = embedder
        return self

    # --- reads --------------------------------------------------------------------------

    def search(
        self, query: str | Any, k: int = 10, where: Filter = None, *, exact: bool = False,
        ef: int | None = None, include_vectors: bool = False,
    ) -> list[Hit]:
        """The ``k`` records nearest to ``query`` (a text, embedded as a query, or a vector).

        With ``where``, the answer is the exact top-``k`` among the matching records.
        """
        spec = self._spec
        if type(query) is np.ndarray:  # the common case first: one frame less per search
            matrix = _unit_queries(query, spec.dimensions, spec.metric == "cosine", spec.name)
        elif isinstance(query, str):
            if not query.strip():
                raise InvalidInput("the query is an empty string; pass some text or a vector")
            matrix = self._query_vectors([query])
        else:
            matrix = self._query_vectors(query)
        if len(matrix) != 1:
            raise InvalidInput(
                f"search takes one query, got {len(matrix)} vectors; use search_many for a batch"
            )
        native = self._query_hits
        if native is not None and where is None and type(k) is int and k > 0:
            # ``_search`` for the usual call, one frame less (the query is prepared above)
            return native(spec.name, matrix, k, None, exact, ef, include_vectors, _hit,  # type: ignore[no-any-return]
                          prepared=True)[0]
        return self._search(matrix, k, where, exact, ef, include_vectors)[0]

    def search_many(
        self, queries: Sequence[str] | Any, k: int = 10, where: Filter = None, *,
        exact: bool = False, ef: int | None = None, include_vectors: bool = False,
    ) -> list[list[Hit]]:
        """``search`` for a batch of texts or a matrix of query vectors, one list per query.

        The batch goes to the store as one call (FAISS searches it in one pass; the hits'
        records are read once for all queries), so it is cheaper than a loop of ``search``.
        """
        if isinstance(queries, str):
            raise InvalidInput("search_many takes a list of queries; use search for one text")
        matrix = self._query_vectors(queries)
        if len(matrix) == 0:
            check_k(k)
            return []
        return self._search(matrix, k, where, exact, ef, include_vectors)

    def _search(self, matrix: Matrix, k: int, where: Filter, exact: bool, ef: int | None,
                include_vectors: bool) -> list[list[Hit]]:
        check_k(k)
        node = None if where is None else filters.parse(where)
        name = self._spec.name
        native = self._query_hits
        if native is not None:
            # the queries were validated and normalised above: the store does not do it again
            return native(name, matrix, k, node, exact, ef, include_vectors, _hit,  # type: ignore[no-any-return]
                          prepared=True)
        answers = query_records(self._store, name, matrix, k, node, exact, ef, include_vectors)
        return [[_hit(r.id, s, r.text, r.metadata, r.vector) for r, s in answer] for answer in answers]

    def keyword_search(self, text: str, k: int = 10, where: Filter = None, *,
                       include_vectors: bool = False) -> list[Hit]:
        """Full-text (BM25-style) search with the backend's own engine; scores are the
        backend's and not comparable with vector scores. ``include_vectors``: each hit carries
        its stored vector (read with its record, one store round trip for both)."""
        check_k(k)
        check_texts([text])
        answer = self._store.keyword_query(self.name, text, k, filters.parse(where))
        records = {r.id: r for r in self._store.get(self.name, answer.ids, include_vectors=include_vectors)}
        return [
            _hit(i, s, records[i].text, records[i].metadata, records[i].vector)
            for i, s in zip(answer.ids, answer.scores.tolist(), strict=True) if i in records
        ]

    def get(self, ids: Iterable[str] | str, include_vectors: bool = False) -> list[Record]:
        """Records for the ids that exist, in the order asked."""
        return self._store.get(self.name, _id_list(ids), include_vectors=include_vectors)

    def count(self, where: Filter = None) -> int:
        return self._store.count(self.name, filters.parse(where))

    def scan(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, include_vectors: bool = False,
        where: Filter = None,
    ) -> Iterator[list[Record]]:
        """Every record (or every match of ``where``) in batches, with bounded memory."""
        check_batch_size(batch_size)
        return self._store.scan(
            self.name, batch_size=batch_size, include_vectors=include_vectors,
            where=filters.parse(where),
        )

    def __iter__(self) -> Iterator[Record]:
        for batch in self.scan():
            yield from batch

    # --- export / import ----------------------------------------------------------------

    def export(self, path: str | Path, *, format: str | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Write every record with its vector to ``path`` (``.parquet``, ``.jsonl`` or
        ``.csv``, or ``format=``); the spec travels with parquet and jsonl. Returns the count."""
        from .store import io

        batches = self._store.scan(self.name, batch_size=batch_size, include_vectors=True)
        return io.write_records(path, self._spec, batches, format=format)

    def import_(self, path: str | Path, *, format: str | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Load records exported by ``export`` (or any file of that layout) without
        re-embedding: the vectors are used as they are. Returns how many were loaded.

        The file's recorded model and dimensions must match this collection's
        (``ModelMismatch`` / ``DimensionMismatch`` otherwise, before anything is written).
        Records are upserted batch by batch.
        """
        from .store import io

        check_compatible(io.read_spec(path, format=format), self._spec, str(path))
        done = 0
        for batch in io.read_records(path, batch_size=batch_size, format=format):
            no_vector = [r.id for r in batch if r.vector is None]
            if no_vector:
                raise InvalidInput(
                    f"{path}: record {no_vector[0]!r} has no vector; import never embeds. To embed "
                    "texts from a file, read it and call upsert(ids=..., texts=...)"
                )
            self._write(self._check_batch(
                [r.id for r in batch], [r.text for r in batch],
                np.stack([r.vector for r in batch]),  # type: ignore[misc]
                [r.metadata for r in batch],
            ))
            done += len(batch)
        return done

    # --- internals ----------------------------------------------------------------------

    def _batches(
        self, ids: Iterable[str], texts: Any, vectors: Any, metadata: Any, batch_size: int,
    ) -> Iterator[_Batch]:
        seen: set[str] = set()
        columns = [iter(ids), *(iter(c) for c in (texts, vectors, metadata) if c is not None)]
        rows = _zip_exact(columns, names=[
            "ids", *(n for n, c in (("texts", texts), ("vectors", vectors), ("metadata", metadata))
                     if c is not None),
        ])
        while True:
            chunk = list(itertools.islice(rows, batch_size))
            if not chunk:
                return
            cols = iter(zip(*chunk, strict=True))
            b_ids = list(next(cols))
            b_texts = list(next(cols)) if texts is not None else None
            b_vectors = list(next(cols)) if vectors is not None else None
            b_meta = list(next(cols)) if metadata is not None else None
            for i in b_ids:
                if i in seen:
                    raise InvalidInput(
                        f"id {i!r} appears more than once in this upsert; keep one row per id"
                    )
                seen.add(i)
            yield self._check_batch(b_ids, b_texts, b_vectors, b_meta)

    def _check_batch(self, ids: list[Any], texts: list[Any] | None, vectors: Any,
                     metadata: list[Any] | None) -> _Batch:
        # The store's own checks, run before anything is embedded: a bad row costs no model call.
        ids = check_ids(ids)
        matrix = None
        if vectors is not None:
            matrix = as_matrix(vectors) if len(vectors) else np.zeros((0, self.dimensions), np.float32)
            if matrix.shape[1] != self.dimensions:
                raise DimensionMismatch(self.dimensions, matrix.shape[1], f"collection {self.name!r}")
        if texts is not None:
            for n, text in enumerate(texts):
                if text is None and matrix is not None:
                    continue  # a vector with no text: allowed, the record just has no text
                if not isinstance(text, str) or not text.strip():
                    raise InvalidInput(
                        f"text for id {ids[n]!r} is {_short(text)}; texts must be non-empty strings "
                        "(None is allowed only when you pass its vector)"
                    )
        if texts is not None:
            texts = [None if t is None else str(t) for t in texts]
        meta = None
        if metadata is not None:
            meta = [None if m is None else json.loads(metadata_json(m, ids[n])) for n, m in enumerate(metadata)]
        return _Batch(ids, texts, matrix, meta)

    def _write(self, batch: _Batch) -> tuple[int, int]:
        """Write one validated batch; returns (texts embedded, texts unchanged)."""
        name = self.name
        if not batch.ids:
            return 0, 0
        if batch.vectors is not None:
            self._put(batch.ids, batch.vectors, batch.texts, batch.metadata, keep_text=batch.texts is None)
            return 0, 0
        if batch.texts is None:
            assert batch.metadata is not None
            stored = self._store.texts(name, batch.ids)
            absent = [i for i in batch.ids if i not in stored]
            if absent:
                raise InvalidInput(
                    f"{len(absent)} ids are not in {name!r} (e.g. {absent[0]!r}); a metadata-only "
                    "upsert updates existing records; pass texts= or vectors= to create them"
                )
            given = [n for n, m in enumerate(batch.metadata) if m is not None]
            self._store.update_metadata(
                name, [batch.ids[n] for n in given], [batch.metadata[n] for n in given]  # type: ignore[misc]
            )
            return 0, 0
        stored = self._store.texts(name, batch.ids)
        fresh = [n for n, i in enumerate(batch.ids) if i not in stored or stored[i] != batch.texts[n]]
        fresh_set = set(fresh)
        same = [n for n in range(len(batch.ids)) if n not in fresh_set]
        meta = batch.metadata
        if meta is not None:
            changed = [n for n in same if meta[n] is not None]
            if changed:
                self._store.update_metadata(
                    name, [batch.ids[n] for n in changed], [meta[n] for n in changed]  # type: ignore[misc]
                )
        if fresh:
            model = self.model
            assert model is not None  # upsert() rejects texts without vectors on own-vector collections
            texts = [batch.texts[n] for n in fresh]
            vectors = as_matrix(model.embed(texts, "document"), self.dimensions)
            self._put(
                [batch.ids[n] for n in fresh], vectors, texts,
                [batch.metadata[n] for n in fresh] if batch.metadata is not None else None,
                keep_text=False,
            )
        return len(fresh), len(same)

    def _put(self, ids: list[str], vectors: Matrix, texts: list[str | None] | None,
             metadata: list[dict[str, Any] | None] | None, *, keep_text: bool) -> None:
        rows: list[dict[str, Any] | None] = list(metadata) if metadata is not None else [None] * len(ids)
        if keep_text or any(m is None for m in rows):
            # Fields the caller did not pass keep their stored values.
            old = {r.id: r for r in self._store.get(self.name, ids)}
            if keep_text:
                texts = [old[i].text if i in old else None for i in ids]
            rows = [m if m is not None else (old[i].metadata if i in old else {})
                    for i, m in zip(ids, rows, strict=True)]
        if self._spec.metric == "cosine":
            vectors = normalize(vectors)
        self._store.upsert(self.name, ids, vectors, texts, rows)

    def _query_vectors(self, queries: Any) -> Matrix:
        """Query vectors, validated and (cosine) unit-normalised in one pass: one vector, a
        matrix, or a list of texts embedded as queries."""
        if isinstance(queries, np.ndarray) or (
            isinstance(queries, Sequence) and queries and not isinstance(queries[0], str)
        ):
            return _unit_queries(queries, self.dimensions, self._spec.metric == "cosine", self.name)
        texts = check_texts(list(queries), allow_empty_list=True)
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        model = self.model
        if model is None:
            raise InvalidInput(
                f"collection {self.name!r} stores your own vectors and has no model to embed "
                "the query; pass a query vector instead of text"
            )
        matrix = as_matrix(model.embed(texts, "query"), self.dimensions)
        return normalize(matrix) if self._spec.metric == "cosine" else matrix


def _square_norm_numpy(row: Matrix) -> float:
    with np.errstate(over="ignore", invalid="ignore"):  # float32 squares of huge values overflow
        return float(np.dot(row[0], row[0]))


def _square_norm_first(row: Matrix) -> float:
    """Resolve ``_square_norm`` on first use (FAISS is imported only by stores that need it)."""
    global _square_norm
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is in the base install; a source checkout may lack it
        _square_norm = _square_norm_numpy
    else:
        norm, ptr = faiss.fvec_norm_L2sqr, faiss.swig_ptr

        def _square_norm_faiss(row: Matrix) -> float:
            return norm(ptr(row), row.shape[1])  # type: ignore[no-any-return]

        _square_norm = _square_norm_faiss
    return _square_norm(row)


_square_norm: Callable[[Matrix], float] = _square_norm_first
"""The float32 squared length of a one-row C-contiguous float32 matrix (inf on overflow, NaN
for NaN input). FAISS's SIMD kernel when installed: numpy's ``np.dot`` would need an
``np.errstate`` block to stay quiet on overflow, and that context manager alone cost more than
the product (~1 us, several times that with the caches cold after a graph search)."""


def _unit_queries(vectors: Any, dimensions: int, unit: bool, name: str) -> Matrix:
    """``as_matrix`` + ``normalize`` for query vectors at a fraction of their cost: a clean
    float32 array is not copied or re-checked, and the squared norms (float64, so huge values
    do not overflow) double as the finiteness check."""
    q = vectors
    if not len(q):
        return np.zeros((0, dimensions), np.float32)
    if not (type(q) is np.ndarray and q.dtype == np.float32 and q.flags.c_contiguous and q.ndim in (1, 2)):
        q = as_matrix(q)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    if q.shape[1] != dimensions:
        raise DimensionMismatch(dimensions, q.shape[1], f"queries of {name!r}")
    if len(q) == 1:  # one search: scalar arithmetic, no temporary arrays
        square = _square_norm(q)
        if math.isfinite(square):  # else NaN/inf, or float32 squares overflowing: float64 decides below
            if not unit or abs(square - 1.0) <= 1e-6 or square == 0.0:
                return q
            return q * np.float32(1.0 / math.sqrt(square))
    with np.errstate(over="ignore", invalid="ignore"):
        squares = np.einsum("ij,ij->i", q, q)
    if not np.isfinite(squares).all():
        # NaN/inf, or float32 squares overflowing (values beyond ~1e19): float64 tells which.
        squares = np.einsum("ij,ij->i", q, q, dtype=np.float64)
        if not np.isfinite(squares).all():
            raise InvalidInput("query vectors contain NaN or infinite values; fix those rows")
    if not unit or np.abs(squares - 1.0).max() <= 1e-6:
        return q
    norms = np.sqrt(squares)
    norms[norms == 0] = 1.0
    return (q / norms[:, None]).astype(np.float32)


# --- model resolution ---------------------------------------------------------------------
# Building models lives in the models floor (``models.build``); ``resolve_model``,
# ``split_embedder_id`` and ``model_from_id`` are imported above and stay importable from here.


def check_compatible(source: CollectionSpec | None, target: CollectionSpec, where: str) -> None:
    """Vectors recorded under ``source`` may be added to ``target`` without re-embedding."""
    if source is None:
        return
    if source.dimensions != target.dimensions:
        raise DimensionMismatch(target.dimensions, source.dimensions, f"{where} into {target.name!r}")
    if target.embedder is not None and source.embedder != target.embedder:
        made = source.embedder or "vectors of no recorded model"
        raise ModelMismatch(
            f"{where} holds {made}, but collection {target.name!r} uses {target.embedder}; "
            f"import it into a collection of the same model (db.import_collection creates one from "
            f"the file), or re-embed the texts with upsert(texts=...)"
        )


def _check_model(spec: CollectionSpec, model: Embedder) -> None:
    if spec.embedder is None:
        raise ModelMismatch(
            f"collection {spec.name!r} stores your own vectors and records no model; "
            f"open it with model=None, or re-embed it with collection.reembed(model={model.id!r})"
        )
    if model.id != spec.embedder:
        recorded, _ = split_embedder_id(spec.embedder)
        raise ModelMismatch(
            f"collection {spec.name!r} was embedded with {spec.embedder}, not {model.id}. Open it "
            f"with model={recorded!r} (or no model argument), or switch it to the new model with "
            f"docs.reembed(model=...)"
        )
    if model.dimensions != spec.dimensions:
        raise DimensionMismatch(spec.dimensions, model.dimensions, f"collection {spec.name!r}")


# --- validation helpers -------------------------------------------------------------------


def _id_list(ids: Iterable[str] | str) -> list[str]:
    return [ids] if isinstance(ids, str) else list(ids)


def _all_sized(*columns: Any) -> bool:
    return all(c is None or (isinstance(c, Sized) and not isinstance(c, Iterator)) for c in columns)


_END = object()


def _zip_exact(columns: list[Iterator[Any]], names: list[str]) -> Iterator[tuple[Any, ...]]:
    for row in itertools.zip_longest(*columns, fillvalue=_END):
        if any(v is _END for v in row):
            short = [n for n, v in zip(names, row, strict=True) if v is _END]
            raise InvalidInput(
                f"{', '.join(short)} ran out before the other inputs: pass exactly one entry per id"
            )
        yield row


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
