"""Outliers: items far from everything else, from the kNN graph alone (O(n·k) memory).

- ``knn``: the mean cosine distance (1 − similarity) to the k nearest other items. Simple,
  global: items in sparse regions score high.
- ``lof``: the Local Outlier Factor (Breunig et al., 2000) on cosine distance: an item's local
  reachability density compared with its neighbours'. ~1 inside a cluster, >1 for items less
  dense than their neighbourhood, so it also finds items on the edge of a dense cluster that a
  global distance would miss. Computed from the same graph, no n×n matrix.

``score_new`` scores items that are not in the source against it (the same scale as
``outlier_scores``): for LOF it queries only the neighbourhoods it needs (k² per item). Given a
cosine collection it never loads it: every neighbourhood is one kNN query to the store, so the
cost follows the items scored, not the collection's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInput
from ..vectors import as_matrix, normalize
from ._knn import check_k
from ._source import CollectionItems, Neighbour, Source, as_items, as_source

Method = Literal["knn", "lof"]
_EPS = 1e-10


@dataclass(frozen=True)
class Outlier:
    id: str
    score: float
    rank: int
    text: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    nearest: str | None = None
    """Its most similar other item, for context."""
    nearest_score: float | None = None


def outliers(source: Any, k: int = 10, method: Method = "knn", top: int = 20, *,
             exact: bool | None = None) -> list[Outlier]:
    """The ``top`` most outlying items, highest score first."""
    top = check_k(top, "top")
    src = as_source(source, exact=exact)
    scores, graph_idx, graph_sc = _scores(src, k, method)
    order = np.argsort(-scores, kind="stable")[:top]
    out = []
    for rank, i in enumerate(order.tolist(), 1):
        j = int(graph_idx[i, 0])
        out.append(Outlier(
            id=src.ids[i], score=round(float(scores[i]), 6), rank=rank, text=src.texts[i],
            metadata=src.metadata[i], nearest=src.ids[j] if j >= 0 else None,
            nearest_score=round(float(graph_sc[i, 0]), 6) if j >= 0 else None,
        ))
    return out


def outlier_scores(source: Any, k: int = 10, method: Method = "knn", *, exact: bool | None = None) -> np.ndarray:
    """The outlier score of every item, aligned with the source's ids (higher = more outlying)."""
    src = as_source(source, exact=exact)
    return _scores(src, k, method)[0]


def score_new(source: Any, items: Any, k: int = 10, method: Method = "knn", *,
              exact: bool | None = None) -> np.ndarray:
    """Outlier scores of new ``items`` (vectors, or texts embedded with the source's model)
    against the source, on the scale of ``outlier_scores``."""
    _check_method(method)
    k = check_k(k)
    items_of = as_items(source, exact=exact)
    if isinstance(items_of, CollectionItems):
        return _score_new_in_store(items_of, items, k, method)
    src = items_of
    if len(src) < 2:
        raise InvalidInput("need at least 2 items in the source to score against")
    k = min(k, len(src) - 1)
    queries = _as_queries(src, items)
    idx, sc = src.search(queries, k)
    dist = _distance(sc)
    if method == "knn":
        return dist.mean(axis=1)
    # LOF of a new point needs its neighbours' k-distance and density, which need their
    # own neighbours' k-distance: two rings of the graph, nothing more
    ring1 = np.unique(idx[idx >= 0])
    g1 = src.graph(k, rows=ring1)
    ring2 = np.unique(np.concatenate([ring1, g1.indices[g1.indices >= 0]]))
    g2 = src.graph(k, rows=ring2)
    kdist = np.zeros(len(src))
    kdist[ring2] = _distance(g2.scores)[:, -1]
    lrd = np.zeros(len(src))
    lrd[ring1] = _lrd(_distance(g1.scores), g1.indices, kdist)
    new_lrd = _lrd(dist, idx, kdist)
    return _mean_over(lrd, idx) / np.maximum(new_lrd, _EPS)


