"""Recommendations: "more like this" and profile-based, with dislikes, filters and diversity.

The profile is Rocchio's: the weighted mean of the liked vectors minus ``dislike_weight`` times
the weighted mean of the disliked ones (no original query, so the liked centroid plays its
part). One liked id and nothing else is plain item-to-item similarity. Candidates come from the
source's kNN search (the store's own ``query`` for a collection, so ``where`` filters run
there); items the user has already rated are never recommended. ``diversity`` > 0 re-ranks a
larger candidate pool by maximal marginal relevance (Carbonell & Goldstein, 1998) with
λ = 1 − diversity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ._knn import check_k
from ._source import as_source

_POOL_FACTOR = 5
"""With diversity, MMR chooses among this many times k candidates."""


@dataclass(frozen=True)
class Recommendation:
    id: str
    score: float
    """Cosine similarity to the profile (the relevance MMR starts from)."""
    text: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rank: int = 0


def recommend(
    source: Any,
    liked: Sequence[str] | str,
    disliked: Sequence[str] = (),
    k: int = 10,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    diversity: float = 0.0,
    where: Mapping[str, Any] | None = None,
    *,
    dislike_weight: float = 0.5,
    exact: bool | None = None,
) -> list[Recommendation]:
    """The ``k`` items most like what was liked and least like what was disliked.

    ``weights``: per-item weights, either a mapping ``id -> weight`` (liked or disliked ids;
    default 1) or a list aligned with ``liked``. ``diversity`` in [0, 1]: 0 is pure relevance,
    higher trades relevance for variety among the results. ``where`` is a metadata filter.
    """
    k = check_k(k)
    liked_ids = [liked] if isinstance(liked, str) else list(liked)
    disliked_ids = [disliked] if isinstance(disliked, str) else list(disliked)
    if not liked_ids:
        raise InvalidInput("recommend needs at least one liked id to build a profile from")
    if not 0.0 <= float(diversity) <= 1.0:
        raise InvalidInput(f"diversity must be between 0 (relevance only) and 1, got {diversity!r}")
    if dislike_weight < 0:
        raise InvalidInput(f"dislike_weight must be >= 0, got {dislike_weight!r}")
    overlap = set(liked_ids) & set(disliked_ids)
    if overlap:
        raise InvalidInput(f"ids both liked and disliked: {sorted(overlap)[:5]}; keep each in one list")
    src = as_source(source, exact=exact)
    liked_rows = src.rows(liked_ids, "liked ids")
    disliked_rows = src.rows(disliked_ids, "disliked ids") if disliked_ids else np.empty(0, np.int64)
    w_liked, w_disliked = _weights(weights, liked_ids, disliked_ids)
    profile = _profile(src.vectors, liked_rows, w_liked, disliked_rows, w_disliked, dislike_weight)

    seen = set(liked_rows.tolist()) | set(disliked_rows.tolist())
    pool = k * _POOL_FACTOR if diversity > 0 else k
    rows, scores = src.search(profile[None, :], min(pool + len(seen), len(src)), where=where)
    keep = [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0 and int(r) not in seen]
    if diversity > 0 and len(keep) > 1:
        keep = _mmr(src.vectors, keep, k, 1.0 - float(diversity))
    return [
        Recommendation(id=src.ids[r], score=round(s, 6), text=src.texts[r], metadata=src.metadata[r], rank=i + 1)
        for i, (r, s) in enumerate(keep[:k])
    ]


def _weights(weights: Mapping[str, float] | Sequence[float] | None, liked: list[str], disliked: list[str]
             ) -> tuple[np.ndarray, np.ndarray]:
    if weights is None:
        return np.ones(len(liked)), np.ones(len(disliked))
    if isinstance(weights, Mapping):
        unknown = set(weights) - set(liked) - set(disliked)
        if unknown:
            raise InvalidInput(f"weights given for ids that are neither liked nor disliked: {sorted(unknown)[:5]}")
        wl = np.asarray([float(weights.get(i, 1.0)) for i in liked])
        wd = np.asarray([float(weights.get(i, 1.0)) for i in disliked])
    else:
        wl = np.asarray([float(w) for w in weights])
        if len(wl) != len(liked):
            raise InvalidInput(f"{len(wl)} weights for {len(liked)} liked ids; give one per liked id, or a mapping")
        wd = np.ones(len(disliked))
    if np.any(wl < 0) or np.any(wd < 0) or not np.all(np.isfinite(np.concatenate([wl, wd]))):
        raise InvalidInput("weights must be finite and >= 0 (dislikes are already subtracted)")
    if wl.sum() == 0:
        raise InvalidInput("the liked weights sum to 0; give at least one liked item a positive weight")
    return wl, wd


def _profile(vectors: np.ndarray, liked: np.ndarray, wl: np.ndarray, disliked: np.ndarray, wd: np.ndarray,
             dislike_weight: float) -> np.ndarray:
    profile = (wl[:, None] * vectors[liked]).sum(0) / wl.sum()
    if len(disliked) and wd.sum() > 0:
        profile = profile - dislike_weight * (wd[:, None] * vectors[disliked]).sum(0) / wd.sum()
    norm = float(np.linalg.norm(profile))
    if norm < 1e-6:
        raise InvalidInput("the liked and disliked items cancel out; like something different or lower dislike_weight")
    return (profile / norm).astype(np.float32)


def _mmr(vectors: np.ndarray, cands: list[tuple[int, float]], k: int, lam: float) -> list[tuple[int, float]]:
    rows = np.asarray([r for r, _ in cands])
    rel = np.asarray([s for _, s in cands], dtype=np.float64)
    cv = vectors[rows]
    chosen: list[int] = []
    max_sim = np.full(len(rows), -np.inf)
    available = np.ones(len(rows), dtype=bool)
    for _ in range(min(k, len(rows))):
        gain = lam * rel - (1.0 - lam) * np.where(np.isfinite(max_sim), max_sim, 0.0)
        gain[~available] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, cv @ cv[j])
    return [cands[j] for j in chosen]


__all__ = ["Recommendation", "recommend"]
