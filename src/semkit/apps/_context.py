"""RAG context assembly: the best passages for a question, packed into a token budget.

``context(col, question, budget_tokens=2000)`` retrieves candidates with hybrid search and MMR
(relevant *and* not repetitive), drops duplicates, and packs passages best-first until the
budget is spent. Each passage carries its citation — title, path and position from the
record's metadata (keys ``title``/``name``/``heading``; ``path``/``source``/``file``/``url``;
``section``, ``page``, ``chunk`` (with ``chunks``, as ``semkit``'s ingest writes them: shown
1-based, "chunk 3/12"), else ``position``/``line``/``start``), else its id — and prints as
numbered passages ready to paste into an LLM prompt (``Context.text``) or as JSON
(``Context.as_dict()``).

Token counts are the LLM side's, not the embedding model's: ``tokenizer="cl100k_base"`` counts
exactly with tiktoken's offline BPE when it is installed (``semkit[openai]``), else with
``semkit.models.tokens``' estimate, which errs high so the budget holds. The count of the final
``text`` (numbering and citations included) never exceeds the budget.

Duplicates: the same text (case and whitespace aside), or a near-copy whose stored vector has
cosine ≥ ``dedup_threshold`` with a passage already taken (overlapping chunks, mirrored pages).
No passage may take more than ``max_passage_tokens`` (default: half the budget), so one long
record cannot crowd out every other source. A passage over that cap, or one that does not fit
what is left, is cut (at a sentence end when one is near; marked ``truncated``) if at least
``min_passage_tokens`` remain, otherwise skipped for a shorter one further down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInput
from ..models.tokens import TokenCounter, counter_for
from ..vectors import normalize
from ._search import PATH_KEYS, TITLE_KEYS, Mode, search

POSITION_KEYS = ("section", "page", "chunk", "position", "line", "start")
DEFAULT_MMR = 0.7
"""Mostly relevance, some variety: two near-identical chunks rarely both earn a place."""
_ELLIPSIS = " …"


@dataclass(frozen=True)
class Passage:
    n: int
    """Its number in ``Context.text`` (``[n]``), for the LLM to cite."""
    id: str
    text: str
    score: float
    """The search score in [0, 1] (``SearchHit.score``: the fused relevance in hybrid mode)."""
    tokens: int
    """Tokens this passage costs in ``Context.text``, header included."""
    title: str | None = None
    path: str | None = None
    position: str | None = None
    """Where in the source: ``section Setup, page 4, chunk 3/12`` (from the metadata)."""
    truncated: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def citation(self) -> str:
        """``title — path, page 4, chunk 3/12``: whatever of these the record has, else its id."""
        where = ", ".join(p for p in (self.path, self.position) if p)
        parts = [p for p in (self.title, where) if p]
        return " — ".join(parts) if parts else f"id {self.id}"

    def block(self) -> str:
        return f"[{self.n}] {self.citation}\n{self.text}"

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "id": self.id, "citation": self.citation, "title": self.title,
                "path": self.path, "position": self.position, "score": self.score,
                "tokens": self.tokens, "truncated": self.truncated, "text": self.text,
                "metadata": dict(self.metadata)}


@dataclass(frozen=True)
class Context:
    question: str
    passages: list[Passage]
    budget_tokens: int
    used_tokens: int
    """Tokens of ``text`` as a whole, by ``tokenizer``."""
    tokenizer: str
    exact_count: bool
    """False when the counts are an estimate (tiktoken not installed)."""
    candidates: int
    """Passages retrieved before deduplication and packing."""
    duplicates: int
    skipped: int
    """Candidates that did not fit the budget."""

    @property
    def text(self) -> str:
        """Numbered passages with citations, separated by blank lines."""
        return "\n\n".join(p.block() for p in self.passages)

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "budget_tokens": self.budget_tokens,
                "used_tokens": self.used_tokens, "tokenizer": self.tokenizer,
                "exact_count": self.exact_count, "candidates": self.candidates,
                "duplicates": self.duplicates, "skipped": self.skipped,
                "passages": [p.as_dict() for p in self.passages], "text": self.text}


def context(
    col: Any,
    question: str,
    budget_tokens: int = 2000,
    *,
    where: Mapping[str, Any] | None = None,
    mode: Mode = "hybrid",
    mmr: float | None = DEFAULT_MMR,
    max_passages: int = 20,
    candidates: int | None = None,
    tokenizer: str | TokenCounter = "cl100k_base",
    dedup_threshold: float = 0.9,
    min_passage_tokens: int = 48,
    max_passage_tokens: int | None = None,
    relative_relevance: float | None = 0.5,
    min_score: float = 0.0,
) -> Context:
    """The best passages of ``col`` for ``question`` that fit in ``budget_tokens``.

    ``relative_relevance`` drops passages whose cosine similarity to the question is below
    that fraction of the best passage's: fusion and MMR rank by position and diversity, so on a
    small or off-topic collection they would otherwise fill the budget with unrelated text
    (a keyword match on one common word is enough to enter the hybrid list). ``None`` keeps all.
    ``min_score``: leave out passages whose search score (in [0, 1]) is below it; 0 keeps all.
    """
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1:
        raise InvalidInput(f"budget_tokens must be a positive integer, got {budget_tokens!r}")
    if not 0.0 < dedup_threshold <= 1.0:
        raise InvalidInput(f"dedup_threshold is a cosine in (0, 1], got {dedup_threshold!r}")
    cap = max_passage_tokens if max_passage_tokens is not None else max(min_passage_tokens, budget_tokens // 2)
    if cap < 1:
        raise InvalidInput(f"max_passage_tokens must be a positive integer, got {max_passage_tokens!r}")
    counter = counter_for(tokenizer) if isinstance(tokenizer, str) else tokenizer
    ellipsis = counter.count([_ELLIPSIS])[0]
    hits = search(col, question, k=max_passages, mode=mode, where=where, mmr=mmr,
                  candidates=candidates, snippets=False, include_vectors=True, min_score=min_score)
    kept, duplicates = _dedup(hits, dedup_threshold)
    kept, irrelevant = _relevant(col, question, kept, relative_relevance)

    passages: list[Passage] = []
    used = 0
    skipped = 0
    separator = counter.count(["\n\n"])[0]
    for hit in kept:
        n = len(passages) + 1
        draft = _passage(hit, n, hit.text or "", 0)
        header = counter.count([draft.block().split("\n", 1)[0] + "\n"])[0]
        body = counter.count([draft.text])[0]
        cost = header + body + (separator if passages else 0)
        if used + cost <= budget_tokens and body <= cap:
            passages.append(_passage(hit, n, draft.text, cost))
            used += cost
            continue
        room = min(budget_tokens - used - header - (separator if passages else 0), cap) - ellipsis
        if room >= min_passage_tokens or (not passages and room > 0):
            cut = _at_sentence_end(counter.truncate(draft.text, room).rstrip())
            if cut:
                text = cut + _ELLIPSIS
                cost = header + counter.count([text])[0] + (separator if passages else 0)
                passages.append(_passage(hit, n, text, cost, truncated=True))
                used += cost
                continue
        skipped += 1
    # Counting the pieces apart can differ from counting the whole by a merge at a seam.
    total = counter.count([_join(passages)])[0] if passages else 0
    while passages and total > budget_tokens:
        passages.pop()
        skipped += 1
        total = counter.count([_join(passages)])[0] if passages else 0
    return Context(question, passages, budget_tokens, total, counter.name, counter.exact,
                   len(hits), duplicates, skipped + irrelevant)


def _relevant(col: Any, question: str, hits: list[Any], fraction: float | None) -> tuple[list[Any], int]:
    """Hits whose cosine to the question is at least ``fraction`` of the best one's."""
    model = getattr(col, "model", None)
    vectors = [getattr(h, "vector", None) for h in hits]
    if fraction is None or model is None or not hits or any(v is None for v in vectors):
        return hits, 0
    if not 0.0 <= fraction <= 1.0:
        raise InvalidInput(f"relative_relevance is a fraction in [0, 1], got {fraction!r}")
    import numpy as np

    q = model.embed([question], "query")[0]
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
    cos = (matrix @ q) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q) + 1e-12)
    floor = fraction * float(cos.max())
    kept = [h for h, c in zip(hits, cos, strict=True) if c >= floor]
    return kept, len(hits) - len(kept)


