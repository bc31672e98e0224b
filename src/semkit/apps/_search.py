"""Search a collection: by meaning (vector), by words (keyword), or both (hybrid), with
optional diversity (MMR) and highlighted snippets. Every mode scores hits in [0, 1], higher is
better, and the score never rises as the rank goes down (without ``mmr``).

- ``vector``: the store's k-nearest-neighbour query on the embedded query. Score = the cosine
  similarity clipped to [0, 1] (``max(0, cos)``): it reads as the cosine people know, and the
  negative cosines that are clipped are all "unrelated" alike. (``(cos+1)/2`` would give
  unrelated text 0.5 and squeeze every real match into 0.7–0.9.) A ``dot`` collection's score
  is clipped the same way (the cosine, for unit vectors); an ``l2`` one is ``1 / (1 + distance)``.
- ``keyword``: the backend's own full-text engine — SQLite FTS5 ``bm25()`` in the embedded
  store, PostgreSQL full-text search on pgvector, a reference BM25 in memory. Any query word
  may match (OR). Stop words are left out of the query (``keyword_stopwords``): they match
  nearly every document, weigh almost nothing in BM25, and make the engine visit every row
  (SciFact, FTS5: nDCG@10 67.07 without them vs 66.95 with, and 2.5x faster queries).
  Score = ``(bm25 / best bm25) × coverage(best)``, where ``coverage`` is the share of the
  query's content words a text contains: 1 only for a best match holding every query word; a
  best match on one word of three scores 0.33. The order is the engine's BM25 order.
- ``hybrid`` (default): score-aware convex fusion of the vector top-N and the keyword top-N,
  both under the same ``where``: ``score = α·sim + (1−α)·kw`` where ``sim`` is the vector
  score above (computed from the stored vector for records only the keyword list found) and
  ``kw = (bm25 / best bm25) × coverage(record)``: a keyword match counts in proportion to how
  much of the query it explains, so one shared incidental word ("fix", "slow") cannot lift an
  unrelated text above the ones that mean the same. α = ``DEFAULT_ALPHA`` was chosen on
  SciFact's train queries and the small sets of ``benchmarks/relevance_small.py`` (see
  ``docs/measurements.md``). ``fusion="rrf"`` gives reciprocal-rank fusion (Cormack, Clarke &
  Büttcher, 2009) instead, ``Σ wᵢ / (rrf_k + rankᵢ)``, rescaled to [0, 1] by its largest
  possible value (first in every list). ``N = candidates`` (default ``max(50, 5·k)``). A
  backend without keyword search (``NotImplementedError``) makes hybrid a vector search, with a
  log line.

A text query on a collection of your own vectors (no model) needs ``vector=`` in vector and
hybrid mode: it is an ``InvalidInput``, never a silent fall-back to keywords.

``min_score`` drops hits scoring below it (after fusion, before MMR and ``k``).

``mmr=λ`` re-ranks the candidate pool by maximal marginal relevance (Carbonell & Goldstein,
1998) with the stored vectors: each next result maximises ``λ·relevance − (1−λ)·max cosine to
the results already chosen``, relevance being the hit's score. λ = 1 is plain relevance; lower
values trade relevance for variety. A hit's ``score`` stays its relevance, so with MMR a lower
rank can have a higher score; ``rank`` is its place after re-ranking.

``rerank=`` (any object with ``score(query, passages) -> array`` in [0, 1], see ``Reranker``)
re-scores the ``max(k, RERANK_DEPTH)`` best candidates of the chosen mode and orders them by
its score, which becomes the hit's ``score``; the mode's own score stays in ``scores["fused"]``
and its rank in ``ranks["fused"]``. Candidates below that depth are dropped. ``min_score`` then
applies to the reranked score, and ``mmr`` re-orders the reranked list. The rerankers of
``semkit.models.rerank``: ``CrossEncoder(folder)`` (score = its calibrated relevance, the
sigmoid of its logit; it runs once per candidate at query time, which is why the depth is
small) and ``SentenceWindows()`` (no extra model: the collection's own model on each
candidate's sentences, blended with the fused score; see that class for the figures).

Every hit keeps ``ranks``/``scores`` per list (``{"vector": 3, "keyword": 1}``; raw cosine and
raw BM25) so a fused ranking can be explained.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np

from ..errors import InvalidInput
from ..vectors import normalize
from ..vectors import scores as similarities
from ._highlight import STOP_WORDS, Snippet, query_terms, snippet, stem

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "keyword")
Fusion = Literal["convex", "rrf"]
FUSIONS: tuple[Fusion, ...] = ("convex", "rrf")
DEFAULT_RRF_K = 60
"""The constant of the RRF paper; small values let the top few ranks dominate."""
DEFAULT_ALPHA = 0.7
"""Weight of the vector similarity in convex fusion (chosen on SciFact train + small sets)."""

RERANK_DEPTH = 20
"""``rerank=`` re-scores the ``max(k, RERANK_DEPTH)`` best candidates (see the module)."""


class Reranker(Protocol):
    """What ``rerank=`` needs: one relevance in [0, 1] per passage, higher is better.

    Two optional hooks: a reranker with ``uses_fused = True`` is called as ``score(query,
    passages, fused=...)`` with the candidates' own scores, to blend with (``SentenceWindows``);
    one with ``for_collection(col)`` is replaced by what that returns before scoring (so
    ``SentenceWindows()`` embeds with the searched collection's model)."""

    def score(self, query: str, passages: Sequence[str | None]) -> np.ndarray: ...


TITLE_KEYS = ("title", "name", "heading")
PATH_KEYS = ("path", "source", "file", "url")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SearchHit:
    """One result. ``score`` is in [0, 1], higher is better; its meaning depends on ``mode``
    (see the module): the clipped cosine, the normalised BM25, or the fused relevance."""

    id: str
    score: float
    text: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rank: int = 0
    """1-based position in the final list."""
    mode: Mode = "hybrid"
    ranks: Mapping[str, int] = field(default_factory=dict)
    """1-based rank in each list the record was found in (``vector``, ``keyword``)."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """The record's raw score in each list (cosine, BM25), before mapping and fusion."""
    snippet: Snippet | None = None
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def title(self) -> str | None:
        return _first(self.metadata, TITLE_KEYS)

    @property
    def path(self) -> str | None:
        return _first(self.metadata, PATH_KEYS)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``id score text metadata snippet highlights rank mode ranks scores``."""
        return {
            "id": self.id, "score": self.score, "text": self.text, "metadata": dict(self.metadata),
            "snippet": self.snippet.text if self.snippet else None,
            "highlights": [list(s) for s in self.snippet.spans] if self.snippet else [],
            "rank": self.rank, "mode": self.mode, "ranks": dict(self.ranks),
            "scores": dict(self.scores),
        }


def search(
    col: Any,
    query: str | Any,
    k: int = 10,
    mode: Mode = "hybrid",
    where: Mapping[str, Any] | None = None,
    mmr: float | None = None,
    candidates: int | None = None,
    rrf_k: int = DEFAULT_RRF_K,
    *,
    fusion: Fusion = "convex",
    alpha: float = DEFAULT_ALPHA,
    weights: tuple[float, float] = (1.0, 1.0),
    min_score: float = 0.0,
    exact: bool = False,
    vector: Any = None,
    keyword_stopwords: bool = True,
    snippets: bool = True,
    snippet_chars: int = 200,
    include_vectors: bool = False,
    rerank: Reranker | None = None,
) -> list[SearchHit]:
    """The ``k`` best records of collection ``col`` for ``query``, scored in [0, 1].

    ``mode``: ``hybrid`` | ``vector`` | ``keyword``. ``where``: metadata filter, applied inside
    every list. ``mmr``: λ in [0, 1] for diversity (``None`` = off). ``candidates``: depth of
    each list before fusion / MMR. ``fusion``: ``convex`` (default, score-aware) or ``rrf``;
    ``alpha``: the vector side's weight in convex fusion; ``rrf_k``: the RRF constant;
    ``weights`` (vector, keyword): multiply each side in either fusion. ``min_score``: leave out
    hits scoring below it (0 keeps all). ``exact``: exact vector search instead of the
    approximate index. ``vector``: the query's embedding if you have it already (saves
    embedding ``query`` again; needed for a bring-your-own-vectors collection). A non-string
    ``query`` is a vector (vector mode only). ``rerank``: a cross-encoder (``score(query,
    passages)``, e.g. ``CrossEncoder(folder)`` or ``SentenceWindows()``) that re-scores the
    ``max(k, RERANK_DEPTH)`` best candidates; its score becomes ``score``, the mode's stays in
    ``scores["fused"]``.
    """
    k = _check_int(k, "k")
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if fusion not in FUSIONS:
        raise InvalidInput(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
    if rerank is not None and not callable(getattr(rerank, "score", None)):
        raise InvalidInput(f"rerank needs a reranker with a score(query, passages) method (e.g. "
                           f"semkit.models.rerank.CrossEncoder(folder) or SentenceWindows()), got {rerank!r}")
    if rerank is not None and not isinstance(query, str):
        raise InvalidInput("rerank= needs the query text: a reranker reads the query and each passage")
    if mmr is not None and (isinstance(mmr, bool) or not 0.0 <= float(mmr) <= 1.0):
        raise InvalidInput(f"mmr is λ in [0, 1] (1 = relevance only, lower = more variety), got {mmr!r}")
    min_score = _check_fraction(min_score, "min_score", "hits scoring below it are left out; 0 keeps all")
    alpha = _check_fraction(alpha, "alpha", "the vector side's weight in convex fusion")
    depth = max(50, 5 * k) if candidates is None else _check_int(candidates, "candidates")
    depth = max(depth, k)
    rrf_k = _check_int(rrf_k, "rrf_k", minimum=0)
    w_vec, w_kw = _check_weights(weights)
    text_query: str | None = None
    if isinstance(query, str):
        if not query.strip():
            raise InvalidInput("the query is an empty string; type some words to search for")
        text_query = query
    elif mode != "vector":
        raise InvalidInput(f"a query vector can only be searched in mode='vector', not {mode!r}; "
                           "pass the query text (and vector= to reuse its embedding)")
    else:
        vector = query

    model = getattr(col, "model", None)
    if mode != "keyword" and vector is None and model is None:
        raise InvalidInput(
            f"collection {col.name!r} stores your own vectors and has no model to embed the text "
            f"query for {mode} search: pass vector= (the query's embedding, same model as the "
            "collection), use mode='keyword', or create the collection with a model (model=...)")
    if text_query is not None and mode != "keyword":
        _log_language_warning(col, text_query)
    if mode == "hybrid" and vector is None:
        assert model is not None  # refused above when a text query has no model to embed it
        vector = model.embed([text_query], "query")[0]  # once, for the list and the fusion
    want_vectors = include_vectors or mmr is not None
    pool = depth if (mmr is not None or mode == "hybrid") else k
    if rerank is not None:
        pool = max(pool, k, RERANK_DEPTH)

    lists: dict[str, list[Any]] = {}
    if mode in ("vector", "hybrid"):
        q = vector if vector is not None else text_query
        lists["vector"] = col.search(q, k=pool, where=where, exact=exact, include_vectors=want_vectors)
    if mode in ("keyword", "hybrid"):
        assert text_query is not None
        # Convex fusion scores the keyword-only records by their stored vectors: read them with
        # the records (one store round trip, not a second one in ``_score_convex``).
        with_vectors = mode == "hybrid" and fusion == "convex"
        try:
            lists["keyword"] = col.keyword_search(keyword_text(text_query, keyword_stopwords), k=pool,
                                                  where=where, include_vectors=with_vectors)
        except NotImplementedError:
            if mode == "keyword":
                raise InvalidInput(
                    f"the store behind {col.name!r} has no keyword search; use mode='vector'"
                ) from None
            log.info("the store behind %r has no keyword search: hybrid search uses vectors only",
                     col.name)
            mode = "vector"

    metric = getattr(col, "metric", "cosine")
    cands = _collect(lists)
    terms = query_terms(text_query) if text_query else []
    if mode == "hybrid" and fusion == "rrf":
        _score_rrf(cands, lists, rrf_k, w_vec, w_kw)
    elif mode == "hybrid":
        _score_convex(col, cands, lists, np.asarray(vector, dtype=np.float32), metric, terms,
                      alpha, w_vec, w_kw)
    elif mode == "vector":
        for c in cands:
            c.score = vector_score(c.scores["vector"], metric)
    else:
        best = cands[0] if cands else None
        top = best.scores["keyword"] if best else 0.0
        best_coverage = coverage(terms, best.text) if best else 0.0
        for c in cands:
            c.score = _ratio(c.scores["keyword"], top) * best_coverage
    fused = sorted(cands, key=lambda c: -c.score)  # stable: ties keep list order
    if rerank is not None and fused:
        assert text_query is not None
        bind = getattr(rerank, "for_collection", None)
        fused = _rerank(bind(col) if callable(bind) else rerank, text_query, fused[:max(k, RERANK_DEPTH)])
    fused = [c for c in fused if c.score >= min_score]
    if mmr is not None and len(fused) > 1:
        _attach_vectors(col, fused)
        order = mmr_order(
            np.asarray([c.score for c in fused], dtype=np.float64),
            np.stack([c.vector for c in fused if c.vector is not None]), k, float(mmr), rescale=False,
        )
        fused = [fused[i] for i in order]
    fused = fused[:k]
    if include_vectors:
        _attach_vectors(col, fused)
    show = query_terms(text_query) if (snippets and text_query) else None
    return [
        SearchHit(
            id=c.id, score=c.score, text=c.text, metadata=c.metadata, rank=n, mode=mode,
            ranks=c.ranks, scores=c.scores,
            snippet=snippet(c.text, show, snippet_chars) if show is not None else None,
            vector=c.vector if include_vectors else None,
        )
        for n, c in enumerate(fused, 1)
    ]


def vector_score(similarity: float, metric: str = "cosine") -> float:
    """A store's similarity mapped to [0, 1]: cosine (and dot) clipped at 0 and 1; for ``l2``
    (the store gives the negated distance) ``1 / (1 + distance)``."""
    if metric == "l2":
        return 1.0 / (1.0 + max(0.0, -float(similarity)))
    return min(1.0, max(0.0, float(similarity)))


def coverage(terms: Sequence[str], text: str | None) -> float:
    """The share of ``terms`` (the query's content words) found in ``text``, matching word
    forms (``websites`` ~ ``website``), not substrings. 0 for no terms or no text."""
    return _stems_coverage([stem(t) for t in terms], text)


def _stems_coverage(term_stems: Sequence[str], text: str | None) -> float:
    """``coverage`` with the terms stemmed already (once per query, not once per candidate)."""
    if not term_stems or not text:
        return 0.0
    present = _word_stems(text)
    return sum(s in present for s in term_stems) / len(term_stems)


TEXT_STEMS_CACHED = 2048
"""Texts whose word forms ``coverage`` keeps (least recently used dropped first): a hybrid
search checks all its keyword candidates (50 texts and more a query), and the same popular
records come back query after query; stemming each one's words was a third of the Python
time of a search. An entry holds its text and the text's distinct word stems: about 2 kB for
a sentence, 12 kB for a 1 kB passage (measured), so at most about 25 MB for such passages. A collection
much larger than this sees fewer hits (only its often-found records stay)."""


@lru_cache(maxsize=TEXT_STEMS_CACHED)
def _word_stems(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in set(_WORD.findall(text.lower())))


def keyword_text(query: str, drop_stopwords: bool = True) -> str:
    """The text sent to the keyword engine: the query's words, stop words left out (unless
    every word is one). Stores quote each word, so no engine syntax gets through."""
    if not drop_stopwords:
        return query
    words = query.split()
    kept = [w for w in words if not all(t.lower() in STOP_WORDS for t in _tokens(w))]
    return " ".join(kept) if kept else query


def rrf(rankings: Mapping[str, Sequence[str]], rrf_k: int = DEFAULT_RRF_K,
        weights: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion of ranked id lists: ``(id, score)`` best first.

    Ties are broken by the best single rank, then by first appearance (lists in the order
    given), so the result is deterministic.
    """
    score: dict[str, float] = {}
    best: dict[str, int] = {}
    for name, ids in rankings.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        for r, item in enumerate(ids, 1):
            score[item] = score.get(item, 0.0) + w / (rrf_k + r)
            best[item] = min(best.get(item, r), r)
    order = {item: n for n, item in enumerate(score)}
    return sorted(score.items(), key=lambda kv: (-kv[1], best[kv[0]], order[kv[0]]))


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float, *,
              rescale: bool = True) -> list[int]:
    """Indices of ``k`` items chosen greedily by maximal marginal relevance.

    ``relevance``: one score per item (higher is better); with ``rescale`` it is min-max
    scaled to [0, 1] first, so λ weighs it against cosine redundancy on a like scale.
    ``vectors``: the items' embeddings (normalised here). The first pick is the most relevant.
    """
    n = len(relevance)
    if n == 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    if rescale:
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones(n)
    unit = normalize(vectors).astype(np.float64)
    chosen: list[int] = []
    redundancy = np.zeros(n)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        gain = lam * rel - (1.0 - lam) * redundancy if chosen else rel.copy()
        gain[~available] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        available[j] = False
        redundancy = np.maximum(redundancy, unit @ unit[j])
    return chosen


