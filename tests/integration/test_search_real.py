"""Search modes, context and evaluation with the real bundled model, on the embedded store
(SQLite FTS5) and on a real PostgreSQL + pgvector (full-text search), plus a SciFact slice."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import semkit
from semkit.apps import _evaluate as evaluate
from semkit.apps._context import context
from semkit.apps._search import search
from semkit.collection import Collection
from semkit.database import Database
from semkit.models.base import Embedder
from tests.support.shared_data import DATA, have

KB = [
    ("perf", "Speeding up a slow website: enable HTTP caching, compress images and minify scripts.",
     {"title": "Web performance", "path": "docs/perf.md", "year": 2023}),
    ("perf-2", "Speed up a slow web site: turn on HTTP caching, compress the images, minify the scripts.",
     {"title": "Web performance (old)", "path": "old/perf.md", "year": 2019}),
    ("cdn", "A content delivery network copies static files to servers near your visitors.",
     {"title": "CDNs", "path": "docs/cdn.md", "year": 2022}),
    ("err", "Error XJ-9000 means the licence file is missing; copy licence.key into the config folder.",
     {"title": "Licence errors", "path": "docs/errors.md", "year": 2021}),
    ("pizza", "Neapolitan pizza needs a very hot oven and a thin, soft crust.",
     {"title": "Pizza", "path": "recipes/pizza.md", "year": 2020}),
    ("cats", "Cats sleep up to sixteen hours a day and groom themselves often.",
     {"title": "Cats", "path": "pets/cats.md", "year": 2018}),
]


@pytest.fixture(scope="module")
def model() -> Embedder:
    return semkit.model("local")


def _fill(db: Database, model: Embedder) -> Collection:
    col = db.collection("kb", model=model)
    col.upsert(ids=[d[0] for d in KB], texts=[d[1] for d in KB], metadata=[d[2] for d in KB])
    return col


@pytest.fixture
def embedded(tmp_path: Path, model: Embedder) -> Iterator[Collection]:
    with semkit.connect(tmp_path / "kb") as db:
        yield _fill(db, model)


@pytest.fixture
def pg(postgres_dsn: str, model: Embedder) -> Iterator[Collection]:
    from semkit.store.pgvector import PgVectorStore
    from tests.support.pgserver import drop_schema

    schema = f"t_{uuid.uuid4().hex[:10]}"
    store = PgVectorStore(postgres_dsn, schema=schema)
    try:
        yield _fill(Database(store), model)
    finally:
        store.close()
        drop_schema(postgres_dsn, schema)


def _check_modes(col: Collection) -> None:
    hybrid = search(col, "how to fix a slow website", k=3)
    assert hybrid[0].id in ("perf", "perf-2") and hybrid[0].mode == "hybrid"
    assert hybrid[0].ranks.keys() == {"vector", "keyword"}
    assert hybrid[0].snippet is not None
    marked = [hybrid[0].snippet.text[a:b].lower() for a, b in hybrid[0].snippet.spans]
    assert "slow" in marked
    # A code no model has seen: the keyword list finds it, and hybrid keeps it on top.
    assert search(col, "XJ-9000", k=1, mode="keyword")[0].id == "err"
    assert search(col, "XJ-9000", k=1)[0].id == "err"
    # No shared words: only the vector list can find it, and hybrid keeps it.
    assert search(col, "my pages take forever to load", k=2, mode="vector")[0].id in ("perf", "perf-2")
    assert search(col, "my pages take forever to load", k=2)[0].id in ("perf", "perf-2")
    # Filters apply inside both lists.
    recent = search(col, "slow website caching", k=3, where={"year": {"$gte": 2021}})
    assert "perf-2" not in {h.id for h in recent} and recent[0].id == "perf"
    # MMR: the two near-copies do not both make the top 2.
    plain = [h.id for h in search(col, "slow website caching images", k=2)]
    diverse = [h.id for h in search(col, "slow website caching images", k=2, mmr=0.3)]
    assert set(plain) == {"perf", "perf-2"}
    assert len({"perf", "perf-2"} & set(diverse)) == 1


def test_modes_on_the_embedded_store(embedded: Collection) -> None:
    _check_modes(embedded)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_scores_are_in_0_1_and_fall_with_rank_with_the_real_model(embedded: Collection, mode: str) -> None:
    for query in ("how to fix a slow website", "XJ-9000 licence", "cats and pizza", "quantum chromodynamics"):
        hits = search(embedded, query, k=6, mode=mode)  # type: ignore[arg-type]
        scores = [h.score for h in hits]
        assert all(0.0 <= s <= 1.0 for s in scores), (mode, query, scores)
        assert scores == sorted(scores, reverse=True), (mode, query, scores)
    if mode != "keyword":  # nothing here is about physics: every score is low
        assert search(embedded, "quantum chromodynamics", k=1, mode=mode)[0].score < 0.3  # type: ignore[arg-type]


def test_incidental_shared_words_do_not_beat_meaning(tmp_path: Path, model: Embedder) -> None:
    # The example: with RRF, texts sharing one word of the query ("fixed", "slow", "fix")
    # took ranks 3-5 of "how to fix slow website" from the pages about speed.
    texts = {
        "perf-1": "Speeding up a slow website: measure first, then cache responses and compress images.",
        "perf-2": "Make pages load faster: lazy-load images below the fold and serve them from a CDN.",
        "perf-3": "Sluggish web pages lose visitors: defer render-blocking scripts and inline critical CSS.",
        "plants": "Water houseplants when the soil is dry, not on a fixed schedule.",
        "kyoto": "In Kyoto the buses are slow at rush hour; walk or take the subway.",
        "git": "Commit small changes often so it is easy to fix stuff that breaks.",
    }
    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("kb", model=model)
        col.upsert(ids=list(texts), texts=list(texts.values()))
        default = [h.id for h in search(col, "how to fix slow website", k=3)]
        rrf = [h.id for h in search(col, "how to fix slow website", k=3, fusion="rrf")]
    assert set(default) == {"perf-1", "perf-2", "perf-3"}
    assert set(rrf) != {"perf-1", "perf-2", "perf-3"}  # what the old default did


@pytest.mark.postgres
def test_modes_on_pgvector(pg: Collection) -> None:
    _check_modes(pg)


def test_context_with_the_real_model(embedded: Collection) -> None:
    ctx = context(embedded, "How do I make my website faster?", budget_tokens=80)
    assert ctx.passages and ctx.used_tokens <= 80
    assert ctx.passages[0].path in ("docs/perf.md", "old/perf.md", "docs/cdn.md")
    assert not {"perf", "perf-2"} <= {p.id for p in ctx.passages}  # near-copies: one of them
    assert ctx.text.startswith("[1] ")


SCIFACT = DATA / "scifact"


@pytest.mark.slow
@pytest.mark.skipif(not have("scifact"), reason="shared SciFact data not available")
def test_scifact_slice_hybrid_is_at_least_as_good(tmp_path: Path, model: Embedder) -> None:
    """40 SciFact test queries against their relevant abstracts plus 260 others, through
    load_beir + evaluate_retrieval (embedded store, FTS5 BM25, pytrec_eval)."""
    qrels_lines = (SCIFACT / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    judged: dict[str, set[str]] = {}
    for line in qrels_lines[1:]:
        qid, did, _ = line.split("\t")
        judged.setdefault(qid, set()).add(did)
    qids = sorted(judged, key=int)[:40]
    wanted = set().union(*(judged[q] for q in qids))
    docs = []
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["_id"] in wanted or len(docs) < 260 + len(wanted):
                docs.append(doc)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q in qids for d in sorted(judged[q])), encoding="utf-8")
    data = evaluate.load_beir(corpus, SCIFACT / "queries.jsonl", qrels)
    assert len(data.judged_queries) == 40
    rows = {r.mode: r.metrics for r in evaluate.evaluate_retrieval(data, [model], work_dir=tmp_path)}
    assert rows["vector"]["ndcg@10"] > 0.6 and rows["keyword"]["ndcg@10"] > 0.6
    assert rows["hybrid"]["ndcg@10"] >= max(rows["vector"]["ndcg@10"], rows["keyword"]["ndcg@10"]) - 0.03
