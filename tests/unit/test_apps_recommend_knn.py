"""Recommend through the store's kNN search: same answers as the old full-load algorithm,
``liked_texts=`` / ``profile=``, and no full scan of the collection."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit import apps
from semkit.apps._source import as_source
from semkit.collection import Collection
from semkit.errors import InvalidInput
from semkit.store.base import CollectionSpec, Record
from semkit.store.memory import MemoryStore

D = 24


def _reference_recommend(source: Any, liked: Sequence[str], disliked: Sequence[str] = (), k: int = 10,
                         weights: Mapping[str, float] | Sequence[float] | None = None, diversity: float = 0.0,
                         where: Mapping[str, Any] | None = None, dislike_weight: float = 0.5
                         ) -> list[tuple[str, float]]:
    """The previous implementation (load the whole collection, then search), kept as the oracle."""
    src = as_source(source)
    liked_rows = src.rows(list(liked), "liked ids")
    disliked_rows = src.rows(list(disliked), "disliked ids") if disliked else np.empty(0, np.int64)
    if weights is None:
        wl, wd = np.ones(len(liked)), np.ones(len(disliked))
    elif isinstance(weights, Mapping):
        wl = np.asarray([float(weights.get(i, 1.0)) for i in liked])
        wd = np.asarray([float(weights.get(i, 1.0)) for i in disliked])
    else:
        wl, wd = np.asarray(weights, dtype=float), np.ones(len(disliked))
    vectors = src.vectors
    profile = (wl[:, None] * vectors[liked_rows]).sum(0) / wl.sum()
    if len(disliked_rows) and wd.sum() > 0:
        profile = profile - dislike_weight * (wd[:, None] * vectors[disliked_rows]).sum(0) / wd.sum()
    profile = (profile / np.linalg.norm(profile)).astype(np.float32)
    seen = set(liked_rows.tolist()) | set(disliked_rows.tolist())
    pool = k * 5 if diversity > 0 else k
    rows, scores = src.search(profile[None, :], min(pool + len(seen), len(src)), where=where)
    keep = [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0 and int(r) not in seen]
    if diversity > 0 and len(keep) > 1:
        lam = 1.0 - diversity
        cand_rows = np.asarray([r for r, _ in keep])
        rel = np.asarray([s for _, s in keep])
        cv = vectors[cand_rows]
        chosen: list[int] = []
        max_sim = np.full(len(keep), -np.inf)
        available = np.ones(len(keep), dtype=bool)
        for _ in range(min(k, len(keep))):
            gain = lam * rel - (1.0 - lam) * np.where(np.isfinite(max_sim), max_sim, 0.0)
            gain[~available] = -np.inf
            j = int(np.argmax(gain))
            chosen.append(j)
            available[j] = False
            max_sim = np.maximum(max_sim, cv @ cv[j])
        keep = [keep[j] for j in chosen]
    return [(src.ids[r], round(s, 6)) for r, s in keep[:k]]


def _items(n: int = 300, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, D))
    x = centres[rng.integers(0, 6, n)] + 0.6 * rng.normal(size=(n, D))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"item{i}" for i in range(n)]
    meta = [{"shelf": i % 3, "tag": "odd" if i % 2 else "even"} for i in range(n)]
    return ids, x, meta


CASES: list[dict[str, Any]] = [
    {"liked": ["item3"]},
    {"liked": ["item3", "item40", "item77"], "k": 7},
    {"liked": ["item3", "item40"], "disliked": ["item5"]},
    {"liked": ["item3", "item40"], "weights": {"item3": 2.0, "item40": 0.5}, "disliked": ["item9"]},
    {"liked": ["item3", "item40"], "weights": [0.2, 1.0]},
    {"liked": ["item10"], "where": {"shelf": 1}},
    {"liked": ["item10", "item11"], "diversity": 0.6, "k": 6},
    {"liked": ["item12"], "disliked": ["item13", "item14"], "diversity": 0.3, "where": {"tag": "odd"}},
]


@pytest.fixture(params=["embedded", "memory"])
def collection(request: pytest.FixtureRequest, tmp_path: Path) -> Collection:
    db = semkit.connect(str(tmp_path / "store") if request.param == "embedded" else "memory://")
    col = db.collection("items", model=None, dimensions=D)
    ids, x, meta = _items()
    col.upsert(ids, vectors=x, metadata=meta)
    return col


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}" for k in c))
def test_knn_recommend_matches_the_full_load_implementation(collection: Collection, case: dict[str, Any]) -> None:
    expected = _reference_recommend(collection, **case)
    got = apps.recommend(collection, **case)
    assert [(r.id, r.score) for r in got] == [(i, pytest.approx(s, abs=2e-6)) for i, s in expected]
    assert [r.rank for r in got] == list(range(1, len(got) + 1))
    # records come with the hits
    if got:
        assert got[0].metadata == collection.get(got[0].id)[0].metadata


def test_matrix_sources_give_the_same_answers_as_the_collection(collection: Collection) -> None:
    ids, x, meta = _items()
    matrix = apps.from_matrix(x, ids, metadata=meta)
    for case in CASES:
        assert [r.id for r in apps.recommend(matrix, **case)] == [r.id for r in apps.recommend(collection, **case)]


class _NoScanStore(MemoryStore):
    """A real MemoryStore that records every full scan (what the old recommend did per call)."""

    scans = 0

    def scan(self, name: str, batch_size: int = 10_000, include_vectors: bool = True,
             where: Any = None) -> Iterator[list[Record]]:
        type(self).scans += 1
        return super().scan(name, batch_size, include_vectors, where)


def test_recommend_on_a_collection_never_scans_it() -> None:
    store = _NoScanStore()
    spec = CollectionSpec("items", D)
    store.create_collection(spec)
    col = Collection(store, spec)
    ids, x, meta = _items()
    col.upsert(ids, vectors=x, metadata=meta)
    recs = apps.recommend(col, liked=["item1", "item2"], disliked=["item3"], k=5, diversity=0.5)
    assert len(recs) == 5 and _NoScanStore.scans == 0


def test_profile_vector_and_liked_texts_build_the_profile(tmp_path: Path) -> None:
    db = semkit.connect(str(tmp_path / "store"))
    col = db.collection("docs", model="local")
    texts = [
        "The cat sat on the warm windowsill all afternoon.",
        "Kittens love chasing balls of yarn around the room.",
        "Stock markets fell sharply after the interest rate decision.",
        "The central bank raised rates to fight inflation.",
        "A recipe for sourdough bread with a crisp crust.",
        "How to bake a soft sandwich loaf at home.",
    ]
    col.upsert([f"d{i}" for i in range(len(texts))], texts=texts)
    query = "cats and kittens playing"
    by_text = apps.recommend(col, liked_texts=[query], k=3)
    search = col.search(query, k=3)
    assert [r.id for r in by_text] == [h.id for h in search]
    assert [r.score for r in by_text] == [pytest.approx(h.score, abs=1e-5) for h in search]

    user = col.get(["d2", "d3"], include_vectors=True)
    vector = user[0].vector + user[1].vector  # unnormalised on purpose
    by_profile = apps.recommend(col, profile=vector, k=2)
    assert {r.id for r in by_profile} == {"d2", "d3"}
    # a profile plus a liked id: one liked item each, liked id excluded from the answer
    mixed = apps.recommend(col, liked=["d4"], profile=vector, k=5)
    assert "d4" not in {r.id for r in mixed}
    centre = col.get(["d4"], include_vectors=True)[0].vector + vector / np.linalg.norm(vector)
    expected = [h.id for h in col.search(centre, k=6) if h.id != "d4"][:5]
    assert [r.id for r in mixed] == expected


def test_profile_and_text_input_errors(collection: Collection) -> None:
    with pytest.raises(InvalidInput, match="at least one liked id"):
        apps.recommend(collection)
    with pytest.raises(InvalidInput, match=f"profile must be one vector of {D}"):
        apps.recommend(collection, profile=np.ones(D + 1))
    with pytest.raises(InvalidInput, match="zero vector"):
        apps.recommend(collection, profile=np.zeros(D))
    with pytest.raises(InvalidInput, match="no embedding model"):
        apps.recommend(collection, liked_texts=["something"])
    with pytest.raises(InvalidInput, match="'ghost'"):
        apps.recommend(collection, liked=["ghost"])
