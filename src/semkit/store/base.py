"""The ``VectorStore`` contract: small and backend-neutral.

A store keeps named collections of records (id, vector, optional text, metadata JSON) and
answers k-nearest-neighbour queries. It knows nothing about models: the ``Collection`` layer
(``semkit.collection``) embeds texts and hands the store finished vectors. Every backend passes
the same contract test suite (``tests/contract``), with ``MemoryStore`` as the reference.

Scores are "higher is better" for every metric: cosine similarity, dot product, and *negated*
Euclidean distance for L2.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..types import Matrix, Metric, StorageDtype
from .filters import Node


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection is: its name and the fingerprint of the vectors it holds.

    ``embedder`` is the embedder id (``local:all-MiniLM-L6-v2@384``) or ``None`` for a
    bring-your-own-vectors collection. Secrets never go here.
    """

    name: str
    dimensions: int
    metric: Metric = "cosine"
    embedder: str | None = None
    dtype: StorageDtype = "float32"
    normalized: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder,
            "dimensions": self.dimensions,
            "metric": self.metric,
            "dtype": self.dtype,
            "normalized": self.normalized,
        }

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.fingerprint(), "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CollectionSpec:
        return cls(
            name=data["name"], dimensions=int(data["dimensions"]), metric=data["metric"],
            embedder=data.get("embedder"), dtype=data.get("dtype", "float32"),
            normalized=bool(data.get("normalized", True)), options=dict(data.get("options") or {}),
        )


@dataclass
class Record:
    id: str
    vector: np.ndarray | None = None
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Neighbors:
    """k-NN answer for one query: ids and scores, best first."""

    ids: list[str]
    scores: np.ndarray


@runtime_checkable
class VectorStore(Protocol):
    """Where vectors live. Methods take the collection name; ids are strings."""

    def create_collection(self, spec: CollectionSpec) -> None:
        """Create it; raise ``StoreError`` if a collection of that name exists."""

    def get_collection(self, name: str) -> CollectionSpec | None: ...

    def list_collections(self) -> list[CollectionSpec]: ...

    def drop_collection(self, name: str) -> None:
        """Remove it and all its records; ``CollectionNotFound`` if absent."""

    def rename_collection(self, old: str, new: str) -> None:
        """Atomically replace ``new`` (if it exists) with ``old``: the re-embed switch."""

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: Matrix,
        texts: Sequence[str | None] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Insert or replace whole records. Atomic per call: all rows land or none."""

    def update_metadata(self, name: str, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> int:
        """Replace the metadata of existing records; return how many existed."""

    def delete(self, name: str, ids: Sequence[str] | None = None, where: Node | None = None) -> int:
        """Delete by ids, by filter, or both (intersection); return how many were removed."""

    def get(self, name: str, ids: Sequence[str], include_vectors: bool = False) -> list[Record]:
        """Records for the ids that exist, in the order asked."""

    def texts(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        """Stored text for each existing id (lets the collection skip unchanged texts)."""

    def count(self, name: str, where: Node | None = None) -> int: ...

    def scan(
        self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
        where: Node | None = None,
    ) -> Iterator[list[Record]]:
        """Every record, in batches, with bounded memory."""

    def query(
        self, name: str, vectors: Matrix, k: int, where: Node | None = None,
        exact: bool = False, ef: int | None = None,
    ) -> list[Neighbors]:
        """Top-k per query row. With a filter, the result is the exact top-k among matches."""

    def keyword_query(self, name: str, text: str, k: int, where: Node | None = None) -> Neighbors:
        """BM25-style full-text search with the backend's own engine."""

    def close(self) -> None: ...


def check_spec(spec: CollectionSpec) -> None:
    """What every backend requires of a new collection (backends add their own limits)."""
    from ..errors import InvalidInput
    from ..types import METRICS

    if not isinstance(spec.name, str) or not spec.name:
        raise InvalidInput("a collection needs a non-empty name")
    if not isinstance(spec.dimensions, int) or spec.dimensions < 1:
        raise InvalidInput(f"dimensions must be a positive integer, got {spec.dimensions!r}")
    if spec.metric not in METRICS:
        raise InvalidInput(f"unknown metric {spec.metric!r}; use one of {', '.join(METRICS)}")


def check_rows(ids: Sequence[Any], matrix: np.ndarray, texts: Any, metadata: Any) -> None:
    """One vector, and one text and metadata dict when given, per id; ids non-empty and unique."""
    from ..errors import InvalidInput

    if len(matrix) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(matrix)} vectors; pass one vector per id")
    if texts is not None and len(texts) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(texts)} texts; pass one text (or None) per id")
    if metadata is not None and len(metadata) != len(ids):
        raise InvalidInput(f"{len(ids)} ids but {len(metadata)} metadata dicts; pass one per id")
    seen: set[str] = set()
    for i in ids:
        if not isinstance(i, str) or not i:
            raise InvalidInput(f"ids must be non-empty strings, got {i!r}")
        if i in seen:
            raise InvalidInput(f"id {i!r} appears more than once in one upsert; keep one row per id")
        seen.add(i)
