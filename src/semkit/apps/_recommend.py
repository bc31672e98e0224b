"""Recommendations: "more like this" and profile-based, with dislikes, filters and diversity.

The profile is Rocchio's: the weighted mean of the liked vectors minus ``dislike_weight`` times
the weighted mean of the disliked ones (no original query, so the liked centroid plays its
part). Liked things can be ids, free texts (``liked_texts``, embedded with the collection's
model) or a raw user vector (``profile``); one liked id and nothing else is plain
item-to-item similarity. Items the user has already rated are never recommended.
``diversity`` > 0 re-ranks a larger candidate pool by maximal marginal relevance (Carbonell &
Goldstein, 1998) with λ = 1 − diversity.

Cost follows what is asked, not the collection's size: on a cosine collection the liked and
disliked vectors are point reads and the candidates come from one kNN query of the store
(``as_items``), with their records (and, for MMR, their vectors) in the same call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..vectors import as_matrix
from ._knn import check_k
from ._source import Items, Neighbour, as_items

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
    liked: Sequence[str] | str = (),
    disliked: Sequence[str] = (),
    k: int = 10,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    diversity: float = 0.0,
    where: Mapping[str, Any] | None = None,
    *,
    liked_texts: Sequence[str] = (),
    profile: Any = None,
    dislike_weight: float = 0.5,
    exact: bool | None = None,
) -> list[Recommendation]:
    """The ``k`` items most like what was liked and least like what was disliked.

    What was liked: ``liked`` ids, ``liked_texts`` (free text, embedded as queries with the
    collection's model) and ``profile`` (a raw vector of the collection's dimensions, e.g. a
    user embedding you keep), at least one of them; each counts as one liked item.
    ``weights``: per-item weights, either a mapping ``id -> weight`` (liked or disliked ids;
    default 1) or a list aligned with ``liked``. ``diversity`` in [0, 1]: 0 is pure relevance,
    higher trades relevance for variety among the results. ``where`` is a metadata filter.
    """
    k = check_k(k)
    liked_ids = [liked] if isinstance(liked, str) else list(liked)
    disliked_ids = [disliked] if isinstance(disliked, str) else list(disliked)
    texts = [liked_texts] if isinstance(liked_texts, str) else list(liked_texts)
    if not liked_ids and not texts and profile is None:
        raise InvalidInput(
            "recommend needs at least one liked id (or liked_texts=, or a profile= vector) to build a profile from"
        )
    if not 0.0 <= float(diversity) <= 1.0:
        raise InvalidInput(f"diversity must be between 0 (relevance only) and 1, got {diversity!r}")
    if dislike_weight < 0:
        raise InvalidInput(f"dislike_weight must be >= 0, got {dislike_weight!r}")
    overlap = set(liked_ids) & set(disliked_ids)
    if overlap:
        raise InvalidInput(f"ids both liked and disliked: {sorted(overlap)[:5]}; keep each in one list")
    items = as_items(source, exact=exact)
    w_liked, w_disliked = _weights(weights, liked_ids, disliked_ids)
    liked_vecs = _liked_vectors(items, liked_ids, texts, profile)
    w_liked = np.concatenate([w_liked, np.ones(len(liked_vecs) - len(liked_ids))])
    disliked_vecs = items.vectors_of(disliked_ids, "disliked ids") if disliked_ids else None
    target = _profile(liked_vecs, w_liked, disliked_vecs, w_disliked, dislike_weight)

    seen = set(liked_ids) | set(disliked_ids)
    pool = k * _POOL_FACTOR if diversity > 0 else k
    found = items.nearest(target, pool + len(seen), where, vectors=diversity > 0)
    keep = [n for n in found if n.id not in seen]
    if diversity > 0 and len(keep) > 1:
        keep = _mmr(keep, k, 1.0 - float(diversity))
    return [
        Recommendation(id=n.id, score=round(n.score, 6), text=n.text, metadata=n.metadata, rank=i + 1)
        for i, n in enumerate(keep[:k])
    ]


def _liked_vectors(items: Items, ids: list[str], texts: list[str], profile: Any) -> np.ndarray:
    """Unit rows: the liked ids' vectors, then the embedded texts, then the profile vector."""
    parts = [items.vectors_of(ids, "liked ids")] if ids else []
    if texts:
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise InvalidInput("liked_texts must be non-empty strings")
        parts.append(items.embed(texts, "query"))
    if profile is not None:
        vec = as_matrix(profile)
        dims = items.dimensions
        if vec.shape != (1, dims):
            raise InvalidInput(f"profile must be one vector of {dims} numbers, got shape {np.shape(profile)}")
        norm = float(np.linalg.norm(vec))
        if norm == 0:
            raise InvalidInput("profile is the zero vector; pass a user vector with some direction")
        parts.append(vec / norm)
    return np.vstack(parts).astype(np.float32, copy=False)


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
    return wl, wd


def _profile(liked: np.ndarray, wl: np.ndarray, disliked: np.ndarray | None, wd: np.ndarray,
             dislike_weight: float) -> np.ndarray:
    if wl.sum() == 0:
        raise InvalidInput("the liked weights sum to 0; give at least one liked item a positive weight")
    profile = (wl[:, None] * liked).sum(0) / wl.sum()
    if disliked is not None and len(disliked) and wd.sum() > 0:
        profile = profile - dislike_weight * (wd[:, None] * disliked).sum(0) / wd.sum()
    norm = float(np.linalg.norm(profile))
    if norm < 1e-6:
        raise InvalidInput("the liked and disliked items cancel out; like something different or lower dislike_weight")
    return (profile / norm).astype(np.float32)


def _mmr(cands: list[Neighbour], k: int, lam: float) -> list[Neighbour]:
    rel = np.asarray([c.score for c in cands], dtype=np.float64)
    cv = np.asarray([c.vector for c in cands], dtype=np.float32)
    chosen: list[int] = []
    max_sim = np.full(len(cands), -np.inf)
    available = np.ones(len(cands), dtype=bool)
    for _ in range(min(k, len(cands))):
        gain = lam * rel - (1.0 - lam) * np.where(np.isfinite(max_sim), max_sim, 0.0)
        gain[~available] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, cv @ cv[j])
    return [cands[j] for j in chosen]


__all__ = ["Recommendation", "recommend"]
