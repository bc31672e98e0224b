"""Exact and near-duplicate detection, grouped without chaining.

1. Exact duplicates: items whose text is equal after normalisation (Unicode NFKC, casefold,
   punctuation removed, whitespace collapsed) — found by hashing, no vectors needed.
2. Near-duplicates: edges of the kNN graph (each item's ``k`` nearest neighbours) with cosine
   similarity ≥ ``threshold``. Never all pairs: memory is O(n·k).
3. Grouping. Connected components of those edges chain: A~B and B~C put A and C together even
   when A and C are unrelated. So components are only candidate sets; inside each, groups are
   formed around keepers, in order of preference (``keep``):

   - ``linkage="keeper"`` (default): the most preferred remaining item becomes a keeper and
     takes every remaining item with similarity ≥ threshold *to the keeper*. Each removed item
     is then a near-copy of something kept — what deleting the non-keepers needs.
   - ``linkage="complete"``: additionally every pair inside a group is ≥ threshold (members
     are added best-first while they are close to all current members). Stricter, smaller
     groups.

   Similarities inside a component are computed exactly from the vectors (O(size·d) per
   keeper), so a group may be bigger than k.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInput
from ._io import atomic_write
from ._knn import check_k
from ._source import Source, as_source

Keep = Literal["longest", "first", "central"]
Linkage = Literal["keeper", "complete"]


@dataclass(frozen=True)
class Item:
    """What a ``keep`` function sees about one candidate item."""

    id: str
    text: str | None
    metadata: Mapping[str, Any]
    position: int
    """Its order in the source (scan order for a collection)."""


@dataclass(frozen=True)
class DuplicateMember:
    id: str
    score: float
    """Cosine similarity to the group's keeper (1.0 for an exact text duplicate)."""
    exact: bool
    """Same normalised text as the keeper."""
    text: str | None = None


@dataclass(frozen=True)
class DuplicatePair:
    a: str
    b: str
    score: float
    exact: bool


@dataclass
class DuplicateGroup:
    keeper: str
    keeper_text: str | None
    members: list[DuplicateMember]
    """The duplicates to remove, most similar first (the keeper is not among them)."""
    pairs: list[DuplicatePair] = field(default_factory=list)
    """The graph edges inside the group (every kNN pair ≥ threshold, and exact pairs)."""

    @property
    def ids(self) -> list[str]:
        return [self.keeper, *(m.id for m in self.members)]

    def __len__(self) -> int:
        return 1 + len(self.members)


