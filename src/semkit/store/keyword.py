"""Keyword search for backends without a full-text engine: one tokenizer and Okapi BM25.

``MemoryStore`` (the reference) and ``QdrantStore`` score with ``bm25_top_k`` over the texts
they scan; the embedded and PostgreSQL stores have engines of their own (FTS5, ``tsvector``)
and take only ``query_terms`` from here, so every backend agrees on what a query word is.

Scoring: Okapi BM25 with k1=1.2, b=0.75 and Lucene's idf ``log(1 + (N - df + 0.5) / (df + 0.5))``
(always positive), over lower-cased runs of word characters. Only documents sharing at least
one term with the query are returned, best first; ties keep the documents' order.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .base import Neighbors

BM25_K1 = 1.2
BM25_B = 0.75
_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Keyword-search tokens: lower-cased runs of word characters (Unicode-aware)."""
    return _TOKEN.findall(text.lower())


def query_terms(text: str) -> list[str]:
    """The distinct tokens of a query, in the order they first appear."""
    return list(dict.fromkeys(tokenize(text)))


def bm25_top_k(query: str, documents: Iterable[tuple[str, str]], k: int) -> Neighbors:
    """The ``k`` best of ``documents`` (``(id, text)`` pairs, already filtered) for ``query``.

    The collection statistics (document count, average length, document frequencies) are those
    of ``documents``, so a filter narrows them too, as it does in a search engine's index.
    """
    terms = set(query_terms(query))
    docs = [(doc_id, Counter(tokenize(text))) for doc_id, text in documents]
    if not docs or not terms:
        return Neighbors([], np.zeros(0, dtype=np.float32))
    n_docs = len(docs)
    lengths = [sum(counts.values()) for _, counts in docs]
    avg_len = sum(lengths) / n_docs or 1.0
    df = {t: sum(1 for _, counts in docs if t in counts) for t in terms}
    idf = {t: math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
    ranked: list[tuple[float, int, str]] = []
    for pos, ((doc_id, counts), length) in enumerate(zip(docs, lengths, strict=True)):
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / avg_len)
        score = sum(idf[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm) for t in terms if counts[t])
        if score > 0:
            ranked.append((-score, pos, doc_id))
    ranked.sort()
    top = ranked[:k]
    return Neighbors([d for _, _, d in top], np.array([-s for s, _, _ in top], dtype=np.float32))


__all__ = ["BM25_B", "BM25_K1", "bm25_top_k", "query_terms", "tokenize"]
