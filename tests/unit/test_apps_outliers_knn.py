"""``score_new`` on a collection goes through the store's kNN search: the same scores as over
the loaded collection, and no full scan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit import apps
from semkit.apps._source import as_source
from semkit.collection import Collection
from semkit.store.base import CollectionSpec, Record
from semkit.store.memory import MemoryStore

D = 16


def _items(seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = [np.eye(D)[i] * 3 + 0.4 * rng.normal(size=(80, D)) for i in range(3)]
    x = np.vstack(x).astype(np.float32)
    return [f"c{i}" for i in range(len(x))], x


def _new_items(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    inliers = np.eye(D)[:3] * 3 + 0.4 * rng.normal(size=(3, D))
    lone = np.eye(D)[10:12] * 3 + 0.1 * rng.normal(size=(2, D))  # far from every cluster
    edge = (np.eye(D)[0] + np.eye(D)[1]) * 1.5 + 0.2 * rng.normal(size=(1, D))  # between two
    return np.vstack([inliers, lone, edge]).astype(np.float32)


@pytest.fixture(params=["embedded", "memory"])
def collection(request: pytest.FixtureRequest, tmp_path: Path) -> Collection:
    db = semkit.connect(str(tmp_path / "store") if request.param == "embedded" else "memory://")
    col = db.collection("items", model=None, dimensions=D)
    ids, x = _items()
    col.upsert(ids, vectors=x)
    return col


@pytest.mark.parametrize("method", ["knn", "lof"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_store_scores_equal_the_loaded_collection(collection: Collection, method: str, k: int) -> None:
    new = _new_items()
    expected = apps.score_new(as_source(collection, exact=True), new, k=k, method=method)
    got = apps.score_new(collection, new, k=k, method=method, exact=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the lone points score far above the points drawn from the clusters
    assert got[3:5].min() > got[:3].max()


class _CountingStore(MemoryStore):
    """A real MemoryStore that counts full scans (what a full load does)."""

    scans = 0

    def scan(self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
             where: Any = None) -> Iterator[list[Record]]:
        type(self).scans += 1
        return super().scan(name, batch_size, include_vectors, where)


@pytest.mark.parametrize("method", ["knn", "lof"])
def test_scoring_new_items_never_scans_the_collection(method: str) -> None:
    store = _CountingStore()
    spec = CollectionSpec("items", D)
    store.create_collection(spec)
    col = Collection(store, spec)
    ids, x = _items()
    col.upsert(ids, vectors=x)
    _CountingStore.scans = 0
    scores = apps.score_new(col, _new_items(), k=5, method=method)
    assert scores.shape == (6,) and _CountingStore.scans == 0


def test_a_collection_with_one_item_is_refused(tmp_path: Path) -> None:
    col = semkit.connect(str(tmp_path / "s")).collection("one", model=None, dimensions=D)
    col.upsert(["a"], vectors=np.eye(D, dtype=np.float32)[:1])
    with pytest.raises(semkit.errors.InvalidInput, match="at least 2 items"):
        apps.score_new(col, _new_items(), k=3)