@dataclass
class DuplicateReport:
    groups: list[DuplicateGroup]
    threshold: float
    k: int
    linkage: str
    keep: str
    items: int
    exact_duplicates: int
    """Items that repeat another item's normalised text."""
    near_pairs: int
    """kNN edges with similarity ≥ threshold (before grouping)."""

    def removable(self) -> list[str]:
        """Ids of every non-keeper: deleting them leaves one item per group."""
        return [m.id for g in self.groups for m in g.members]

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold, "k": self.k, "linkage": self.linkage, "keep": self.keep,
            "items": self.items, "exact_duplicates": self.exact_duplicates,
            "near_pairs": self.near_pairs, "groups": [asdict(g) for g in self.groups],
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2))

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """One row per item in a group: the keeper (role ``keep``) then its duplicates."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["group", "role", "id", "keeper", "score", "exact", "text"])
        for n, g in enumerate(self.groups):
            writer.writerow([n, "keep", g.keeper, g.keeper, "1.0", "", g.keeper_text or ""])
            for m in g.members:
                writer.writerow([n, "remove", m.id, g.keeper, f"{m.score:.6f}", str(m.exact).lower(), m.text or ""])
        return atomic_write(path, buf.getvalue())


_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


def normalize_text(text: str) -> str:
    """The key for exact duplicates: NFKC, casefolded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def duplicates(
    source: Any,
    threshold: float = 0.9,
    k: int = 10,
    *,
    keep: Keep | Callable[[Item], Any] = "longest",
    linkage: Linkage = "keeper",
    exact: bool | None = None,
) -> DuplicateReport:
    """Groups of exact and near-duplicate items, each with a suggested keeper.

    ``threshold`` is a cosine similarity. ``keep`` orders the candidates of a group:
    ``"longest"`` text (for images: the most pixels), ``"first"`` in source order, ``"central"``
    (highest summed similarity to its near-duplicates), or a function giving each ``Item`` a
    sort key — the item with the *lowest* key is kept, as in ``sorted(key=...)`` (e.g.
    ``lambda it: it.metadata["date"]`` keeps the oldest). ``exact=True`` forces exact kNN search.
    """
    if not isinstance(threshold, (int, float)) or not -1.0 <= float(threshold) <= 1.0:
        raise InvalidInput(f"threshold is a cosine similarity between -1 and 1, got {threshold!r}")
    k = check_k(k)
    if linkage not in ("keeper", "complete"):
        raise InvalidInput(f"linkage must be 'keeper' or 'complete', got {linkage!r}")
    if not callable(keep) and keep not in ("longest", "first", "central"):
        raise InvalidInput(f"keep must be 'longest', 'first', 'central' or a function, got {keep!r}")
    src = as_source(source, exact=exact)
    n = len(src)
    codes = _text_codes(src)
    exact_a, exact_b = _exact_pairs(codes)
    near_a, near_b, near_s = _near_pairs(src, threshold, min(k, max(n - 1, 1))) if n > 1 else (
        np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    edge_a = np.concatenate([near_a, exact_a])
    edge_b = np.concatenate([near_b, exact_b])
    edge_s = np.concatenate([near_s, np.ones(len(exact_a), np.float32)])
    components = _components(n, edge_a, edge_b)
    strength = np.zeros(n, dtype=np.float64)
    np.add.at(strength, edge_a, edge_s)
    np.add.at(strength, edge_b, edge_s)
    order_key = _preference(src, keep, strength)
    groups: list[tuple[int, list[tuple[int, float]]]] = []
    for comp in components:
        comp = sorted(comp, key=order_key)
        groups.extend(_split_component(src, codes, np.asarray(comp, dtype=np.int64), float(threshold), linkage))
    report_groups = _describe(src, codes, groups, edge_a, edge_b)
    report_groups.sort(key=lambda g: (-len(g), g.keeper))
    exact_dups = len(exact_a)
    return DuplicateReport(
        groups=report_groups, threshold=float(threshold), k=k, linkage=linkage,
        keep=keep if isinstance(keep, str) else getattr(keep, "__name__", "custom"),
        items=n, exact_duplicates=exact_dups, near_pairs=len(near_a),
    )


# --- steps ---------------------------------------------------------------------------------


def _text_codes(src: Source) -> np.ndarray:
    """One integer per item: equal for items with the same normalised text, unique otherwise."""
    seen: dict[bytes, int] = {}
    codes = np.empty(len(src), dtype=np.int64)
    for i, text in enumerate(src.texts):
        key = normalize_text(text) if text else ""
        if not key:
            codes[i] = -1 - i  # no text: equal to nothing
            continue
        # 16-byte digests instead of the strings keep memory flat for long texts
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        codes[i] = seen.setdefault(digest, i)
    return codes


def _exact_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A star from each text's first occurrence to its repeats: enough to connect them."""
    rows = np.arange(len(codes), dtype=np.int64)
    repeat = (codes >= 0) & (codes != rows)
    return codes[repeat], rows[repeat]


def _near_pairs(src: Source, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    graph = src.graph(k)
    n = len(src)
    rows = np.repeat(np.arange(n, dtype=np.int64), graph.k)
    cols = graph.indices.ravel()
    sc = graph.scores.ravel()
    ok = (cols >= 0) & (sc >= threshold)
    a, b, s = np.minimum(rows[ok], cols[ok]), np.maximum(rows[ok], cols[ok]), sc[ok]
    key = a * n + b
    key, first = np.unique(key, return_index=True)
    return a[first], b[first], s[first]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> list[list[int]]:
    """Connected components (size ≥ 2) by union-find with path halving."""
    parent = np.arange(n, dtype=np.int64)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    members: dict[int, list[int]] = {}
    for x in set(a.tolist()) | set(b.tolist()):
        members.setdefault(find(x), []).append(x)
    return [sorted(m) for m in members.values() if len(m) > 1]


def _preference(src: Source, keep: Keep | Callable[[Item], Any], strength: np.ndarray) -> Callable[[int], Any]:
    if keep == "first":
        return lambda i: i
    if keep == "longest":
        return lambda i: (-len(src.texts[i] or ""), -_pixels(src.metadata[i]), i)
    if keep == "central":
        return lambda i: (-strength[i], i)
    assert callable(keep)

    def key(i: int) -> Any:
        return (keep(Item(src.ids[i], src.texts[i], src.metadata[i], i)), i)

    return key


def _pixels(metadata: Any) -> int:
    """An image's width x height as ``semkit index --clip`` records it (0 for a text): of two
    copies of a photo, the larger one is worth keeping."""
    try:
        return int(metadata["width"]) * int(metadata["height"])
    except (KeyError, TypeError, ValueError):
        return 0


def _split_component(src: Source, codes: np.ndarray, comp: np.ndarray, threshold: float,
                     linkage: Linkage) -> list[tuple[int, list[tuple[int, float]]]]:
    """Keeper-centred groups inside one candidate component (``comp`` in preference order)."""
    groups: list[tuple[int, list[tuple[int, float]]]] = []
    remaining = comp
    vecs = src.vectors
    while len(remaining) > 1:
        keeper, rest = int(remaining[0]), remaining[1:]
        sims = np.where(codes[rest] == codes[keeper], np.float32(1.0), vecs[rest] @ vecs[keeper])
        close = sims >= threshold
        taken = rest[close]
        scores = sims[close]
        if linkage == "complete" and len(taken) > 1:
            taken, scores = _complete_link(src, codes, taken, scores, threshold)
        if len(taken):
            order = np.argsort(-scores, kind="stable")
            groups.append((keeper, [(int(taken[j]), float(scores[j])) for j in order]))
        remaining = rest[~np.isin(rest, taken)]
    return groups


def _complete_link(src: Source, codes: np.ndarray, cand: np.ndarray, scores: np.ndarray,
                   threshold: float) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    chosen: list[int] = []
    chosen_scores: list[float] = []
    for j in order.tolist():
        r = int(cand[j])
        if chosen:
            sims = np.where(codes[chosen] == codes[r], 1.0, src.vectors[chosen] @ src.vectors[r])
            if not np.all(sims >= threshold):
                continue
        chosen.append(r)
        chosen_scores.append(float(scores[j]))
    return np.asarray(chosen, dtype=np.int64), np.asarray(chosen_scores, dtype=np.float32)


def _describe(src: Source, codes: np.ndarray, groups: list[tuple[int, list[tuple[int, float]]]],
              edge_a: np.ndarray, edge_b: np.ndarray) -> list[DuplicateGroup]:
    group_of: dict[int, int] = {}
    for g, (keeper, members) in enumerate(groups):
        group_of[keeper] = g
        for r, _ in members:
            group_of[r] = g
    pairs: list[list[DuplicatePair]] = [[] for _ in groups]
    seen: set[tuple[int, int]] = set()
    for x, y in zip(edge_a.tolist(), edge_b.tolist(), strict=True):
        gx = group_of.get(x)
        if gx is None or group_of.get(y) != gx or (x, y) in seen:
            continue
        seen.add((x, y))
        is_exact = bool(codes[x] == codes[y])
        score = 1.0 if is_exact else float(src.vectors[x] @ src.vectors[y])
        pairs[gx].append(DuplicatePair(src.ids[x], src.ids[y], round(score, 6), is_exact))
    out: list[DuplicateGroup] = []
    for g, (keeper, members) in enumerate(groups):
        out.append(DuplicateGroup(
            keeper=src.ids[keeper], keeper_text=src.texts[keeper],
            members=[
                DuplicateMember(src.ids[r], round(s, 6), bool(codes[r] == codes[keeper]), src.texts[r])
                for r, s in members
            ],
            pairs=sorted(pairs[g], key=lambda p: -p.score),
        ))
    return out


__all__ = [
    "DuplicateGroup", "DuplicateMember", "DuplicatePair", "DuplicateReport", "Item", "duplicates",
    "normalize_text",
]