# --- internals ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    id: str
    score: float
    text: str | None
    metadata: Mapping[str, Any]
    ranks: dict[str, int]
    scores: dict[str, float]
    vector: np.ndarray | None


def _collect(lists: dict[str, list[Any]]) -> list[_Candidate]:
    """One candidate per record over all lists, in first-seen order, with its rank and raw
    score in each list."""
    found: dict[str, _Candidate] = {}
    for name, hits in lists.items():
        for r, h in enumerate(hits, 1):
            c = found.get(h.id)
            if c is None:
                c = found[h.id] = _Candidate(h.id, 0.0, h.text, h.metadata or {}, {}, {},
                                             getattr(h, "vector", None))
            elif c.vector is None:
                c.vector = getattr(h, "vector", None)
            c.ranks[name] = r
            c.scores[name] = float(h.score)
    return list(found.values())


def _score_rrf(cands: list[_Candidate], lists: dict[str, list[Any]], rrf_k: int,
               w_vec: float, w_kw: float) -> None:
    """RRF over the lists, divided by its largest possible value (rank 1 in every list)."""
    weights = {"vector": w_vec, "keyword": w_kw}
    fused = dict(rrf({name: [h.id for h in hits] for name, hits in lists.items()}, rrf_k, weights))
    ceiling = sum(weights[name] for name in lists) / (rrf_k + 1)
    for c in cands:
        c.score = min(1.0, fused[c.id] / ceiling)


