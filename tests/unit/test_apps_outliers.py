"""Outliers: kNN distance and LOF from the kNN graph, and scoring new items."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import LocalOutlierFactor

import semkit
from semkit import apps
from semkit.errors import InvalidInput
from tests.support.hash_embedder import HashEmbedder

D = 16


def _clusters_and_outliers(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = [np.eye(D)[i] * 3 + 0.4 * rng.normal(size=(80, D)) for i in range(3)]
    far = np.eye(D)[10:13] * 3 + 0.1 * rng.normal(size=(3, D))  # three lone points elsewhere
    x = np.vstack([*x, far]).astype(np.float32)
    ids = [f"c{i}" for i in range(240)] + ["far0", "far1", "far2"]
    return apps.from_matrix(x, ids), x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["knn", "lof"])
def test_planted_outliers_rank_first(method: str) -> None:
    src, _ = _clusters_and_outliers()
    top = apps.outliers(src, k=10, method=method, top=5)
    assert {o.id for o in top[:3]} == {"far0", "far1", "far2"}
    assert [o.rank for o in top] == [1, 2, 3, 4, 5]
    assert top[0].score >= top[1].score >= top[4].score
    assert top[0].nearest is not None and -1 <= top[0].nearest_score <= 1


def test_lof_from_the_graph_equals_scikit_learn() -> None:
    src, unit = _clusters_and_outliers()
    ours = apps.outlier_scores(src, k=10, method="lof", exact=True)
    ref = -LocalOutlierFactor(n_neighbors=10, metric="cosine").fit(unit).negative_outlier_factor_
    np.testing.assert_allclose(ours, ref, rtol=1e-3)


def test_score_new_matches_scikit_learn_novelty_lof_and_knn_distance() -> None:
    src, unit = _clusters_and_outliers()
    rng = np.random.default_rng(5)
    new = np.vstack([np.eye(D)[0] * 3 + 0.4 * rng.normal(size=(4, D)), np.eye(D)[14:16] * 3]).astype(np.float32)
    new_unit = new / np.linalg.norm(new, axis=1, keepdims=True)
    lof = apps.score_new(src, new, k=10, method="lof")
    ref = LocalOutlierFactor(n_neighbors=10, metric="cosine", novelty=True).fit(unit)
    np.testing.assert_allclose(lof, -ref.score_samples(new_unit), rtol=1e-3)
    assert lof[4:].min() > lof[:4].max()
    knn = apps.score_new(src, new, k=10, method="knn")
    expected = 1 - np.sort(new_unit @ unit.T, axis=1)[:, ::-1][:, :10].mean(axis=1)
    np.testing.assert_allclose(knn, expected, atol=1e-5)


def test_score_new_embeds_texts_with_the_collections_model() -> None:
    emb = HashEmbedder(64)
    db = semkit.connect("memory://")
    col = db.collection("docs", model=emb)
    texts = [f"fresh fruit salad number {i % 5}" for i in range(30)]
    col.upsert(ids=[str(i) for i in range(30)], texts=texts)
    scores = apps.score_new(col, ["fresh fruit salad number 2", "quantum chromodynamics lattice"], k=5)
    assert scores[1] > scores[0]
    with pytest.raises(InvalidInput, match="embedder"):
        apps.score_new(np.eye(4, dtype=np.float32), ["text"])


def test_bad_input_is_a_clear_error() -> None:
    src, _ = _clusters_and_outliers()
    with pytest.raises(InvalidInput, match="method"):
        apps.outliers(src, method="iforest")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="k must be a positive"):
        apps.outliers(src, k=0)
    with pytest.raises(InvalidInput, match="top must be a positive"):
        apps.outliers(src, top=-1)
    with pytest.raises(InvalidInput, match="at least 2"):
        apps.outliers(np.ones((1, D), dtype=np.float32))
    with pytest.raises(InvalidInput, match="no items"):
        apps.outliers(np.zeros((0, D), dtype=np.float32))
