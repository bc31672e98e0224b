"""RAG context assembly: budget, deduplication, citations, truncation, JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import semkit
from semkit.apps._context import context
from semkit.errors import InvalidInput
from semkit.models.tokens import EstimateCounter, counter_for
from tests.support.hash_embedder import HashEmbedder

PERF = "Slow websites: enable HTTP caching and compress images to fix long load times."
DOCS = [
    ("perf-1", PERF, {"title": "Performance", "path": "docs/perf.md", "chunk": 1}),
    ("perf-copy", "  slow websites: enable HTTP caching and compress images to fix long load times. ",
     {"title": "Performance (mirror)", "path": "mirror/perf.md", "chunk": 1}),
    ("cdn", "A CDN serves static files from close to the user, which fixes slow pages for far away visitors.",
     {"path": "docs/cdn.md", "page": 4}),
    ("db", "Database indexes fix slow queries behind a slow website. " * 12, {"title": "Databases"}),
    ("pizza", "Pizza dough needs a very hot oven and a long rest.", {}),
]


@pytest.fixture
def col(tmp_path: Path) -> Iterator[semkit.Collection]:
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("docs", model=HashEmbedder(64))
        c.upsert(ids=[d[0] for d in DOCS], texts=[d[1] for d in DOCS], metadata=[d[2] for d in DOCS])
        yield c


@pytest.mark.parametrize("budget", [40, 90, 200, 2000])
def test_text_never_exceeds_the_budget(col: semkit.Collection, budget: int) -> None:
    ctx = context(col, "how to fix a slow website", budget_tokens=budget)
    counter = counter_for("cl100k_base")
    assert ctx.passages
    assert ctx.used_tokens == counter.count([ctx.text])[0] <= budget


def test_unrelated_passages_are_not_packed(col: semkit.Collection) -> None:
    everything = context(col, "how to fix a slow website", budget_tokens=2000, relative_relevance=None)
    relevant = context(col, "how to fix a slow website", budget_tokens=2000)
    assert "pizza" in {p.id for p in everything.passages}
    assert "pizza" not in {p.id for p in relevant.passages}
    assert {p.id for p in relevant.passages} < {p.id for p in everything.passages}
    with pytest.raises(InvalidInput, match="relative_relevance"):
        context(col, "slow website", relative_relevance=1.5)


def test_duplicates_are_dropped_and_citations_numbered(col: semkit.Collection) -> None:
    # The bag-of-words test embedder rates the repeated "db" text far above the rest, so the
    # relevance floor is off here: this test is about deduplication and numbering.
    ctx = context(col, "how to fix a slow website", budget_tokens=2000, relative_relevance=None)
    ids = [p.id for p in ctx.passages]
    assert not ({"perf-1", "perf-copy"} <= set(ids))  # same text up to case/whitespace
    assert ctx.duplicates >= 1
    assert [p.n for p in ctx.passages] == list(range(1, len(ids) + 1))
    perf = next(p for p in ctx.passages if p.id in ("perf-1", "perf-copy"))
    assert perf.citation in ("Performance — docs/perf.md, chunk 1", "Performance (mirror) — mirror/perf.md, chunk 1")
    cdn = next(p for p in ctx.passages if p.id == "cdn")
    assert cdn.citation == "docs/cdn.md, page 4"
    assert f"[{cdn.n}] docs/cdn.md, page 4\nA CDN serves" in ctx.text


def test_near_duplicate_vectors_are_dropped(tmp_path: Path) -> None:
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("d", model=HashEmbedder(16))
        v = np.eye(16, dtype=np.float32)
        vectors = np.stack([v[0], v[0] * 0.999 + v[1] * 0.02, v[2]])
        c.upsert(ids=["a", "b", "c"], texts=["alpha text one", "alpha text two", "gamma"], vectors=vectors)
        ctx = context(c, "alpha text", budget_tokens=500, mode="keyword", mmr=None)
    assert [p.id for p in ctx.passages] == ["a"] and ctx.duplicates == 1  # b: cosine 0.9998 with a


def test_a_passage_larger_than_the_budget_is_cut(col: semkit.Collection) -> None:
    ctx = context(col, "database indexes slow queries", budget_tokens=60, mode="keyword")
    first = ctx.passages[0]
    assert first.id == "db" and first.truncated and first.text.endswith("…")
    assert ctx.used_tokens <= 60


def test_estimate_counter_and_json(col: semkit.Collection) -> None:
    ctx = context(col, "slow website", budget_tokens=300, tokenizer=EstimateCounter())
    assert ctx.tokenizer == "estimate" and not ctx.exact_count
    assert ctx.used_tokens == EstimateCounter().count([ctx.text])[0] <= 300
    data = json.loads(json.dumps(ctx.as_dict()))
    assert data["text"] == ctx.text and data["passages"][0]["citation"] == ctx.passages[0].citation
    assert {"question", "budget_tokens", "used_tokens", "passages"} <= set(data)


def test_where_restricts_the_passages(col: semkit.Collection) -> None:
    ctx = context(col, "slow website", where={"title": "Databases"})
    assert [p.id for p in ctx.passages] == ["db"]


def test_bad_budget(col: semkit.Collection) -> None:
    with pytest.raises(InvalidInput, match="budget_tokens"):
        context(col, "x", budget_tokens=0)


def test_citation_of_an_ingested_chunk(tmp_path: Path) -> None:
    meta = {"source": "guide.md", "path": "/docs/guide.md", "title": "Guide", "section": "Setup",
            "page": 2, "chunk": 2, "chunks": 12, "start": 1400}
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("d", model=HashEmbedder(16))
        c.upsert(ids=["guide.md#2"], texts=["Install the package with pip."], metadata=[meta])
        ctx = context(c, "install package")
    assert ctx.passages[0].citation == "Guide — /docs/guide.md, section Setup, page 2, chunk 3/12"
    assert ctx.text.startswith("[1] Guide — /docs/guide.md, section Setup, page 2, chunk 3/12\nInstall")


def test_one_long_record_cannot_take_the_whole_budget(tmp_path: Path) -> None:
    long_text = " ".join(f"Sentence {i} says that caching makes slow sites fast." for i in range(60))
    with semkit.connect(str(tmp_path / "kb")) as db:
        c = db.collection("d", model=HashEmbedder(32))
        c.upsert(ids=["long", "short"], texts=[long_text, "A CDN also makes slow sites fast."])
        ctx = context(c, "slow sites caching", budget_tokens=200, mode="keyword", mmr=None)
        whole = context(c, "slow sites caching", budget_tokens=200, mode="keyword", mmr=None,
                        max_passage_tokens=200)
    assert [p.id for p in ctx.passages] == ["long", "short"]
    long = ctx.passages[0]
    assert long.truncated and long.tokens <= 100 + 20  # body capped at half the budget (+ header)
    assert long.text.endswith("fast. …")  # cut at a sentence end
    assert [p.id for p in whole.passages] == ["long"] and whole.used_tokens <= 200
