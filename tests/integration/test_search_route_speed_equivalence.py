"""The hybrid search's faster paths give exactly the results of the paths they replaced (issue 18):

- keyword hits carry their stored vectors (one store round trip), where convex fusion used to
  read the keyword-only records' vectors again with ``Collection.get``;
- ``coverage`` keeps each text's word stems (a bounded cache) instead of stemming every
  keyword candidate's words on every query;
- the embedded store's unfiltered keyword query ranks on the FTS table alone and joins only the
  k best to their ids;
- the server hands the query's embedding to the search as the model's array, not as a list.

Real bundled model, real SciFact sentences and queries, real embedded store and HTTP server.
Scores are compared with ``==``: the same floats, not merely close ones.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import semkit
from semkit.apps import _search
from semkit.apps._highlight import stem
from semkit.apps._search import DEFAULT_ALPHA, keyword_text, search, vector_score
from semkit.collection import Collection
from semkit.models.base import Embedder
from semkit.vectors import scores as similarities
from tests.support.server import serve
from tests.support.shared_data import DATA, have

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not have("scifact"), reason="shared SciFact data not available")]

N_TEXTS = 600
N_QUERIES = 40


def _sentences(n: int) -> list[str]:
    seen: dict[str, None] = {}
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]):
                if len(s.strip()) > 20:
                    seen[s.strip()] = None
            if len(seen) >= n:
                break
    return list(seen)[:n]


def _queries(n: int) -> list[str]:
    with open(DATA / "scifact" / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"].strip() for line in fh if line.strip()][:n]


@pytest.fixture(scope="module")
def model() -> Embedder:
    return semkit.model("local")


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory, model: Embedder) -> Iterator[Collection]:
    texts = _sentences(N_TEXTS)
    with semkit.connect(tmp_path_factory.mktemp("equivalence") / "kb") as db:
        c = db.collection("scifact", model=model)
        c.upsert([f"s{i}" for i in range(len(texts))], texts=texts,
                 metadata=[{"n": i} for i in range(len(texts))])
        yield c


# --- the replaced code, as it was: the reference ----------------------------------------------

_WORD = re.compile(r"\w+")


def _old_coverage(terms: Sequence[str], text: str | None) -> float:
    if not terms or not text:
        return 0.0
    present = {stem(w) for w in set(_WORD.findall(text.lower()))}
    return sum(stem(t) in present for t in terms) / len(terms)


def _old_hybrid(col: Collection, query: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
    """Convex hybrid search as it was computed before: keyword hits without vectors, the
    keyword-only records' vectors read with ``get``, every text stemmed afresh."""
    depth = max(50, 5 * k)
    lists: dict[str, list[Any]] = {
        "vector": col.search(vector, k=depth),
        "keyword": col.keyword_search(keyword_text(query), k=depth),
    }
    cands = _search._collect(lists)
    terms = _search.query_terms(query)
    missing = [c.id for c in cands if "vector" not in c.scores]
    stored = {r.id: r.vector for r in col.get(missing, include_vectors=True)}
    ids = [i for i in missing if stored.get(i) is not None]
    raw = {}
    if ids:
        sims = similarities(np.asarray(vector, dtype=np.float32)[None, :], np.stack([stored[i] for i in ids]),
                            col.metric)[0]  # type: ignore[arg-type]
        raw = dict(zip(ids, (float(x) for x in sims), strict=True))
    top = float(lists["keyword"][0].score) if lists["keyword"] else 0.0
    a, b = DEFAULT_ALPHA, 1.0 - DEFAULT_ALPHA
    for c in cands:
        similarity = c.scores["vector"] if "vector" in c.scores else raw.get(c.id)
        sim = vector_score(similarity, col.metric) if similarity is not None else 0.0
        kw = (_search._ratio(c.scores["keyword"], top) * _old_coverage(terms, c.text)
              if "keyword" in c.scores else 0.0)
        c.score = a * sim + b * kw
    fused = sorted(cands, key=lambda c: -c.score)[:k]
    return [(c.id, c.score) for c in fused]


# --- tests --------------------------------------------------------------------------------------

