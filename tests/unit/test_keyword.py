"""The shared keyword search (``store/keyword.py``): tokenizer and BM25 for backends without a
full-text engine (the memory and Qdrant stores)."""

from __future__ import annotations

import math

import numpy as np

from semkit.store.keyword import BM25_B, BM25_K1, bm25_top_k, query_terms, tokenize


def test_tokens_are_lower_cased_unicode_words() -> None:
    assert tokenize("Café-crème, NAÏVE_test 42!") == ["café", "crème", "naïve_test", "42"]
    assert tokenize("  ...  ") == []


def test_query_terms_are_distinct_in_first_seen_order() -> None:
    assert query_terms("Fox quick FOX the quick") == ["fox", "quick", "the"]


def test_bm25_score_by_hand() -> None:
    got = bm25_top_k("b", [("d1", "a b"), ("d2", "a")], 10)
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    norm = BM25_K1 * (1 - BM25_B + BM25_B * 2 / 1.5)
    assert got.ids == ["d1"]
    assert np.isclose(got.scores[0], idf * (BM25_K1 + 1) / (1 + norm))


def test_only_documents_sharing_a_term_best_first_ties_in_document_order() -> None:
    docs = [("x", "red fish"), ("y", "blue fish"), ("z", "green tree"), ("w", "red fish")]
    got = bm25_top_k("red", docs, 10)
    assert got.ids == ["x", "w"]
    assert got.scores[0] == got.scores[1] > 0
    assert bm25_top_k("fish red", docs, 1).ids == ["x"]
    assert bm25_top_k("zebra", docs, 10).ids == []
    assert bm25_top_k("!!!", docs, 10).ids == []
    assert bm25_top_k("red", [], 10).ids == []


def test_documents_may_be_a_generator() -> None:
    got = bm25_top_k("fox", ((f"d{i}", "fox " * i) for i in range(1, 4)), 2)
    assert got.ids == ["d3", "d2"] and got.scores.dtype == np.float32
