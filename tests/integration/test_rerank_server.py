"""Reranking through the server: ``create_app(rerank=...)`` / ``semkit serve --rerank`` load a
reranker once, ``rerank: true`` in a search uses it, the response names it, and a server without
one says how to start it with one. Real servers on 127.0.0.1 with the tiny random cross-encoder
(tests/support/tiny_cross_encoder.py) and the bundled model."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import semkit
from semkit.apps import search
from semkit.models.rerank import CrossEncoder
from tests.integration.test_rerank import DOCS, QUERY
from tests.support.server import RunningServer, free_port, serve, wait_until_serving
from tests.support.tiny_cross_encoder import build_tiny_cross_encoder


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-cross-encoder") / "model")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rerank-server") / "kb"
    with semkit.connect(str(path)) as database:
        database.collection("docs", model="local").upsert(
            ids=[d[0] for d in DOCS], texts=[d[1] for d in DOCS], metadata=[{"title": d[0]} for d in DOCS])
    return path


@pytest.fixture(scope="module")
def reranking(db: Path, tiny_folder: Path) -> Iterator[RunningServer]:
    with serve(str(db), auth=False, rerank=str(tiny_folder)) as running:
        yield running


@pytest.fixture(scope="module")
def plain(db: Path) -> Iterator[RunningServer]:
    with serve(str(db), auth=False) as running:
        yield running


def _search(server_url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{server_url}/v1/collections/docs/search", json=body, timeout=120)


def test_rerank_true_orders_by_the_cross_encoder_and_names_it(reranking: RunningServer, db: Path,
                                                               tiny_folder: Path) -> None:
    assert httpx.get(f"{reranking.url}/healthz").json()["rerank"] == "cross-encoder"
    body = {"query": QUERY, "mode": "hybrid", "k": 5}
    r = _search(reranking.url, **body, rerank=True)
    assert r.status_code == 200, r.text
    got = r.json()
    tiny = CrossEncoder(tiny_folder)
    assert got["reranker"] == tiny.id and got["reranker"].startswith("cross-encoder:model#sha=")
    with semkit.connect(str(db)) as database:
        expected = search(database.collection("docs", create=False), QUERY, k=5, rerank=tiny)
    assert [h["id"] for h in got["hits"]] == [h.id for h in expected]
    assert [h["score"] for h in got["hits"]] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert all("fused" in h["scores"] and "fused" in h["ranks"] for h in got["hits"])
    unranked = _search(reranking.url, **body).json()  # rerank defaults to false, even here
    assert unranked["reranker"] is None and all("fused" not in h["scores"] for h in unranked["hits"])
    assert [h["id"] for h in unranked["hits"]] != [h["id"] for h in got["hits"]]  # the random model disagrees


def test_rerank_needs_a_text_query(reranking: RunningServer) -> None:
    r = _search(reranking.url, vector=[0.1] * 384, rerank=True)
    assert r.status_code == 422 and "rerank needs a text query" in r.json()["error"]["message"]


def test_rerank_on_a_server_without_a_reranker_says_how_to_start_one(plain: RunningServer) -> None:
    assert httpx.get(f"{plain.url}/healthz").json()["rerank"] is None
    r = _search(plain.url, query=QUERY, mode="hybrid", rerank=True)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_input" and "semkit serve --rerank" in error["message"]
    assert _search(plain.url, query=QUERY, mode="hybrid").json()["reranker"] is None


@pytest.mark.slow
def test_semkit_serve_rerank_windows_and_a_bad_folder(db: Path, tmp_path: Path) -> None:
    """The real command: `semkit serve --rerank windows` reranks with the collection's model; a
    folder that is no cross-encoder stops the server at start-up with the reason."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "semkit", "serve", "--db", str(db), "--port", str(port),
                             "--no-auth", "--rerank", "windows", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        assert httpx.get(f"{url}/healthz").json()["rerank"] == "windows"
        got = _search(url, query=QUERY, mode="hybrid", k=3, rerank=True).json()
        assert got["reranker"].startswith("sentence-windows(local:all-MiniLM-L6-v2")
        assert got["hits"][0]["id"] in ("perf", "perf-2")
        assert all(0.0 <= h["score"] <= 1.0 and "fused" in h["scores"] for h in got["hits"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    bad = subprocess.run([sys.executable, "-m", "semkit", "serve", "--db", str(db), "--port", str(free_port()),
                          "--no-auth", "--rerank", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "not a cross-encoder folder" in bad.stderr and "Traceback" not in bad.stderr
