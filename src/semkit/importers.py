"""Moving in from another vector store without re-embedding: a Chroma folder or a Pinecone dump
becomes semkit collections, the vectors written exactly as they were made.

    from semkit.importers import import_chroma, import_pinecone

    db = semkit.connect("./kb")
    import_chroma(db, "./chroma_db", model="local")        # every Chroma collection, same names
    import_pinecone(db, "dump.jsonl", "products")           # {"id", "values", "metadata"} per line

``model`` names the model that made the vectors (``"local"`` is all-MiniLM-L6-v2, also Chroma's
default embedding function): the collection records it, so text queries embed with the same model,
and the vectors' length is checked against it before anything is written. Without it, the
collection stores the vectors as your own (search by vector; name a model to search by text).
Nothing is ever sent to a model: imports only write vectors.

Into an existing collection, the vectors' length, the metric and the model must agree with it;
records are upserted by id, so running an import again is safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DimensionMismatch, InvalidInput
from .models.build import resolve_model
from .store import chroma_reader, io
from .store.base import Record
from .store.pinecone_layout import semkit_metric

if TYPE_CHECKING:
    from .collection import Collection
    from .database import Database
    from .models.base import Embedder
    from .types import Metric

DEFAULT_BATCH_SIZE = 1_000


@dataclass(frozen=True)
class ImportReport:
    """What one import wrote."""

    source: str
    """The Chroma collection or the file the records came from."""
    collection: str
    imported: int
    dimensions: int
    metric: str
    model: str | None
    """The model id the collection records (``None``: it stores your own vectors)."""
    hint: str | None = None
    """Something the user may want to do next (e.g. name the model to search by text)."""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "collection": self.collection, "imported": self.imported,
                "dimensions": self.dimensions, "metric": self.metric, "model": self.model, "hint": self.hint}


def import_chroma(
    db: Database, path: str | os.PathLike[str], *,
    collections: Sequence[str] | None = None,
    into: str | None = None,
    rename: Mapping[str, str] | None = None,
    model: str | Embedder | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> list[ImportReport]:
    """Import the collections of the Chroma folder ``path`` into ``db`` (needs ``semkit[chroma]``).

    ``collections``: the Chroma collections to import (default: all). ``into``: the semkit
    collection to import into when one Chroma collection is imported; ``rename``: Chroma name ->
    semkit name for several (default: the same names). ``model``: the model that made the vectors
    (see the module doc). Each collection keeps its ids, documents (as texts), metadata, vectors
    and distance space (as the metric). ``progress(n)`` is told each batch of ``n`` records written.
    Empty Chroma collections are skipped.
    """
    available = {c.name: c for c in chroma_reader.list_collections(path)}
    # All of them, less the empty ones (nothing to import, and no vector to tell their length).
    wanted = list(collections) if collections is not None else \
        sorted(n for n, c in available.items() if c.dimensions is not None)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise InvalidInput(f"no Chroma collection {missing[0]!r} in {os.fspath(path)}; it has: "
                           f"{', '.join(sorted(available)) or 'none'}")
    if into is not None:
        if len(wanted) != 1:
            raise InvalidInput(f"{os.fspath(path)} holds {len(wanted)} Chroma collections ({', '.join(wanted)}); "
                               "a target name fits one: pick it (--only NAME / collections=[NAME]) or keep their names")
        rename = {wanted[0]: into}
    unknown = [n for n in (rename or {}) if n not in wanted]
    if unknown:
        raise InvalidInput(f"rename names {unknown[0]!r}, which is not among the Chroma collections "
                           f"imported ({', '.join(wanted) or 'none'})")
    embedder = resolve_model(model, None) if model is not None else None
    reports = []
    for name in wanted:
        source = available[name]
        if source.dimensions is None:
            continue  # an empty collection has no vectors to tell its length
        target = (rename or {}).get(name, name)
        collection = _target(db, target, source.dimensions, source.metric, embedder, f"Chroma collection {name!r}")
        written = _write(collection, chroma_reader.read_collection(path, name, batch_size), progress)
        hint = None
        if embedder is None and source.embedding_function:
            hint = (f"Chroma made these vectors with its {source.embedding_function!r} embedding function; name "
                    "that model (--model local / model='local' for Chroma's default, all-MiniLM-L6-v2) to search "
                    "by text")
        reports.append(ImportReport(name, target, written, source.dimensions, source.metric,
                                    collection.spec.embedder, hint))
    return reports


def import_pinecone(
    db: Database, path: str | os.PathLike[str], name: str, *,
    model: str | Embedder | None = None,
    metric: str = "cosine",
    format: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a Pinecone-style dump (JSON Lines of ``{"id", "values", "metadata"}``, or Parquet
    with those columns, ``metadata`` as JSON text) into collection ``name``.

    ``metric``: the Pinecone index's (``cosine``, ``dotproduct``, ``euclidean``, or semkit's
    names). ``model``: the model that made the vectors (see the module doc). A string
    ``metadata["text"]`` becomes the record's text too, as the Pinecone-compatible routes do.
    ``progress(n)`` is told each batch of ``n`` records written.
    """
    chosen: Metric = semkit_metric(metric)
    embedder = resolve_model(model, None) if model is not None else None
    batches = io.read_pinecone(path, batch_size=batch_size, format=format)
    first = next(batches, None)
    if first is None:
        raise InvalidInput(f"{os.fspath(path)} holds no records")
    dimensions = len(_vector(first[0]))
    collection = _target(db, name, dimensions, chosen, embedder, os.fspath(path))
    written = _write(collection, _chain(first, batches), progress)
    return ImportReport(os.fspath(path), name, written, dimensions, chosen, collection.spec.embedder,
                        None if embedder is not None else "name the model that made the vectors "
                        "(--model / model=) to search this collection by text")