def _score_new_in_store(items_of: CollectionItems, items: Any, k: int, method: Method) -> np.ndarray:
    """``score_new`` through the store's kNN search: the same formulas as over a loaded
    source, with each neighbourhood read once and kept for the call."""
    col = items_of.collection
    n = col.store.count(col.name)
    if n < 2:
        raise InvalidInput("need at least 2 items in the source to score against")
    k = min(k, n - 1)
    queries = _as_queries(items_of, items)
    need_vectors = method == "lof"
    hoods = [items_of.nearest(q, k, vectors=need_vectors) for q in queries]
    dist = np.stack([_distance(np.asarray([h.score for h in hood], dtype=np.float32)) for hood in hoods])
    if method == "knn":
        return dist.mean(axis=1)
    others: dict[str, list[Neighbour]] = {}

    def neighbours(item: Neighbour) -> list[Neighbour]:
        # an item's k nearest OTHER items (one extra asked for, itself dropped), as Source.graph
        if item.id not in others:
            assert item.vector is not None
            found = items_of.nearest(item.vector, k + 1, vectors=True)
            others[item.id] = [h for h in found if h.id != item.id][:k]
        return others[item.id]

    def k_distance(item: Neighbour) -> float:
        return float(_distance(np.asarray([neighbours(item)[-1].score]))[0])

    def density(item_dist: np.ndarray, hood: list[Neighbour]) -> float:
        reach = np.maximum(np.asarray([k_distance(h) for h in hood]), item_dist)
        return float(1.0 / (reach.mean() + _EPS))

    scores = np.empty(len(hoods))
    for i, hood in enumerate(hoods):
        hood_density = np.asarray([
            density(_distance(np.asarray([h.score for h in neighbours(b)], dtype=np.float32)), neighbours(b))
            for b in hood
        ])
        scores[i] = hood_density.mean() / max(density(dist[i], hood), _EPS)
    return scores


# --- scoring -------------------------------------------------------------------------------


def _check_method(method: str) -> None:
    if method not in ("knn", "lof"):
        raise InvalidInput(f"method must be 'knn' or 'lof', got {method!r}")


def _scores(src: Source, k: int, method: Method) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _check_method(method)
    k = check_k(k)
    if len(src) < 2:
        raise InvalidInput("outliers need at least 2 items")
    k = min(k, len(src) - 1)
    graph = src.graph(k)
    dist = _distance(graph.scores)
    if method == "knn":
        return dist.mean(axis=1), graph.indices, graph.scores
    kdist = dist[:, -1]
    lrd = _lrd(dist, graph.indices, kdist)
    return _mean_over(lrd, graph.indices) / np.maximum(lrd, _EPS), graph.indices, graph.scores


def _distance(scores: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - scores.astype(np.float64), 0.0, 2.0)


def _lrd(dist: np.ndarray, idx: np.ndarray, kdist: np.ndarray) -> np.ndarray:
    """Local reachability density: 1 / mean reach-distance, reach(a, b) = max(kdist(b), d(a, b))."""
    reach = np.maximum(kdist[np.maximum(idx, 0)], dist)
    # sklearn's LocalOutlierFactor adds the same 1e-10 so that exact duplicates stay finite
    return 1.0 / (reach.mean(axis=1) + _EPS)


def _mean_over(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return values[np.maximum(idx, 0)].mean(axis=1)


def _as_queries(src: Source | CollectionItems, items: Any) -> np.ndarray:
    if isinstance(items, str) or (isinstance(items, Sequence) and items and isinstance(items[0], str)):
        return src.embed([items] if isinstance(items, str) else list(items), "document")
    if isinstance(items, Sequence) and not items:
        raise InvalidInput("no items to score: pass at least one vector or text")
    return normalize(as_matrix(items, src.dimensions))


__all__ = ["Outlier", "outlier_scores", "outliers", "score_new"]