def _score_convex(col: Any, cands: list[_Candidate], lists: dict[str, list[Any]], query: np.ndarray,
                  metric: str, terms: Sequence[str], alpha: float, w_vec: float, w_kw: float) -> None:
    """``α·sim + (1−α)·kw`` (see the module): every candidate gets both sides, the similarity
    from its stored vector when only the keyword list found it."""
    a = alpha * w_vec
    b = (1.0 - alpha) * w_kw
    a, b = (a / (a + b), b / (a + b)) if a + b > 0 else (0.5, 0.5)
    missing = [c for c in cands if "vector" not in c.scores]
    raw: dict[str, float] = {}
    if missing:
        stored = {c.id: c.vector for c in missing if c.vector is not None}
        unread = [c.id for c in missing if c.vector is None]
        if unread:
            stored.update((r.id, r.vector) for r in col.get(unread, include_vectors=True))
        ids = [c.id for c in missing if stored.get(c.id) is not None]
        if ids:
            sims = similarities(query[None, :], np.stack([stored[i] for i in ids]), metric)[0]  # type: ignore[arg-type]
            raw = dict(zip(ids, (float(x) for x in sims), strict=True))
    keyword = lists.get("keyword") or []
    top = float(keyword[0].score) if keyword else 0.0
    term_stems = [stem(t) for t in terms]
    for c in cands:
        similarity = c.scores["vector"] if "vector" in c.scores else raw.get(c.id)
        sim = vector_score(similarity, metric) if similarity is not None else 0.0
        kw = _ratio(c.scores["keyword"], top) * _stems_coverage(term_stems, c.text) if "keyword" in c.scores else 0.0
        c.score = a * sim + b * kw


