"""Reading a Chroma persistent folder (``chromadb.PersistentClient(path=...)``) through the real
``chromadb`` package (the ``chroma`` extra): its collections, their distance space, and their
records (ids, documents, metadatas, embeddings) in batches, vectors exactly as Chroma stored them.

Chroma's spaces are semkit's metrics: ``cosine`` -> ``cosine``, ``ip`` -> ``dot``, ``l2`` (Chroma's
default, the squared distance) -> ``l2``; every one ranks neighbours the same way in both. The folder
is only read; the writing side is ``semkit.importers.import_chroma``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput, MissingDependency
from ..types import Metric
from .base import Record

_SPACES: dict[str, Metric] = {"cosine": "cosine", "ip": "dot", "l2": "l2"}
_MARKER = "chroma.sqlite3"
"""The file every Chroma persistent folder holds."""


@dataclass(frozen=True)
class ChromaCollection:
    """What a Chroma collection is, as far as importing it needs."""

    name: str
    count: int
    metric: Metric
    dimensions: int | None
    """The length of its vectors (``None``: the collection is empty)."""
    embedding_function: str | None
    """The embedding function Chroma recorded for it (``"default"`` is all-MiniLM-L6-v2), if any."""


def list_collections(path: str | os.PathLike[str]) -> list[ChromaCollection]:
    """The collections of the Chroma folder ``path``, by name."""
    client = _client(path)
    found = []
    for listed in client.list_collections():
        collection = client.get_collection(_name(listed))
        first = collection.get(limit=1, include=["embeddings"])
        vectors = first.get("embeddings")
        dimensions = len(vectors[0]) if vectors is not None and len(vectors) else None
        found.append(ChromaCollection(
            name=collection.name, count=collection.count(), metric=_metric(collection),
            dimensions=dimensions, embedding_function=_embedding_function(collection),
        ))
    return sorted(found, key=lambda c: c.name)


def read_collection(path: str | os.PathLike[str], name: str, batch_size: int = 1_000) -> Iterator[list[Record]]:
    """The records of Chroma collection ``name``, ``batch_size`` at a time, in Chroma's order."""
    client = _client(path)
    collection = client.get_collection(name)
    offset = 0
    while True:
        page = collection.get(limit=batch_size, offset=offset,
                              include=["embeddings", "documents", "metadatas"])
        ids = page["ids"]
        if not ids:
            return
        vectors = np.asarray(page["embeddings"], dtype=np.float32)
        documents = page.get("documents") or [None] * len(ids)
        metadatas = page.get("metadatas") or [None] * len(ids)
        yield [
            # A blank document is no text (semkit texts are non-empty); metadata None is {}.
            Record(id=i, vector=vectors[n], text=d if isinstance(d, str) and d.strip() else None,
                   metadata=dict(m) if m else {})
            for n, (i, d, m) in enumerate(zip(ids, documents, metadatas, strict=True))
        ]
        offset += len(ids)


def _client(path: str | os.PathLike[str]) -> Any:
    # Checked first: PersistentClient would create an empty database in a mistyped folder.
    if not (Path(path) / _MARKER).is_file():
        raise InvalidInput(f"{os.fspath(path)} is not a Chroma folder (it has no {_MARKER}); give the "
                           "path you passed to chromadb.PersistentClient(path=...)")
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError:
        raise MissingDependency("chromadb", "chroma", "Importing from Chroma") from None
    try:
        return chromadb.PersistentClient(path=os.fspath(path), settings=Settings(anonymized_telemetry=False))
    except ValueError:
        # This process opened the folder already, with its own settings: Chroma allows one client
        # configuration per folder, so reuse it.
        return chromadb.PersistentClient(path=os.fspath(path))


def _name(listed: Any) -> str:
    return listed if isinstance(listed, str) else str(listed.name)


def _metric(collection: Any) -> Metric:
    config = getattr(collection, "configuration", None) or {}
    space = None
    for index in ("hnsw", "spann"):
        part = config.get(index) if isinstance(config, dict) else None
        if isinstance(part, dict) and part.get("space"):
            space = part["space"]
            break
    space = space or (collection.metadata or {}).get("hnsw:space") or "l2"
    if space not in _SPACES:
        raise InvalidInput(f"Chroma collection {collection.name!r} uses the space {space!r}, which semkit "
                           f"has no metric for (it knows {', '.join(_SPACES)})")
    return _SPACES[space]


def _embedding_function(collection: Any) -> str | None:
    config = getattr(collection, "configuration", None) or {}
    function = config.get("embedding_function") if isinstance(config, dict) else None
    if function is None:
        return None
    name = function.get("name") if isinstance(function, dict) else getattr(function, "name", None)
    if callable(name):
        name = name()
    return str(name) if name else None
