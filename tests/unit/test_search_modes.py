"""Search modes: vector, keyword (the store's own BM25), hybrid RRF, MMR, filters, snippets.

Vectors are given explicitly where the expected ranking must be known exactly, so the fused
order can be checked against RRF computed by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import semkit
from semkit.apps._highlight import Snippet, query_terms, snippet, stem
from semkit.apps._search import DEFAULT_ALPHA, coverage, keyword_text, mmr_order, rrf, search
from semkit.errors import InvalidInput
from semkit.store.memory import MemoryStore
from tests.support.hash_embedder import HashEmbedder

D = 8


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


# Vector ranking for the query e0 is a > b > c > d > e (by construction); keyword ranking for
# "zebra crossing" comes from BM25 over the texts.
TEXTS = {
    "a": "a quiet street with trees",
    "b": "crossing the road safely at night",
    "c": "zebra crossing rules for drivers and the zebra stripes",
    "d": "traffic lights and pedestrians",
    "e": "zebra crossing",
}
VECTORS = {
    "a": _unit([1.0, 0.1, 0, 0, 0, 0, 0, 0]),
    "b": _unit([1.0, 0.4, 0, 0, 0, 0, 0, 0]),
    "c": _unit([1.0, 0.8, 0, 0, 0, 0, 0, 0]),
    "d": _unit([1.0, 1.5, 0, 0, 0, 0, 0, 0]),
    "e": _unit([0.1, 1.0, 0, 0, 0, 0, 0, 0]),
}
META = {"a": {"year": 2020, "title": "Trees"}, "b": {"year": 2021}, "c": {"year": 2022, "path": "rules.md"},
        "d": {"year": 2023}, "e": {"year": 2024}}
QUERY_VEC = _unit([1.0, 0, 0, 0, 0, 0, 0, 0])


@pytest.fixture(params=["memory", "embedded"])
def col(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[semkit.Collection]:
    uri = "memory://" if request.param == "memory" else str(tmp_path / "kb")
    with semkit.connect(uri) as db:
        c = db.collection("docs", model=HashEmbedder(D))
        ids = list(TEXTS)
        c.upsert(ids=ids, texts=[TEXTS[i] for i in ids], vectors=np.stack([VECTORS[i] for i in ids]),
                 metadata=[META[i] for i in ids])
        yield c


def test_vector_mode_ranks_by_cosine(col: semkit.Collection) -> None:
    hits = search(col, "zebra crossing", k=5, mode="vector", vector=QUERY_VEC)
    assert [h.id for h in hits] == ["a", "b", "c", "d", "e"]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0].score == pytest.approx(float(VECTORS["a"] @ QUERY_VEC), abs=1e-5)
    assert hits[0].ranks == {"vector": 1} and hits[0].mode == "vector"


def test_keyword_mode_is_the_stores_bm25(col: semkit.Collection) -> None:
    hits = search(col, "zebra crossing", k=5, mode="keyword")
    direct = col.keyword_search("zebra crossing", k=5)
    assert [h.id for h in hits] == [h.id for h in direct]
    assert {h.id for h in hits} == {"b", "c", "e"}  # only records sharing a word
    raw = [h.score for h in direct]
    assert [h.scores["keyword"] for h in hits] == pytest.approx(raw)
    # Normalised: BM25 relative to the best, times the share of query words the best one holds.
    best_coverage = coverage(["zebra", "crossing"], TEXTS[direct[0].id])
    assert [h.score for h in hits] == pytest.approx([s / raw[0] * best_coverage for s in raw])


def test_hybrid_rrf_option_is_rrf_of_both_lists_computed_by_hand(col: semkit.Collection) -> None:
    vec = [h.id for h in col.search(QUERY_VEC, k=50)]
    kw = [h.id for h in col.keyword_search("zebra crossing", k=50)]
    expected: dict[str, float] = {}
    for ranking in (vec, kw):
        for r, i in enumerate(ranking, 1):
            expected[i] = expected.get(i, 0.0) + (1.0 / (60 + r)) / (2 / 61)  # scaled: 1 = first in both
    hits = search(col, "zebra crossing", k=5, vector=QUERY_VEC, fusion="rrf")
    assert [h.score for h in hits] == pytest.approx(sorted(expected.values(), reverse=True))
    for h in hits:
        assert h.score == pytest.approx(expected[h.id])
        assert h.ranks.get("vector") == vec.index(h.id) + 1
        assert h.ranks.get("keyword") == (kw.index(h.id) + 1 if h.id in kw else None)
    # c is 3rd by vector and in the keyword list: fusion lifts it above b or a.
    assert [h.id for h in hits].index("c") < 2


def test_rrf_weights_and_deterministic_ties() -> None:
    fused = rrf({"vector": ["x", "y", "z"], "keyword": ["z", "x"]}, rrf_k=60)
    assert [i for i, _ in fused] == ["x", "z", "y"]
    assert dict(fused)["x"] == pytest.approx(1 / 61 + 1 / 62)
    assert dict(fused)["z"] == pytest.approx(1 / 63 + 1 / 61)
    # Same score (rank 2 in one list each): the first list's wins, every time.
    tie = rrf({"vector": ["a", "p"], "keyword": ["b", "q"]})
    assert [i for i, _ in tie] == ["a", "b", "p", "q"]
    weighted = rrf({"vector": ["a"], "keyword": ["b"]}, weights={"vector": 0.5, "keyword": 1.0})
    assert [i for i, _ in weighted] == ["b", "a"]


def test_where_filters_both_lists(col: semkit.Collection) -> None:
    for mode in ("vector", "keyword", "hybrid"):
        hits = search(col, "zebra crossing", k=5, mode=mode, where={"year": {"$gte": 2022}},  # type: ignore[arg-type]
                      vector=QUERY_VEC)
        assert hits and {h.id for h in hits} <= {"c", "d", "e"}, mode


def test_candidate_depth_limits_each_list(col: semkit.Collection) -> None:
    hits = search(col, "zebra crossing", k=2, candidates=2, vector=QUERY_VEC)
    # Only the top 2 of each list can take part: vector a, b; keyword its own top 2.
    kw_top2 = [h.id for h in col.keyword_search("zebra crossing", k=2)]
    assert {h.id for h in hits} <= {"a", "b", *kw_top2}


def test_mmr_trades_relevance_for_variety(tmp_path: Path) -> None:
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("d", model=HashEmbedder(D))
        near = [_unit([1, 0.01 * i, 0, 0, 0, 0, 0, 0]) for i in range(4)]  # four near-copies
        other = _unit([0.7, 0, 0.7, 0, 0, 0, 0, 0])
        c.upsert(ids=["n0", "n1", "n2", "n3", "o"], texts=["t"] * 5, vectors=np.stack([*near, other]))
        plain = search(c, "t", k=2, mode="vector", vector=QUERY_VEC)
        diverse = search(c, "t", k=2, mode="vector", vector=QUERY_VEC, mmr=0.3)
        relevance_only = search(c, "t", k=2, mode="vector", vector=QUERY_VEC, mmr=1.0)
    assert [h.id for h in plain] == ["n0", "n1"]
    assert [h.id for h in diverse] == ["n0", "o"]
    assert [h.id for h in relevance_only] == ["n0", "n1"]
    assert diverse[1].rank == 2 and diverse[1].score == pytest.approx(float(other @ QUERY_VEC), abs=1e-5)


def test_mmr_order_by_hand() -> None:
    vectors = np.array([[1, 0], [0.99, 0.141], [0, 1]], dtype=np.float32)
    rel = np.array([0.9, 0.85, 0.5])
    # λ=0.5: after item 0, item 1 gains 0.5*0.85-0.5*0.99=-0.07, item 2 gains 0.25-0 = 0.25.
    assert mmr_order(rel, vectors, 3, 0.5, rescale=False) == [0, 2, 1]
    assert mmr_order(rel, vectors, 3, 1.0, rescale=False) == [0, 1, 2]
    assert mmr_order(np.array([]), np.zeros((0, 2)), 3, 0.5) == []


def test_hybrid_without_keyword_search_degrades_to_vector(caplog: pytest.LogCaptureFixture) -> None:
    class NoKeywordStore(MemoryStore):
        """A real store whose backend has no full-text engine (as a vector-only service)."""

        def keyword_query(self, name, text, k, where=None):  # type: ignore[no-untyped-def]
            raise NotImplementedError("no full-text search here")

    from semkit.database import Database

    db = Database(NoKeywordStore())
    c = db.collection("d", model=HashEmbedder(D))
    c.upsert(ids=list(TEXTS), texts=list(TEXTS.values()), vectors=np.stack(list(VECTORS.values())))
    with caplog.at_level(logging.INFO, logger="semkit.apps._search"):
        hits = search(c, "zebra crossing", k=3, vector=QUERY_VEC)
    assert [h.id for h in hits] == ["a", "b", "c"] and hits[0].mode == "vector"
    assert "no keyword search" in caplog.text
    with pytest.raises(InvalidInput, match="mode='vector'"):
        search(c, "zebra crossing", mode="keyword")


def test_bad_arguments_are_clear(col: semkit.Collection) -> None:
    with pytest.raises(InvalidInput, match="mode must be one of"):
        search(col, "x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="mmr"):
        search(col, "x", mmr=1.5)
    with pytest.raises(InvalidInput, match="empty"):
        search(col, "   ")
    with pytest.raises(InvalidInput, match="mode='vector'"):
        search(col, QUERY_VEC, mode="hybrid")
    with pytest.raises(InvalidInput, match="k must be"):
        search(col, "x", k=0)
    with pytest.raises(InvalidInput, match="weights"):
        search(col, "x", weights=(0, 0))


def test_hits_carry_snippets_titles_paths_and_json(col: semkit.Collection) -> None:
    hits = search(col, "zebra crossing", k=5, vector=QUERY_VEC)
    by_id = {h.id: h for h in hits}
    c = by_id["c"]
    assert c.snippet is not None and c.snippet.marked() == (
        "**zebra** **crossing** rules for drivers and the **zebra** stripes")
    assert c.path == "rules.md" and by_id["a"].title == "Trees"
    d = c.as_dict()
    assert {"id", "score", "text", "metadata", "snippet", "highlights", "ranks"} <= set(d)
    assert [d["snippet"][s:e] for s, e in d["highlights"]] == ["zebra", "crossing", "zebra"]
    assert search(col, "zebra", k=1, snippets=False)[0].snippet is None


def test_keyword_query_leaves_out_stop_words() -> None:
    assert keyword_text("how to fix the slow website") == "fix slow website"
    assert keyword_text("who are you") == "who are you"  # nothing else left: keep them
    assert keyword_text("the slow website", drop_stopwords=False) == "the slow website"


def test_query_with_fts_syntax_is_searched_literally(tmp_path: Path) -> None:
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("d", model=HashEmbedder(D))
        c.upsert(ids=["1", "2"], texts=["C++ AND templates: a tutorial", "NEAR the sea"])
        hits = search(c, 'C++ AND "templates" NEAR(', k=2, mode="keyword")
    assert hits[0].id == "1"


# --- highlighting --------------------------------------------------------------------------


def test_snippet_picks_the_window_with_the_query_terms() -> None:
    text = ("Gardening is relaxing. " * 20 + "To fix a slow website, enable caching. "
            + "Cooking pasta takes ten minutes. " * 20)
    s = snippet(text, "how to fix a slow website", width=120)
    assert "fix a slow website" in s.text and len(s.text) <= 120 + 4
    assert s.text.startswith("… ") and s.text.endswith(" …")
    assert [s.text[a:b] for a, b in s.spans] == ["fix", "slow", "website"]


def test_snippet_matches_word_forms_not_substrings() -> None:
    s = snippet("Learning to learn: websites and a website-builder. Unlearned.", "learn website")
    assert [s.text[a:b] for a, b in s.spans] == ["Learning", "learn", "websites", "website"]
    assert stem("running") == stem("run") and stem("studies") == stem("study")


def test_snippet_without_matches_is_the_beginning() -> None:
    text = "word " * 100
    s = snippet(text, "absent", width=50)
    assert s.spans == () and s.text.startswith("word word") and s.text.endswith("…")
    assert snippet(None, "x").text == ""


def test_snippet_renders_markers_html_and_ansi() -> None:
    s = Snippet("a <b> & zebra", ((8, 13),))
    assert s.marked("[", "]") == "a <b> & [zebra]"
    assert s.html() == "a &lt;b&gt; &amp; <mark>zebra</mark>"
    assert s.ansi("bold") == "a <b> & \x1b[1mzebra\x1b[0m"
    assert s.ansi() == "a <b> & \x1b[1;33mzebra\x1b[0m"
    # A document's own escape sequence is dropped, not passed to the terminal.
    assert Snippet("x\x1b[2Jy", ((0, 1),)).ansi("bold") == "\x1b[1mx\x1b[0m[2Jy"


def test_query_terms() -> None:
    assert query_terms("How to fix THE slow slow website?") == ["fix", "slow", "website"]
    assert query_terms("to be or not") == ["to", "be", "or", "not"]


def test_text_search_on_an_own_vectors_collection_is_a_typed_error_unless_given_a_vector() -> None:
    with semkit.connect("memory://") as db:
        c = db.collection("own", model=None, dimensions=D)
        c.upsert(ids=list(TEXTS), texts=list(TEXTS.values()), vectors=np.stack(list(VECTORS.values())))
        for mode in ("hybrid", "vector"):
            with pytest.raises(InvalidInput, match=r"pass vector=.*mode='keyword'.*model"):
                search(c, "zebra crossing", k=3, mode=mode)  # type: ignore[arg-type]
        assert search(c, "zebra crossing", k=3, mode="keyword")[0].mode == "keyword"
        both = search(c, "zebra crossing", k=3, vector=QUERY_VEC)
        assert both[0].mode == "hybrid" and any("vector" in h.ranks for h in both)


# --- scores in [0, 1], convex fusion, min_score ---------------------------------------------


def test_convex_fusion_computed_by_hand(col: semkit.Collection) -> None:
    kw = col.keyword_search("zebra crossing", k=50)
    top = kw[0].score
    kw_part = {h.id: h.score / top * coverage(["zebra", "crossing"], TEXTS[h.id]) for h in kw}
    expected = {i: DEFAULT_ALPHA * max(0.0, float(VECTORS[i] @ QUERY_VEC))
                + (1 - DEFAULT_ALPHA) * kw_part.get(i, 0.0) for i in TEXTS}
    hits = search(col, "zebra crossing", k=5, vector=QUERY_VEC)
    assert {h.id: h.score for h in hits} == pytest.approx(expected, abs=1e-5)
    assert [h.id for h in hits] == sorted(expected, key=lambda i: -expected[i])
    # The raw per-list scores stay on the hit, for explanation.
    c = next(h for h in hits if h.id == "c")
    assert c.scores["vector"] == pytest.approx(float(VECTORS["c"] @ QUERY_VEC), abs=1e-5)
    assert c.scores["keyword"] == pytest.approx(next(h.score for h in kw if h.id == "c"))


@pytest.mark.parametrize(("mode", "fusion"), [("vector", "convex"), ("keyword", "convex"),
                                              ("hybrid", "convex"), ("hybrid", "rrf")])
def test_scores_are_in_0_1_and_fall_with_rank(col: semkit.Collection, mode: str, fusion: str) -> None:
    for query, vec in (("zebra crossing", QUERY_VEC), ("trees at night", _unit([0, 0, 1, 0, 0, 0, 0, 1])),
                       ("zebra", -QUERY_VEC)):
        hits = search(col, query, k=5, mode=mode, fusion=fusion, vector=vec)  # type: ignore[arg-type]
        assert hits, (mode, query)
        scores = [h.score for h in hits]
        assert all(0.0 <= s <= 1.0 for s in scores), (mode, query, scores)
        assert scores == sorted(scores, reverse=True), (mode, query, scores)
    # Opposite vectors are "unrelated" (0), not negative.
    assert search(col, "zebra", k=5, mode="vector", vector=-QUERY_VEC)[-1].score == 0.0


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_min_score_leaves_out_lower_hits(col: semkit.Collection, mode: str) -> None:
    everything = search(col, "zebra crossing", k=5, mode=mode, vector=QUERY_VEC)  # type: ignore[arg-type]
    cut = (everything[1].score + everything[-1].score) / 2
    assert everything[1].score > everything[-1].score  # the cut falls inside the list
    kept = search(col, "zebra crossing", k=5, mode=mode, vector=QUERY_VEC, min_score=cut)  # type: ignore[arg-type]
    assert kept and all(h.score >= cut for h in kept)
    assert [h.id for h in kept] == [h.id for h in everything if h.score >= cut]
    for bad in (-0.1, 1.5, "0.3", True):
        with pytest.raises(InvalidInput, match="min_score is a number in"):
            search(col, "zebra crossing", mode=mode, vector=QUERY_VEC, min_score=bad)  # type: ignore[arg-type]


def test_one_incidental_shared_word_does_not_outrank_meaning(tmp_path: Path) -> None:
    # "fix" is the only query word in the houseplant text; the page about speed has none of
    # the query's words but points the same way. RRF lifts the houseplant (rank 1 by keyword);
    # convex fusion weighs that match by the third of the query it explains.
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("d", model=HashEmbedder(D))
        c.upsert(ids=["speed", "plants", "far"],
                 texts=["make pages load faster with caching", "water plants on no fixed schedule",
                        "a walk by the river"],
                 vectors=np.stack([_unit([1, 0.3, 0, 0, 0, 0, 0, 0]), _unit([0.1, 0, 1, 0, 0, 0, 0, 0]),
                                   _unit([0, 0, 0, 1, 0, 0, 0, 0])]))
        convex = search(c, "how to fix slow website", k=3, vector=QUERY_VEC)
        rrf_hits = search(c, "how to fix slow website", k=3, vector=QUERY_VEC, fusion="rrf")
    assert convex[0].id == "speed" and convex[1].id == "plants"
    assert convex[1].score < convex[0].score / 2
    assert rrf_hits[0].id == "plants"  # what the old default did


def test_fusion_and_alpha_are_checked(col: semkit.Collection) -> None:
    with pytest.raises(InvalidInput, match="fusion must be one of convex, rrf"):
        search(col, "x", fusion="max")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="alpha is a number in"):
        search(col, "x", alpha=2)
    only_vectors = search(col, "zebra crossing", k=5, vector=QUERY_VEC, alpha=1.0)
    assert [h.id for h in only_vectors] == ["a", "b", "c", "d", "e"]
