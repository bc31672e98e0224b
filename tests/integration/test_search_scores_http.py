"""Scores in [0, 1] and ``min_score`` over HTTP (search and context), and a text query on a
collection of your own vectors: a real uvicorn server with the real bundled model."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import serve

pytestmark = pytest.mark.slow

DOCS = [
    {"id": "perf", "text": "Speeding up a slow website: enable HTTP caching and compress images."},
    {"id": "cdn", "text": "A content delivery network serves files from servers near your visitors."},
    {"id": "plants", "text": "Water houseplants when the soil is dry, not on a fixed schedule."},
    {"id": "kyoto", "text": "In Kyoto the buses are slow at rush hour; walk or take the subway."},
    {"id": "pizza", "text": "Neapolitan pizza needs a very hot oven."},
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with serve(str(tmp_path_factory.mktemp("scores") / "kb")) as running:
        key, _ = running.state.keys.create(name="admin")
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            assert c.post("/v1/collections", json={"name": "docs"}).status_code == 201
            assert c.post("/v1/collections/docs/upsert", json={"records": DOCS}).status_code == 200
            assert c.post("/v1/collections", json={"name": "own", "model": None, "dimensions": 3}).status_code == 201
            own = [{"id": "v1", "vector": [1, 0, 0], "text": "slow website"}, {"id": "v2", "vector": [0, 1, 0]}]
            assert c.post("/v1/collections/own/upsert", json={"records": own}).status_code == 200
            yield c


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_scores_in_0_1_fall_with_rank_and_min_score_cuts(api: httpx.Client, mode: str) -> None:
    query = "how to fix slow website"
    r = api.post("/v1/collections/docs/search", json={"query": query, "mode": mode, "k": 5})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    scores = [h["score"] for h in hits]
    assert hits[0]["id"] == "perf" and len(hits) >= 2
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert all(h["scores"] and h["ranks"] for h in hits)  # the raw per-list scores, for explanation
    cut = (scores[0] + scores[1]) / 2
    kept = api.post("/v1/collections/docs/search", json={"query": query, "mode": mode, "k": 5,
                                                         "min_score": cut}).json()["hits"]
    assert [h["id"] for h in kept] == [h["id"] for h in hits if h["score"] >= cut] == ["perf"]


def test_min_score_is_validated_and_honoured_by_context(api: httpx.Client) -> None:
    for bad in (-0.1, 1.5, "high"):
        r = api.post("/v1/collections/docs/search", json={"query": "x", "min_score": bad})
        assert r.status_code == 422 and "min_score" in r.text
    question = "make my website load faster for visitors far away"
    everything = api.post("/v1/collections/docs/context", json={"query": question, "k": 5}).json()["passages"]
    assert len(everything) >= 2
    cut = (everything[0]["score"] + everything[1]["score"]) / 2
    assert everything[0]["score"] > cut > everything[1]["score"]
    kept = api.post("/v1/collections/docs/context", json={"query": question, "k": 5, "min_score": cut}).json()
    assert kept["passages"] and all(p["score"] >= cut for p in kept["passages"])
    assert {p["id"] for p in kept["passages"]} == {p["id"] for p in everything if p["score"] >= cut}


def test_text_query_on_own_vectors_is_a_clear_422(api: httpx.Client) -> None:
    for mode in ("hybrid", "vector"):
        r = api.post("/v1/collections/own/search", json={"query": "slow website", "mode": mode})
        assert r.status_code == 422, r.text
        assert "pass vector=" in r.json()["error"]["message"]
    ok = api.post("/v1/collections/own/search", json={"query": "slow website", "mode": "keyword"})
    assert ok.status_code == 200 and ok.json()["hits"][0]["id"] == "v1"