def test_hybrid_hits_and_scores_are_those_of_the_replaced_code(col: Collection, model: Embedder) -> None:
    queries = _queries(N_QUERIES)
    vectors = model.embed(queries, "query")
    for rnd in ("cold cache", "warm cache"):
        if rnd == "cold cache":
            _search._word_stems.cache_clear()
        keyword_only = 0
        for query, vector in zip(queries, vectors, strict=True):
            hits = search(col, query, k=10, mode="hybrid", vector=vector)
            assert [(h.id, h.score) for h in hits] == _old_hybrid(col, query, vector, 10), (rnd, query)
            keyword_only += sum("vector" not in h.ranks for h in hits)
        assert keyword_only > 0  # the records scored from the keyword hits' own vectors made the top 10


def test_coverage_is_the_uncached_share_of_query_words(col: Collection) -> None:
    _search._word_stems.cache_clear()
    texts = [r.text for r in col.get([f"s{i}" for i in range(200)])]
    for query in _queries(N_QUERIES):
        terms = _search.query_terms(query)
        for text in texts:
            assert _search.coverage(terms, text) == _old_coverage(terms, text)
    assert _search._word_stems.cache_info().currsize == len(set(texts))


def test_unfiltered_keyword_query_ranks_as_the_joined_one(col: Collection) -> None:
    """No filter: FTS ranks alone, then ids; a filter matching every record: the join as before."""
    everything = {"n": {"$gte": 0}}
    for query in _queries(N_QUERIES):
        text = keyword_text(query)
        for k in (5, 50, 1000):  # 1000: more than one statement's parameters, the joined path
            fast = col.keyword_search(text, k)
            joined = col.keyword_search(text, k, where=everything)
            assert [(h.id, h.score, h.text) for h in fast] == [(h.id, h.score, h.text) for h in joined], (query, k)
            assert len(fast) == len({h.id for h in fast}) > 0


def test_search_by_array_equals_search_by_list(col: Collection, model: Embedder) -> None:
    """The server passes the model's array; a request's vector arrives as a list."""
    queries = _queries(10)
    for query, vector in zip(queries, model.embed(queries, "query"), strict=True):
        for mode in ("hybrid", "vector"):
            by_array = search(col, query, k=10, mode=mode, vector=vector)
            by_list = search(col, query, k=10, mode=mode, vector=vector.tolist())
            assert [(h.id, h.score, h.ranks, h.scores) for h in by_array] == \
                [(h.id, h.score, h.ranks, h.scores) for h in by_list]


def test_http_search_answers_as_the_library(tmp_path: Path) -> None:
    texts = _sentences(200)
    with serve(str(tmp_path / "kb")) as running:
        key, _ = running.state.keys.create(name="admin")
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
            assert c.post("/v1/collections", json={"name": "docs"}).status_code == 201
            records = [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)]
            assert c.post("/v1/collections/docs/upsert", json={"records": records}).status_code == 200
            served = running.state.collection("docs")
            for query in _queries(15):
                answer = c.post("/v1/collections/docs/search", json={"query": query, "k": 10})
                assert answer.status_code == 200, answer.text
                assert answer.json()["mode"] == "hybrid"
                expected = search(served, query, k=10)
                assert [(h["id"], h["score"], h["ranks"], h["scores"]) for h in answer.json()["hits"]] == \
                    [(h.id, h.score, h.ranks, h.scores) for h in expected], query
                assert [h["snippet"] for h in answer.json()["hits"]] == [h.snippet.text for h in expected]
                _assert_is_a_search_response(answer.json())
            # The body is encoded without the response model: it must still be exactly its shape,
            # vectors and every mode included.
            for request in ({"query": _queries(1)[0], "k": 3, "include_vectors": True},
                            {"query": _queries(1)[0], "k": 3, "mode": "keyword"},
                            {"query": _queries(1)[0], "k": 3, "mode": "vector", "include_vectors": True}):
                answer = c.post("/v1/collections/docs/search", json=request)
                assert answer.status_code == 200, answer.text
                _assert_is_a_search_response(answer.json())
                vectors = [h["vector"] for h in answer.json()["hits"]]
                if request.get("include_vectors"):
                    stored = {r.id: r.vector for r in served.get([h["id"] for h in answer.json()["hits"]],
                                                                  include_vectors=True)}
                    assert [np.asarray(v, dtype=np.float32).tolist() for v in vectors] == \
                        [stored[h["id"]].tolist() for h in answer.json()["hits"]]
                else:
                    assert vectors == [None] * len(vectors)


def _assert_is_a_search_response(body: dict[str, Any]) -> None:
    """``body`` has SearchResponse's fields, no others, with its types."""
    from semkit.server.schemas import SearchResponse

    assert body == SearchResponse.model_validate(body).model_dump(mode="json")
    assert body["hits"], body
