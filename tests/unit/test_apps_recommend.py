"""Recommendations: item-to-item, Rocchio profiles with dislikes, MMR diversity, filters."""

from __future__ import annotations

import numpy as np
import pytest

import semkit
from semkit import apps
from semkit.errors import InvalidInput

D = 16


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _two_sided(seed: int = 0):
    """A liked item L on e1; group P leans towards +e2, group Q towards -e2, both equally close
    to L; D (disliked) sits on the P side."""
    rng = np.random.default_rng(seed)
    e = np.eye(D)
    p = _unit(e[0] + 0.4 * e[1] + 0.05 * rng.normal(size=(10, D)))
    q = _unit(e[0] - 0.4 * e[1] + 0.05 * rng.normal(size=(10, D)))
    liked = _unit(e[0])[None, :]
    disliked = _unit(0.3 * e[0] + e[1])[None, :]
    x = np.vstack([liked, disliked, p, q])
    ids = ["L", "D"] + [f"p{i}" for i in range(10)] + [f"q{i}" for i in range(10)]
    meta = [{"side": "none"}, {"side": "none"}] + [{"side": "p"}] * 10 + [{"side": "q"}] * 10
    return apps.from_matrix(x, ids, metadata=meta)


def test_more_like_this_is_exact_nearest_neighbours_without_the_item() -> None:
    x = _unit(np.random.default_rng(1).normal(size=(200, D)))
    recs = apps.recommend(x, liked=["7"], k=10)
    sims = x @ x[7]
    sims[7] = -np.inf
    assert [r.id for r in recs] == [str(i) for i in np.argsort(-sims)[:10]]
    assert [r.rank for r in recs] == list(range(1, 11))
    assert recs[0].score == pytest.approx(float(np.sort(sims)[-1]), abs=1e-5)


def test_disliked_items_push_results_away() -> None:
    src = _two_sided()
    plain = apps.recommend(src, liked=["L"], k=10)
    assert {r.id[0] for r in plain} == {"p", "q"}  # both sides equally close
    pushed = apps.recommend(src, liked=["L"], disliked=["D"], k=10)
    assert all(r.id.startswith("q") for r in pushed)
    assert "D" not in {r.id for r in pushed} and "L" not in {r.id for r in pushed}


def test_weights_shape_the_profile() -> None:
    src = _two_sided()
    only_l = [r.id for r in apps.recommend(src, liked=["L"], k=6) if r.id != "p0"][:5]
    weighted = apps.recommend(src, liked=["L", "p0"], weights={"L": 1.0, "p0": 0.0}, k=5)
    assert [r.id for r in weighted] == only_l  # weight 0: p0 only counts as seen
    towards_p = apps.recommend(src, liked=["L", "p0"], weights=[0.2, 1.0], k=5)
    assert all(r.id.startswith("p") for r in towards_p)


def test_diversity_trades_relevance_for_variety() -> None:
    rng = np.random.default_rng(3)
    e = np.eye(D)
    liked = _unit(e[0])
    near_copies = _unit(e[0] + 0.5 * e[1] + 0.01 * rng.normal(size=(8, D)))  # all alike, sim ~0.89
    spread = _unit(e[0] + 0.6 * e[2:8])  # six different directions, sim ~0.86, unlike each other
    x = np.vstack([liked, near_copies, spread])
    ids = ["L"] + [f"n{i}" for i in range(8)] + [f"s{i}" for i in range(6)]
    src = apps.from_matrix(x, ids)
    relevant = apps.recommend(src, liked=["L"], k=5)
    diverse = apps.recommend(src, liked=["L"], k=5, diversity=0.7)
    assert all(r.id.startswith("n") for r in relevant)
    assert sum(r.id.startswith("s") for r in diverse) >= 3

    def mean_pairwise(recs):
        v = x[[ids.index(r.id) for r in recs]]
        s = v @ v.T
        return (s.sum() - len(v)) / (len(v) * (len(v) - 1))

    assert mean_pairwise(diverse) < mean_pairwise(relevant) - 0.2


def test_where_filters_the_candidates_on_a_matrix_and_in_a_store() -> None:
    src = _two_sided()
    recs = apps.recommend(src, liked=["L"], k=5, where={"side": "q"})
    assert len(recs) == 5 and all(r.metadata["side"] == "q" for r in recs)
    db = semkit.connect("memory://")
    col = db.collection("items", model=None, dimensions=D)
    col.upsert(ids=src.ids, vectors=src.vectors, metadata=src.metadata)
    in_store = apps.recommend(col, liked=["L"], k=5, where={"side": {"$in": ["q"]}})
    assert [r.id for r in in_store] == [r.id for r in recs]


def test_bad_input_is_a_clear_error() -> None:
    src = _two_sided()
    with pytest.raises(InvalidInput, match="'nope'"):
        apps.recommend(src, liked=["L", "nope"])
    with pytest.raises(InvalidInput, match="disliked"):
        apps.recommend(src, liked=["L"], disliked=["ghost"])
    with pytest.raises(InvalidInput, match="k must be a positive"):
        apps.recommend(src, liked=["L"], k=0)
    with pytest.raises(InvalidInput, match="diversity"):
        apps.recommend(src, liked=["L"], diversity=1.5)
    with pytest.raises(InvalidInput, match="both liked and disliked"):
        apps.recommend(src, liked=["L"], disliked=["L"])
    with pytest.raises(InvalidInput, match="at least one liked"):
        apps.recommend(src, liked=[])
    with pytest.raises(InvalidInput, match="weights"):
        apps.recommend(src, liked=["L"], weights=[1.0, 2.0])
    db = semkit.connect("memory://")
    with pytest.raises(InvalidInput, match="empty"):
        apps.recommend(db.collection("e", model=None, dimensions=D), liked=["x"])
