"""Which stores ``connect`` can open: one descriptor per backend, with its URI schemes, the
factory that opens it and what it can do.

``database.connect`` finds a URI's backend here; ``capacity`` reads the storage dtypes; the
contract suite (``tests/contract``) checks every declared capability against the backend
itself, so this table cannot drift from the code. ``database.register_scheme`` adds a backend
of the caller's own (its capabilities unknown).

Factories import their backend when called, so opening an embedded store never imports
psycopg or qdrant-client. The arrow points one way: no backend module imports this one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from ..types import STORAGE_DTYPES, StorageDtype
from .base import VectorStore

StoreFactory = Callable[..., VectorStore]
"""``factory(target, **options)``: ``target`` is the path after ``scheme://`` for local stores,
the whole URI for servers (see ``StoreBackend.pass_uri``)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, for the callers that choose or explain a store."""

    keyword_search: Literal["native", "python"]
    """``native``: the database's own full-text engine (SQLite FTS5, PostgreSQL ``tsvector``);
    ``python``: the BM25 of ``store/keyword.py`` over a scan of the collection per query."""
    ann_index: Literal["hnsw"] | None
    """The approximate index big collections are searched with; ``None``: every search is exact."""
    dtypes: tuple[StorageDtype, ...]
    """The ``CollectionSpec.dtype`` values it accepts; others are a ``ConfigError``."""
    needs_server: bool
    """Whether it talks to a server (PostgreSQL, Qdrant) rather than a folder or process memory."""
    persistent: bool
    """Whether the data outlives the process."""
    atomic_upsert: bool
    """Whether one upsert lands whole or not at all (Qdrant writes large upserts batch by batch)."""


@dataclass(frozen=True)
class StoreBackend:
    """One way to open a store: the schemes that name it and the factory that opens it."""

    name: str
    schemes: tuple[str, ...]
    factory: StoreFactory
    pass_uri: bool
    """Whether the factory takes the whole URI (a server address) or the path after ``scheme://``."""
    capabilities: Capabilities | None = None
    """``None`` for a backend added with ``register_scheme``, which declares none."""
    extra: str | None = None
    """The pip extra its dependencies come with (``pip install 'semkit[<extra>]'``)."""

    def open(self, target: str, **options: Any) -> VectorStore:
        return self.factory(target, **options)


def _embedded(target: str, **options: Any) -> VectorStore:
    from .embedded import EmbeddedStore

    return EmbeddedStore(target, **options)


def _pgvector(target: str, **options: Any) -> VectorStore:
    from .pgvector import PgVectorStore

    return PgVectorStore(target, **options)


def _qdrant(target: str, **options: Any) -> VectorStore:
    from .qdrant import QdrantStore

    return QdrantStore(target, **options)


def _qdrant_local(target: str, **options: Any) -> VectorStore:
    from .qdrant import QdrantStore

    return QdrantStore(target, local=True, **options)


def _memory(target: str, **options: Any) -> VectorStore:
    from .memory import MemoryStore

    if options:
        raise ConfigError(f"memory:// takes no options, got {', '.join(sorted(options))}")
    return MemoryStore()


EMBEDDED = StoreBackend(
    "embedded", ("file",), _embedded, pass_uri=False,
    capabilities=Capabilities(keyword_search="native", ann_index="hnsw", dtypes=STORAGE_DTYPES,
                              needs_server=False, persistent=True, atomic_upsert=True),
)
"""The default: one folder (SQLite + a derived HNSW file); a plain path opens it too."""

BUILT_IN: tuple[StoreBackend, ...] = (
    EMBEDDED,
    StoreBackend(
        "pgvector", ("postgresql", "postgres"), _pgvector, pass_uri=True, extra="postgres",
        capabilities=Capabilities(keyword_search="native", ann_index="hnsw",
                                  dtypes=("float32", "float16", "binary"), needs_server=True, persistent=True,
                                  atomic_upsert=True),
    ),
    StoreBackend(
        "qdrant", ("qdrant",), _qdrant, pass_uri=True, extra="qdrant",
        capabilities=Capabilities(keyword_search="python", ann_index="hnsw", dtypes=("float32",),
                                  needs_server=True, persistent=True, atomic_upsert=False),
    ),
    StoreBackend(
        "qdrant-local", ("qdrant+local",), _qdrant_local, pass_uri=False, extra="qdrant",
        capabilities=Capabilities(keyword_search="python", ann_index=None, dtypes=("float32",),
                                  needs_server=False, persistent=True, atomic_upsert=False),
    ),
    StoreBackend(
        "memory", ("memory",), _memory, pass_uri=False,
        capabilities=Capabilities(keyword_search="python", ann_index=None, dtypes=STORAGE_DTYPES,
                                  needs_server=False, persistent=False, atomic_upsert=True),
    ),
)

SCHEMES: dict[str, StoreBackend] = {scheme: b for b in BUILT_IN for scheme in b.schemes}
"""Every scheme ``connect`` knows, built-in and registered."""


def register(backend: StoreBackend) -> None:
    """Let ``connect`` open ``backend``'s schemes (replacing a backend of the same scheme)."""
    for scheme in backend.schemes:
        SCHEMES[scheme.lower()] = backend


_LIBPQ_KEYWORDS = re.compile(r"(?:^|\s)(?:dbname|host|user|port|password)=\S")
"""``host=... dbname=...`` would otherwise become an embedded folder of that name, silently."""


def find(uri: str) -> tuple[StoreBackend, str]:
    """The backend a database URI names, and the target its factory takes; a plain path is the
    embedded store's folder."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        if _LIBPQ_KEYWORDS.search(uri):
            raise ConfigError(f"{uri!r} looks like a libpq connection string, not a folder; semkit takes PostgreSQL "
                              "as a URI: postgresql://USER:PASSWORD@HOST:PORT/DBNAME")
        return EMBEDDED, uri
    backend = SCHEMES.get(scheme.lower())
    if backend is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError(f"unknown database scheme {scheme!r} in {uri!r}; use a folder path or one of {known}")
    return backend, uri if backend.pass_uri else rest


def backend(name: str) -> StoreBackend:
    """A built-in backend by name (``embedded``, ``pgvector``, ``qdrant``, ``qdrant-local``, ``memory``)."""
    for candidate in BUILT_IN:
        if candidate.name == name:
            return candidate
    raise ConfigError(f"unknown store backend {name!r}; use one of {', '.join(b.name for b in BUILT_IN)}")


def capabilities(name: str) -> Capabilities:
    """What a built-in backend can do."""
    declared = backend(name).capabilities
    assert declared is not None, f"built-in backend {name!r} declares no capabilities"
    return declared


__all__ = ["BUILT_IN", "SCHEMES", "Capabilities", "StoreBackend", "StoreFactory", "backend", "capabilities",
           "find", "register"]
