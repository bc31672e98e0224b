"""The apps' view of their input (collection or matrix) and the kNN graph under every app."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import semkit
from semkit import apps
from semkit.apps._knn import MatrixIndex, _numpy_topk, knn_graph
from semkit.errors import InvalidInput

D = 24


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute_graph(x: np.ndarray, k: int) -> np.ndarray:
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def test_exact_graph_equals_brute_force_and_never_contains_the_item_itself() -> None:
    x = _vectors(500)
    index = MatrixIndex(x, exact=True)
    graph = knn_graph(x, 8, index.search, batch_size=128)
    assert graph.indices.shape == (500, 8) and graph.k == 8
    np.testing.assert_array_equal(graph.indices, _brute_graph(x, 8))
    assert not (graph.indices == np.arange(500)[:, None]).any()
    assert np.all(np.diff(graph.scores, axis=1) <= 1e-6)


def test_exact_duplicates_do_not_leave_the_item_in_its_own_list() -> None:
    x = _vectors(50)
    x[1] = x[0]
    x[2] = x[0]
    graph = apps.from_matrix(x, exact=True).graph(3)
    assert set(graph.indices[0, :2].tolist()) == {1, 2}
    assert not (graph.indices == np.arange(50)[:, None]).any()


def test_hnsw_graph_has_high_recall() -> None:
    x = _vectors(3000, seed=1)
    approx = knn_graph(x, 10, MatrixIndex(x, exact=False).search)
    truth = _brute_graph(x, 10)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approx.indices.tolist(), truth.tolist(), strict=True)])
    assert recall > 0.9


def test_numpy_fallback_equals_faiss() -> None:
    x = _vectors(300, seed=2)
    q = _vectors(20, seed=3)
    idx, sc = _numpy_topk(x, q, 5)
    fidx, fsc = MatrixIndex(x, exact=True).search(q, 5)
    np.testing.assert_array_equal(idx, fidx)
    np.testing.assert_allclose(sc, fsc, atol=1e-5)


@pytest.mark.parametrize("uri", ["memory://", "folder"])
def test_a_collection_gives_the_same_items_and_neighbours_as_its_matrix(tmp_path, uri: str) -> None:
    x = _vectors(120, seed=4)
    ids = [f"id{i:03d}" for i in range(120)]
    db = semkit.connect("memory://" if uri == "memory://" else str(tmp_path / "db"))
    col = db.collection("c", model=None, dimensions=D)
    col.upsert(ids=ids, vectors=x, texts=[f"t{i}" for i in range(120)], metadata=[{"i": i} for i in range(120)])
    src = apps.as_source(col)
    order = [src.ids.index(i) for i in ids]
    np.testing.assert_allclose(src.vectors[order], x, atol=1e-6)
    assert src.texts[order[5]] == "t5" and src.metadata[order[5]] == {"i": 5}
    graph = src.graph(5)
    got = [[src.ids[j] for j in row] for row in graph.indices[order].tolist()]
    want = [[ids[j] for j in row] for row in _brute_graph(x, 5).tolist()]
    assert got == want
    db.close()


def test_matrix_inputs_are_checked() -> None:
    with pytest.raises(InvalidInput, match="ids"):
        apps.from_matrix(_vectors(3), ids=["a", "b"])
    with pytest.raises(InvalidInput, match="unique"):
        apps.from_matrix(_vectors(2), ids=["a", "a"])
    with pytest.raises(InvalidInput, match="cannot use"):
        apps.as_source({"not": "items"})
    src = apps.as_source((["a", "b", "c"], _vectors(3), ["x", "y", "z"]))
    assert src.ids == ["a", "b", "c"] and src.texts == ["x", "y", "z"]
    with pytest.raises(InvalidInput, match="'zz'"):
        src.rows(["a", "zz"])


def test_importing_apps_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, semkit.apps;"
        "print(','.join(m for m in ('torch', 'sklearn', 'faiss', 'scipy', 'onnxruntime', 'umap')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