def _rerank(reranker: Reranker, query: str, cands: list[_Candidate]) -> list[_Candidate]:
    """``cands`` (best first) re-scored by ``reranker`` and sorted by its score; ties keep the
    fused order. The fused score and rank are kept under ``"fused"``."""
    texts = [c.text for c in cands]
    if getattr(reranker, "uses_fused", False):
        raw = reranker.score(query, texts, fused=[c.score for c in cands])  # type: ignore[call-arg]
    else:
        raw = reranker.score(query, texts)
    relevance = np.asarray(raw, dtype=np.float64).reshape(-1)
    if len(relevance) != len(cands) or not np.all(np.isfinite(relevance)) \
            or (len(relevance) and not (relevance.min() >= 0.0 and relevance.max() <= 1.0)):
        raise InvalidInput(f"the reranker must return one score in [0, 1] per passage; for {len(cands)} "
                           f"passages it returned {relevance!r}")
    for n, (c, value) in enumerate(zip(cands, relevance, strict=True), 1):
        c.scores["fused"] = c.score
        c.ranks["fused"] = n
        c.score = float(value)
    return sorted(cands, key=lambda c: -c.score)


def _ratio(score: float, top: float) -> float:
    return min(1.0, max(0.0, score / top)) if top > 0 else 0.0