def _at_sentence_end(cut: str) -> str:
    """``cut`` shortened to its last sentence end, unless that loses more than a third of it."""
    end = max(cut.rfind(mark) for mark in (". ", "? ", "! ", ".\n"))
    return cut[:end + 1] if end >= 0 and end + 1 >= 2 * len(cut) // 3 else cut


def _join(passages: list[Passage]) -> str:
    return "\n\n".join(p.block() for p in passages)


def _passage(hit: Any, n: int, text: str, tokens: int, truncated: bool = False) -> Passage:
    meta = dict(hit.metadata or {})
    return Passage(n=n, id=hit.id, text=text.strip(),
                   score=hit.score, tokens=tokens,
                   title=_first(meta, TITLE_KEYS), path=_first(meta, PATH_KEYS),
                   position=_position(meta), truncated=truncated, metadata=meta)


def _position(meta: Mapping[str, Any]) -> str | None:
    def given(key: str) -> bool:
        return meta.get(key) not in (None, "")

    parts = [f"{key} {meta[key]}" for key in ("section", "page") if given(key)]
    if given("chunk"):
        chunk, total = meta["chunk"], meta.get("chunks")
        if isinstance(chunk, int) and isinstance(total, int) and 0 <= chunk < total:
            parts.append(f"chunk {chunk + 1}/{total}")  # ingest numbers chunks from 0
        else:
            parts.append(f"chunk {chunk}")
    elif not parts:
        parts += [f"{key} {meta[key]}" for key in ("position", "line", "start") if given(key)][:1]
    return ", ".join(parts) or None


def _first(meta: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((str(meta[k]) for k in keys if meta.get(k) not in (None, "")), None)


def _dedup(hits: list[Any], threshold: float) -> tuple[list[Any], int]:
    kept: list[Any] = []
    seen_texts: set[str] = set()
    kept_vectors: list[np.ndarray] = []
    duplicates = 0
    for hit in hits:
        if not hit.text or not hit.text.strip():
            continue  # nothing to give the model
        key = " ".join(hit.text.casefold().split())
        if key in seen_texts:
            duplicates += 1
            continue
        if hit.vector is not None and kept_vectors:
            v = normalize(hit.vector)[0]
            if float(np.max(np.stack(kept_vectors) @ v)) >= threshold:
                duplicates += 1
                continue
        seen_texts.add(key)
        if hit.vector is not None:
            kept_vectors.append(normalize(hit.vector)[0])
        kept.append(hit)
    return kept, duplicates


__all__ = ["DEFAULT_MMR", "POSITION_KEYS", "Context", "Passage", "context"]
