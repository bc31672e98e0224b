"""``Database``: a store of named collections, opened from a URI by ``connect``.

Which URI opens which store is the table in ``store/registry.py`` (``register_scheme`` adds a
scheme of your own):

- a plain path or ``file://PATH`` → the embedded store (one folder, no server)
- ``postgresql://...`` / ``postgres://...`` → PostgreSQL with pgvector
- ``qdrant://host:6333`` / ``qdrant+local://PATH`` → Qdrant (a server, or qdrant-client's local mode)
- ``memory://`` → the in-process reference store (a fresh, empty one on every ``connect``)

Backends are imported only when their scheme is used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .collection import REEMBED_SUFFIX, Collection, check_compatible, resolve_model
from .config import database_uri
from .errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    InvalidInput,
    ModelMismatch,
    ModelNotAvailable,
)
from .models.registry import identify as identify_model
from .redaction import redact_uri
from .store import registry
from .store.base import CollectionSpec, VectorStore
from .store.registry import Capabilities, StoreBackend, StoreFactory
from .types import METRICS, STORAGE_DTYPES, Metric, StorageDtype

if TYPE_CHECKING:
    from .models.base import Embedder


class _Recorded:
    """Default of ``Database.collection(model=...)``: the recorded model, or ``local`` for a new
    collection."""

    def __repr__(self) -> str:
        return "<recorded model>"


RECORDED: Any = _Recorded()
DEFAULT_MODEL = "local"


def register_scheme(scheme: str, factory: StoreFactory, *, pass_uri: bool = True) -> None:
    """Let ``connect("scheme://...")`` open a new backend: ``factory(uri, **options)``, or
    ``factory(path_after_scheme, **options)`` with ``pass_uri=False``."""
    name = scheme.lower()
    registry.register(StoreBackend(name, (name,), factory, pass_uri=pass_uri))


def connect(uri: str | os.PathLike[str] | None = None, **options: Any) -> Database:
    """Open a database: a folder path, ``file://PATH``, ``postgresql://...`` or ``memory://``;
    without ``uri``, ``SEMKIT_DB`` or ``./kb`` (see ``config.database_uri``).

    ``options`` go to the backend (e.g. pool sizes for PostgreSQL).
    """
    text = database_uri(uri)
    if not text:
        raise ConfigError("empty database URI; pass a folder path, postgresql://... or memory://")
    backend, target = registry.find(text)
    return Database(backend.open(target, **options), uri=text, backend=backend)


class Database:
    """Named collections in one store. A context manager; ``close()`` releases the store."""

    def __init__(self, store: VectorStore, *, uri: str = "", backend: StoreBackend | None = None) -> None:
        self._store = store
        self.uri = uri
        self._backend = backend

    @property
    def store(self) -> VectorStore:
        return self._store

    @property
    def backend(self) -> StoreBackend | None:
        """The registry entry ``connect`` opened the store with (``None`` for a store passed in)."""
        return self._backend

    @property
    def capabilities(self) -> Capabilities | None:
        """What the store can do (keyword engine, ANN index, dtypes...); ``None`` when unknown."""
        return self._backend.capabilities if self._backend is not None else None

    def collection(
        self,
        name: str,
        model: str | Embedder | None = RECORDED,
        *,
        metric: Metric | None = None,
        dtype: StorageDtype | None = None,
        dimensions: int | None = None,
        create: bool = True,
    ) -> Collection:
        """Open collection ``name``, creating it on first use (unless ``create=False``).

        ``model``: a spec (``"local"``, ``"openai:text-embedding-3-small"``) or an embedder. Left
        out, an existing collection uses the model it recorded (loaded on first use) and a new
        one uses ``"local"``. Either way the recorded model is only loaded when a text needs
        embedding, so vector search, get, export and import never load it. ``model=None`` with
        ``dimensions=`` creates a bring-your-own-vectors collection (on an existing collection
        it is the same as leaving ``model`` out).

        ``metric`` (``cosine``, ``dot``, ``l2``) and ``dtype`` are fixed at creation; passing a
        different value for an existing collection is an error.
        """
        _check_name(name)
        if metric is not None and metric not in METRICS:
            raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        if dtype is not None and dtype not in STORAGE_DTYPES:
            raise InvalidInput(f"unknown dtype {dtype!r}; use one of {', '.join(STORAGE_DTYPES)}")
        spec = self._store.get_collection(name)
        if spec is not None:
            return self._open(spec, model, metric, dtype, dimensions)
        if not create:
            raise CollectionNotFound(
                f"no collection named {name!r}; existing: {self.collections() or 'none'}. "
                "Leave create=True to create it"
            )
        embedder: Embedder | None = None
        embedder_id: str | None = None
        if model is None:
            if dimensions is None:
                raise InvalidInput(
                    f"collection {name!r} has no model, so it needs dimensions= (the length of "
                    "the vectors you will store)"
                )
            if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
                raise InvalidInput(f"dimensions must be a positive integer, got {dimensions!r}")
            dims = dimensions
        else:
            chosen = DEFAULT_MODEL if model is RECORDED else model
            # A local model's id and size come from its folder: the model itself loads when a
            # text first needs embedding, never for Ray ingestion, whose workers load their own.
            known = identify_model(chosen, dimensions) if isinstance(chosen, str) else None
            if known is None:
                embedder = resolve_model(chosen, dimensions)
                known = embedder.id, embedder.dimensions
            embedder_id, dims = known
        chosen_metric: Metric = metric or "cosine"
        spec = CollectionSpec(
            name=name, dimensions=dims, metric=chosen_metric,
            embedder=embedder_id,
            dtype=dtype or "float32", normalized=chosen_metric == "cosine",
        )
        try:
            self._store.create_collection(spec)
        except CollectionExists:
            # Another process created it since we looked: "created on first use" is theirs.
            existing = self._store.get_collection(name)
            if existing is None:
                raise
            return self._open(existing, model, metric, dtype, dimensions)
        return Collection(self._store, spec, embedder)

    def _open(self, spec: CollectionSpec, model: Any, metric: Metric | None,
              dtype: StorageDtype | None, dimensions: int | None) -> Collection:
        if metric is not None and metric != spec.metric:
            raise InvalidInput(
                f"collection {spec.name!r} uses metric {spec.metric!r}, not {metric!r}; the metric "
                "is fixed at creation: export it and import into a new collection to change it"
            )
        if dtype is not None and dtype != spec.dtype:
            raise InvalidInput(
                f"collection {spec.name!r} stores {spec.dtype!r} vectors, not {dtype!r}; the dtype "
                "is fixed at creation"
            )
        if dimensions is not None and dimensions != spec.dimensions:
            raise DimensionMismatch(spec.dimensions, dimensions, f"collection {spec.name!r}")
        if model is RECORDED or model is None or _names_recorded_model(model, spec):
            return Collection(self._store, spec)  # the recorded model loads when first needed
        if spec.embedder is None:
            raise ModelMismatch(
                f"collection {spec.name!r} stores your own vectors and records no model; open it "
                f"without a model, or give it one with docs.reembed(model=...)"
            )
        return Collection(self._store, spec, resolve_model(model, dimensions))

    def attach(
        self,
        name: str,
        *,
        table: str,
        id: str,
        text: str,
        vector: str,
        model: str | Embedder | None,
        metadata: str | None = None,
        columns: Sequence[str] = (),
        fts: str | None = None,
        metric: Metric | None = None,
        create_fts_index: bool = False,
    ) -> Collection:
        """Serve an existing PostgreSQL table as collection ``name``, in place: no row is copied
        or changed, and search, filters, upsert and delete work on the table itself.

        ``table`` as SQL names it (``documents``, ``myschema.documents``); ``id``, ``text`` and
        ``vector`` are its columns (integer, uuid or text ids with a primary key or unique
        constraint; a ``vector(n)``/``halfvec(n)`` column). ``model`` made the vectors (its
        dimensions must be the column's; ``None``: your own vectors, queries by vector only).
        ``metadata``: a ``jsonb`` column; ``columns``: other columns shown as metadata fields
        (filterable). ``fts``: a ``tsvector`` column for keyword search; without one, keyword
        search computes ``to_tsvector`` per query, and ``create_fts_index=True`` adds the
        expression index that makes it fast (the only change attach ever makes to the table).
        ``metric``: default the one of the column's HNSW/IVFFlat index, else cosine.

        Remembered in the store: ``collections()`` lists it, ``collection(name)`` reopens it,
        ``drop(name)`` forgets it and leaves the table. Ids are the id column's text form
        (``'42'``). Only on ``postgresql://`` databases; see docs/stores.md.
        """
        _check_name(name)
        attach_table = getattr(self._store, "attach_table", None)
        if attach_table is None:
            raise ConfigError(
                f"attach serves an existing PostgreSQL table and needs a postgresql:// database, not "
                f"{type(self._store).__name__}; connect with semkit.connect('postgresql://USER@HOST/DB')"
            )
        if metric is not None and metric not in METRICS:
            raise InvalidInput(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        embedder = None if model is None else resolve_model(model, None)
        spec = attach_table(
            name, table=table, id=id, text=text, vector=vector, metadata=metadata, columns=list(columns),
            fts=fts, embedder=None if embedder is None else embedder.id,
            dimensions=None if embedder is None else embedder.dimensions, metric=metric,
            create_fts_index=create_fts_index,
        )
        return Collection(self._store, spec, embedder)

    def collections(self) -> list[str]:
        """Names of the collections, sorted (shadows of a running re-embed are left out)."""
        return sorted(
            s.name for s in self._store.list_collections() if not s.name.endswith(REEMBED_SUFFIX)
        )

    def drop(self, name: str) -> None:
        """Delete a collection and all its records (``CollectionNotFound`` if absent); an
        attached table is only forgotten, its table and rows stay."""
        self._store.drop_collection(name)
        if self._store.get_collection(name + REEMBED_SUFFIX) is not None:
            self._store.drop_collection(name + REEMBED_SUFFIX)

    def import_collection(self, name: str | None, path: str | Path, *, format: str | None = None) -> int:
        """Load an export into collection ``name`` (``None``: the name recorded in the file),
        creating it with the file's spec if it does not exist. Nothing is re-embedded.
        Returns how many records were loaded."""
        from .store import io

        source = io.read_spec(path, format=format)
        if source is None:
            raise InvalidInput(
                f"{path} records no collection spec (CSV files don't); create the collection with "
                "db.collection(name, model=..., dimensions=...) and call its import_()"
            )
        target_name = name or source.name
        _check_name(target_name)
        spec = self._store.get_collection(target_name)
        if spec is None:
            spec = CollectionSpec(
                name=target_name, dimensions=source.dimensions, metric=source.metric,
                embedder=source.embedder, dtype=source.dtype, normalized=source.normalized,
                options=source.options,
            )
            self._store.create_collection(spec)
        else:
            check_compatible(source, spec, str(path))
        return Collection(self._store, spec).import_(path, format=format)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._store.get_collection(name) is not None

    def __repr__(self) -> str:
        return f"<Database {redact_uri(self.uri) if self.uri else type(self._store).__name__}>"


def _names_recorded_model(model: Any, spec: CollectionSpec) -> bool:
    """Whether a spec string names the collection's recorded model, so that opening it need
    not load the model just to compare ids (``"local"`` names ``local:all-MiniLM-L6-v2@384``)."""
    if not isinstance(model, str) or spec.embedder is None:
        return False
    from .collection import split_embedder_id
    from .models.registry import parse_spec

    try:
        scheme, model_name = parse_spec(model)
    except ModelNotAvailable:
        return False
    return f"{scheme}:{model_name}" == split_embedder_id(spec.embedder)[0]


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"a collection name must be a non-empty string, got {name!r}")
    if name.endswith(REEMBED_SUFFIX):
        raise InvalidInput(
            f"collection names ending in {REEMBED_SUFFIX!r} are reserved for re-embedding; choose another"
        )


__all__ = ["Collection", "Database", "connect", "register_scheme"]