def _target(db: Database, name: str, dimensions: int, metric: Metric, embedder: Embedder | None,
            source: str) -> Collection:
    """The collection ``name`` to write ``dimensions``-long vectors to, created if needed; every
    mismatch is refused before anything is written."""
    if embedder is not None and embedder.dimensions != dimensions:
        mismatch = DimensionMismatch(embedder.dimensions, dimensions)
        mismatch.args = (f"{source} holds {dimensions}-dimensional vectors, but {embedder.id} makes "
                         f"{embedder.dimensions}: name the model that made them, or none to keep them as your own",)
        raise mismatch
    existing = db.store.get_collection(name)
    if existing is not None and existing.dimensions != dimensions:
        raise DimensionMismatch(existing.dimensions, dimensions, f"{source} into collection {name!r}")
    if embedder is not None:
        return db.collection(name, model=embedder, metric=metric)
    if existing is not None:
        return db.collection(name, metric=metric)  # its recorded model, if any, stays
    return db.collection(name, model=None, metric=metric, dimensions=dimensions)


def _write(collection: Collection, batches: Iterable[list[Record]],
           progress: Callable[[int], None] | None) -> int:
    done = 0
    for batch in batches:
        # Vectors are passed, so upsert embeds nothing; texts ride along for keyword search.
        collection.upsert(ids=[r.id for r in batch], texts=[r.text for r in batch],
                          vectors=np.stack([_vector(r, collection.dimensions) for r in batch]),
                          metadata=[r.metadata for r in batch], batch_size=max(len(batch), 1))
        done += len(batch)
        if progress is not None:
            progress(len(batch))
    return done


def _vector(record: Record, dimensions: int | None = None) -> np.ndarray:
    if record.vector is None:
        raise InvalidInput(f"record {record.id!r} has no vector; importing never embeds, so every record "
                           "needs its values")
    if dimensions is not None and len(record.vector) != dimensions:
        raise DimensionMismatch(dimensions, len(record.vector), f"record {record.id!r}")
    return record.vector


def _chain(first: list[Record], rest: Iterator[list[Record]]) -> Iterator[list[Record]]:
    yield first
    yield from rest
