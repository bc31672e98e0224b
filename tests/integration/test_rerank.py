"""Reranking with a cross-encoder from a local folder, run through ONNX: exact scores against
torch, search plumbing (the order is the cross-encoder's), the CLI's --rerank, clear errors for
folders that are not cross-encoders, and a real model when ``SEMKIT_RERANK_MODEL`` names one.
The embedding-only ``SentenceWindows`` reranker: its score against an independent computation
with the bundled model, in search, on the CLI (``--rerank windows``) and its errors."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.apps import search
from semkit.apps._search import RERANK_DEPTH
from semkit.collection import Collection
from semkit.errors import InvalidInput, ModelNotAvailable
from semkit.models.rerank import CrossEncoder, SentenceWindows, load_reranker, sentence_windows
from semkit.vectors import normalize
from tests.e2e.test_cli import run
from tests.support.tiny_cross_encoder import build_tiny_cross_encoder, torch_scores

QUERY = "how to fix a slow website"
DOCS = [
    ("perf", "Speeding up a slow website: enable HTTP caching, compress images and minify scripts."),
    ("perf-2", "Speed up a slow web site: turn on caching, compress the images, minify the scripts."),
    ("cdn", "A content delivery network copies static files to servers near your visitors."),
    ("lazy", "Lazy loading images makes the first page load fast."),
    ("git", "Fix a bad commit on a branch with git commit --amend."),
    ("kyoto", "In Kyoto the buses are slow; travel by bicycle instead."),
    ("plants", "Water the plants when the soil is dry, not on a fixed schedule."),
    ("coffee", "Grind the coffee just before brewing for a better cup."),
    ("cats", "Cats sleep up to sixteen hours a day."),
]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder") / "model")


@pytest.fixture(scope="module")
def tiny(tiny_folder: Path) -> CrossEncoder:
    return CrossEncoder(tiny_folder)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rerank-kb") / "kb"
    with semkit.connect(path) as db:
        db.collection("docs", model=semkit.model("local")).upsert(
            ids=[d[0] for d in DOCS], texts=[d[1] for d in DOCS], metadata=[{"title": d[0]} for d in DOCS])
    return path


@pytest.fixture
def col(store: Path) -> Iterator[Collection]:
    with semkit.connect(store) as db:
        yield db.collection("docs", create=False)


def test_onnx_scores_equal_torch(tiny: CrossEncoder, tiny_folder: Path) -> None:
    passages = [d[1] for d in DOCS] + ["", "slow " * 400]  # an empty passage and a truncated one
    got = tiny.score(QUERY, passages)
    expected = torch_scores(tiny_folder, QUERY, passages[:-1])
    # The reference runs one pair at a time, so padding inside our batches is checked too; the
    # truncated pair is compared on its first max_length tokens, which is what both read.
    assert np.abs(got[:-1] - np.asarray(expected)).max() < 1e-4
    assert got.shape == (len(passages),) and np.all((got >= 0) & (got <= 1))
    assert np.ptp(got) > 0.05  # a model whose scores all agree would test no ordering below


def test_two_label_model_scores_the_last_label(tmp_path: Path) -> None:
    folder = build_tiny_cross_encoder(tmp_path / "two", seed=1, num_labels=2)
    ce = CrossEncoder(folder)
    logits = ce.logits(QUERY, [d[1] for d in DOCS])
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    assert ce.num_labels == 2 and np.allclose(ce.score(QUERY, [d[1] for d in DOCS]), expected, atol=1e-6)


def test_search_orders_by_the_cross_encoder(col: Collection, tiny: CrossEncoder) -> None:
    fused = search(col, QUERY, k=len(DOCS), min_score=0.0)
    reranked = search(col, QUERY, k=len(DOCS), min_score=0.0, rerank=tiny)
    assert {h.id for h in reranked} == {h.id for h in fused}  # fewer docs than the rerank depth
    fused_order = [h.id for h in fused]
    new_order = [h.id for h in reranked]
    assert new_order != fused_order  # the random model disagrees with fusion...
    by_text = {h.id: h.text for h in fused}
    expected = tiny.score(QUERY, [by_text[i] for i in new_order])
    # ...and the final order is exactly its scores, best first, and those are the hit scores
    assert list(expected) == sorted(expected, reverse=True)
    assert np.allclose([h.score for h in reranked], expected, atol=1e-6)
    assert all(0.0 <= h.score <= 1.0 for h in reranked)
    fused_by_id = {h.id: h for h in fused}
    for h in reranked:
        assert h.scores["fused"] == pytest.approx(fused_by_id[h.id].score)
        assert h.ranks["fused"] == fused_by_id[h.id].rank
    assert [h.rank for h in reranked] == list(range(1, len(DOCS) + 1))


def test_rerank_keeps_k_and_min_score(col: Collection, tiny: CrossEncoder) -> None:
    all_hits = search(col, QUERY, k=len(DOCS), min_score=0.0, rerank=tiny)
    top3 = search(col, QUERY, k=3, min_score=0.0, rerank=tiny)
    assert [h.id for h in top3] == [h.id for h in all_hits[:3]]  # depth max(k, 20) covers all
    cut = (all_hits[2].score + all_hits[3].score) / 2
    kept = search(col, QUERY, k=len(DOCS), min_score=cut, rerank=tiny)
    assert [h.id for h in kept] == [h.id for h in all_hits[:3]]  # the cut-off reads the new score
    vector_mode = search(col, QUERY, k=2, mode="vector", rerank=tiny)
    assert [h.id for h in vector_mode] == [h.id for h in all_hits[:2]]  # pool widened to the depth
    assert len(DOCS) <= RERANK_DEPTH


def test_rerank_rejects_a_vector_query_and_a_non_reranker(col: Collection, tiny: CrossEncoder) -> None:
    with pytest.raises(InvalidInput, match="query text"):
        search(col, np.ones(384, dtype=np.float32), mode="vector", rerank=tiny)
    with pytest.raises(InvalidInput, match="score"):
        search(col, QUERY, rerank="cross-encoder")  # type: ignore[arg-type]


def test_bad_folders_say_what_a_cross_encoder_folder_holds(tmp_path: Path, tiny_folder: Path) -> None:
    with pytest.raises(ModelNotAvailable, match=r"does not exist.*config\.json.*tokenizer\.json"):
        CrossEncoder(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_folder, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(ModelNotAvailable, match=r"no tokenizer\.json"):
        CrossEncoder(partial)
    embedder = tmp_path / "embedder"
    shutil.copytree(tiny_folder, embedder)
    config = json.loads((embedder / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (embedder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotAvailable, match=r"BertModel, not a cross-encoder.*ForSequenceClassification"):
        CrossEncoder(embedder)


def test_cli_search_rerank(store: Path, tiny_folder: Path, tiny: CrossEncoder) -> None:
    args = ("search", QUERY, "--db", str(store), "-k", "4", "--min-score", "0")
    hits = json.loads(run(*args, "--rerank", str(tiny_folder), "--json").stdout)
    with semkit.connect(store) as db:
        expected = search(db.collection("docs", create=False), QUERY, k=4, min_score=0.0, rerank=tiny)
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert all("fused" in h["scores"] for h in hits)
    table = run(*args, "--rerank", str(tiny_folder)).stdout
    assert "reranked" in table and "cross-encoder relevance" in table
    bad = run(*args, "--rerank", str(store.parent), check=False)  # a folder, but no model in it
    assert bad.returncode != 0 and "not a cross-encoder folder" in bad.stderr and "Traceback" not in bad.stderr


# --- the embedding-only reranker --------------------------------------------------------------

SENTENCES = ["Cats sleep up to sixteen hours a day.",
             "A slow website gets faster when you cache pages and compress images.",
             "Grind the coffee just before brewing."]
MIXED = " ".join(SENTENCES)  # one sentence answers the query; the whole text is about three things


def _best_cosine(model: Any, query: str, windows: list[str]) -> float:
    q = normalize(model.embed([query], "query"))[0]
    return max(0.0, float((normalize(model.embed(windows, "document")) @ q).max()))


def test_sentence_windows_score_is_the_best_window_blended_with_the_fused_score() -> None:
    model = semkit.model("local")
    windows = SentenceWindows(model)
    passages = [MIXED, DOCS[-1][1], "", None]
    best = [_best_cosine(model, QUERY, SENTENCES), _best_cosine(model, QUERY, [DOCS[-1][1]]), 0.0, 0.0]
    assert np.allclose(windows.score(QUERY, passages), best, atol=1e-5)  # no fused score: the window alone
    fused = [0.2, 0.9, 0.5, 0.1]
    blended = windows.score(QUERY, passages, fused=fused)
    w = windows.fused_weight
    assert np.allclose(blended, [w * f + (1 - w) * b for f, b in zip(fused, best, strict=True)], atol=1e-5)
    assert np.all((blended >= 0) & (blended <= 1))
    pairs = SentenceWindows(model, window=2).score(QUERY, [MIXED])
    assert pairs[0] == pytest.approx(_best_cosine(model, QUERY, [" ".join(SENTENCES[:2]), " ".join(SENTENCES[1:])]),
                                     abs=1e-5)
    # The point of it: the answering sentence is closer to the query than the whole mixed text.
    assert best[0] > _best_cosine(model, QUERY, [MIXED])
    assert sentence_windows(MIXED, 1) == SENTENCES and sentence_windows("  ", 1) == []


def test_search_with_sentence_windows_uses_the_collection_model(col: Collection) -> None:
    fused = {h.id: h for h in search(col, QUERY, k=len(DOCS), min_score=0.0)}
    hits = search(col, QUERY, k=len(DOCS), min_score=0.0, rerank=SentenceWindows())
    assert {h.id for h in hits} == set(fused)
    bound = SentenceWindows().for_collection(col)
    assert bound.model is col.model
    expected = bound.score(QUERY, [h.text for h in hits], fused=[fused[h.id].score for h in hits])
    assert np.allclose([h.score for h in hits], expected, atol=1e-6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.scores["fused"] == pytest.approx(fused[h.id].score) for h in hits)
    assert {hits[0].id, hits[1].id} == {"perf", "perf-2"}


def test_sentence_windows_refuses_what_it_cannot_do(tmp_path: Path, tiny_folder: Path) -> None:
    with semkit.connect(tmp_path / "own") as db:
        own = db.collection("own", model=None, dimensions=384)
        own.upsert(ids=["a"], texts=["a slow website"], vectors=np.ones((1, 384), dtype=np.float32))
        with pytest.raises(InvalidInput, match=r"own vectors.*cross-encoder"):
            search(own, QUERY, mode="keyword", rerank=SentenceWindows())
    with pytest.raises(InvalidInput, match="window"):
        SentenceWindows(window=0)
    with pytest.raises(InvalidInput, match="fused_weight"):
        SentenceWindows(fused_weight=1.5)
    with pytest.raises(InvalidInput, match="no model"):
        SentenceWindows().score(QUERY, ["text"])
    assert isinstance(load_reranker("windows"), SentenceWindows)
    assert isinstance(load_reranker(str(tiny_folder)), CrossEncoder)


def test_cli_search_rerank_windows(store: Path) -> None:
    args = ("search", QUERY, "--db", str(store), "-k", "4", "--min-score", "0", "--rerank", "windows")
    hits = json.loads(run(*args, "--json").stdout)
    with semkit.connect(store) as db:
        expected = search(db.collection("docs", create=False), QUERY, k=4, min_score=0.0, rerank=SentenceWindows())
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-6)
    table = run(*args).stdout
    assert "reranked" in table and "best sentence's cosine" in table


REAL = os.environ.get("SEMKIT_RERANK_MODEL")


@pytest.mark.skipif(not REAL, reason="set SEMKIT_RERANK_MODEL to a local cross-encoder folder "
                                     "(e.g. cross-encoder/ms-marco-MiniLM-L6-v2) to run the real-model check")
def test_real_cross_encoder_puts_the_performance_pages_first(col: Collection) -> None:
    ce = CrossEncoder(str(REAL))
    hits = search(col, QUERY, k=3, min_score=0.0, rerank=ce)
    assert {h.id for h in hits[:2]} <= {"perf", "perf-2", "lazy"}
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    relevant, unrelated = ce.score(QUERY, [DOCS[0][1], DOCS[-1][1]])
    assert relevant > 0.5 > unrelated
