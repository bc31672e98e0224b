"""One contract suite, every backend: the fixtures that open each ``VectorStore``.

``BACKENDS`` maps a name to a factory; add a backend (qdrant...) by adding one entry.
``SEMKIT_CONTRACT_BACKENDS=memory,embedded`` runs a subset. A backend whose module is not
importable yet is skipped with the reason; the PostgreSQL one needs the session fixture
``postgres_dsn`` (tests/support/fixtures.py) and carries the ``postgres`` marker.

Stores may be shared (PostgreSQL is one server for the session), so every test uses unique
collection names and the ``store`` fixture drops whatever a test created.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semkit.store.base import CollectionSpec, VectorStore
from semkit.types import Metric

Factory = Callable[[pytest.FixtureRequest, Path], VectorStore]


def _memory(request: pytest.FixtureRequest, path: Path) -> VectorStore:
    from semkit.store.memory import MemoryStore

    return MemoryStore()


def _embedded(request: pytest.FixtureRequest, path: Path) -> VectorStore:
    module = pytest.importorskip("semkit.store.embedded", reason="semkit.store.embedded is not importable yet")
    return module.EmbeddedStore(path)


def _pgvector(request: pytest.FixtureRequest, path: Path) -> VectorStore:
    try:
        dsn = request.getfixturevalue("postgres_dsn")
    except pytest.FixtureLookupError:
        pytest.skip("no postgres_dsn fixture in tests/support/fixtures.py")
    module = pytest.importorskip("semkit.store.pgvector", reason="semkit.store.pgvector is not importable yet")
    return module.PgVectorStore(dsn)


def _qdrant(request: pytest.FixtureRequest, path: Path) -> VectorStore:
    pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install 'semkit[qdrant]')")
    module = pytest.importorskip("semkit.store.qdrant", reason="semkit.store.qdrant is not importable yet")
    return module.QdrantStore(str(path), local=True)


BACKENDS: dict[str, Factory] = {
    "memory": _memory,
    "embedded": _embedded,
    "pgvector": _pgvector,
    "qdrant": _qdrant,
}
MARKS: dict[str, list[pytest.MarkDecorator]] = {"pgvector": [pytest.mark.postgres]}


def _selected() -> list[Any]:
    wanted = os.environ.get("SEMKIT_CONTRACT_BACKENDS")
    names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else list(BACKENDS)
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"SEMKIT_CONTRACT_BACKENDS names unknown backends {sorted(unknown)}")
    return [pytest.param(n, marks=MARKS.get(n, []), id=n) for n in names]


@pytest.fixture(scope="module", params=_selected())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def unique(prefix: str = "c") -> str:
    """A collection name no other test (or run against a shared server) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def name() -> str:
    return unique()


def _open(backend: str, request: pytest.FixtureRequest, path: Path) -> Iterator[VectorStore]:
    store = BACKENDS[backend](request, path)
    before = {s.name for s in store.list_collections()}
    try:
        yield store
    finally:
        try:
            for spec in store.list_collections():
                if spec.name not in before:
                    store.drop_collection(spec.name)
        finally:
            store.close()


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    """A store of the backend under test; collections the test creates are dropped after it."""
    yield from _open(backend, request, tmp_path / "store")


# --- a loaded data set shared by the read-only tests of a module --------------------------

N_RECORDS = 2_000
DIMS = 16
TAGS = ("alpha", "beta", "Gamma", "delta", "épsilon")
NAMES = ("ada", "Bob", "chloé", "dan")
MIXED = (3, "3", True, 3.0, None, [3], {"v": 3}, 2, "2", False, 4.5, "x")


def make_metadata(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    """Metadata exercising every filter corner: missing fields, nulls, bools, nested objects,
    ints and floats, strings of mixed case and accents, one field of mixed types, and a field
    present on exactly 1% of the records."""
    rare = set(rng.choice(n, size=n // 100, replace=False).tolist())
    out: list[dict[str, Any]] = []
    for i in range(n):
        meta: dict[str, Any] = {"year": int(rng.integers(2000, 2025)), "tag": TAGS[int(rng.integers(len(TAGS)))]}
        if rng.random() < 0.8:
            meta["price"] = round(float(rng.uniform(0, 100)), 2) if rng.random() < 0.7 else int(rng.integers(0, 100))
        if rng.random() < 0.7:
            meta["flag"] = bool(rng.random() < 0.5)
        roll = rng.random()
        if roll < 0.5:
            meta["author"] = {"name": NAMES[int(rng.integers(len(NAMES)))], "age": int(rng.integers(18, 80))}
        elif roll < 0.6:
            meta["author"] = {"age": int(rng.integers(18, 80))}
        elif roll < 0.65:
            meta["author"] = "anonymous"  # a scalar where others have an object
        roll = rng.random()
        if roll < 0.2:
            meta["note"] = None
        elif roll < 0.5:
            meta["note"] = ("x", "y", "long note")[int(rng.integers(3))]
        meta["mixed"] = MIXED[i % len(MIXED)]
        if i in rare:
            meta["rare"] = True
        out.append(meta)
    return out


@dataclass
class Loaded:
    """A store holding the same records in one collection per metric."""

    store: VectorStore
    names: dict[Metric, str]
    ids: list[str]
    vectors: np.ndarray  # as upserted (not normalised)
    texts: list[str | None]
    metadata: list[dict[str, Any]]

    def stored(self, metric: Metric) -> np.ndarray:
        """Vectors as the store holds them: cosine collections keep unit vectors."""
        if metric == "cosine":
            return self.vectors / np.linalg.norm(self.vectors, axis=1, keepdims=True)
        return self.vectors


WORDS = ("river", "stone", "light", "cloud", "green", "quiet", "fast", "ocean", "paper", "north")


@pytest.fixture(scope="module")
def loaded(backend: str, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    rng = np.random.default_rng(20_26)
    ids = [f"r{i:05d}" for i in range(N_RECORDS)]
    vectors = rng.normal(size=(N_RECORDS, DIMS)).astype(np.float32)
    metadata = make_metadata(rng, N_RECORDS)
    texts: list[str | None] = [
        None if i % 10 == 0 else " ".join(WORDS[j] for j in rng.choice(len(WORDS), size=4))
        for i in range(N_RECORDS)
    ]
    for store in _open(backend, request, tmp_path_factory.mktemp("loaded")):
        names: dict[Metric, str] = {}
        for metric in ("cosine", "dot", "l2"):
            names[metric] = unique(f"loaded_{metric}")
            store.create_collection(CollectionSpec(name=names[metric], dimensions=DIMS, metric=metric,
                                                   normalized=metric == "cosine"))
            for start in range(0, N_RECORDS, 500):
                part = slice(start, start + 500)
                store.upsert(names[metric], ids[part], vectors[part], texts[part], metadata[part])
        yield Loaded(store, names, ids, vectors, texts, metadata)