def _attach_vectors(col: Any, cands: list[_Candidate]) -> None:
    missing = [c.id for c in cands if c.vector is None]
    if missing:
        vectors = {r.id: r.vector for r in col.get(missing, include_vectors=True)}
        for c in cands:
            if c.vector is None:
                c.vector = vectors.get(c.id)
    absent = [c.id for c in cands if c.vector is None]
    if absent:
        # Deleted between the query and this fetch: drop them rather than guess a vector.
        cands[:] = [c for c in cands if c.vector is not None]


def _tokens(word: str) -> list[str]:
    return _WORD.findall(word) or [word]


def _first(metadata: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_fraction(value: Any, name: str, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(value) <= 1.0:
        raise InvalidInput(f"{name} is a number in [0, 1] ({meaning}), got {value!r}")
    return float(value)


def _check_weights(weights: Any) -> tuple[float, float]:
    try:
        w_vec, w_kw = (float(w) for w in weights)
    except (TypeError, ValueError):
        raise InvalidInput(f"weights is a pair (vector, keyword) of numbers, got {weights!r}") from None
    if not (np.isfinite(w_vec) and np.isfinite(w_kw)) or w_vec < 0 or w_kw < 0 or w_vec + w_kw == 0:
        raise InvalidInput(f"weights must be >= 0 and not both 0, got {weights!r}")
    return w_vec, w_kw


__all__ = ["DEFAULT_ALPHA", "DEFAULT_RRF_K", "FUSIONS", "MODES", "RERANK_DEPTH", "Fusion", "Mode", "Reranker",
           "SearchHit", "coverage", "keyword_text", "mmr_order", "rrf", "search", "vector_score"]


def language_warning(col: Any, query: str) -> str | None:
    """One sentence when ``query`` looks written in a language the collection's model does not
    cover, naming a catalogue model that does; None otherwise (English, unsure, unknown model).
    The CLI and the server show it beside the results; ``search`` logs it."""
    spec = getattr(col, "spec", None)
    embedder_id = getattr(spec, "embedder", None)
    return _coverage_warning(embedder_id, query) if embedder_id else None


@lru_cache(maxsize=256)
def _coverage_warning(embedder_id: str, query: str) -> str | None:
    # Cached: ``search`` logs the warning and the server answers it for the same query a moment
    # later; detecting the language twice was a tenth of a hybrid search's Python time.
    from ..models.languages import coverage_warning

    return coverage_warning(embedder_id, query)


_warned: set[str] = set()


def _log_language_warning(col: Any, query: str) -> None:
    # Once per distinct sentence and process: a server answering many such queries logs it once.
    warning = language_warning(col, query)
    if warning is not None and warning not in _warned:
        _warned.add(warning)
        log.warning("%s (collection %r)", warning, getattr(col, "name", "?"))
