"""Overload answers 503 + Retry-After at once instead of queueing without bound (a real server
with tiny queues), and the search defaults and embed-first path over HTTP match the library."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from semkit.server.limits import Limits
from tests.support.server import RunningServer, serve
from tests.support.shared_data import banking_sample


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # Fixed bounds (no adaptation), so the test knows them.
    limits = Limits(queue_embeddings=4, queue_search=64, queue_target_seconds=0)
    with serve(str(tmp_path_factory.mktemp("overload") / "kb"), auth=False, limits=limits, cache=False) as running:
        yield running


def _wait_admitted(url: str, route_class: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queues = httpx.get(f"{url}/healthz", timeout=10).json()["queues"]
        if queues[route_class]["admitted"] > 0:
            return queues  # type: ignore[no-any-return]
        time.sleep(0.005)
    raise AssertionError(f"no {route_class} request was admitted within {timeout:g} s")


def test_a_full_embeddings_queue_answers_503_with_retry_after_while_health_and_other_classes_answer(
        tiny: RunningServer) -> None:
    _, texts, _ = banking_sample(1000, "t")
    big: dict[str, httpx.Response] = {}

    def send_big() -> None:  # one request larger than the whole bound: admitted because the class is idle
        big["r"] = httpx.post(f"{tiny.url}/v1/embeddings", json={"model": "local", "input": texts}, timeout=600)

    sender = threading.Thread(target=send_big)
    sender.start()
    try:
        queues = _wait_admitted(tiny.url, "embeddings")
        assert (queues["embeddings"]["admitted"], queues["embeddings"]["bound"]) == (1000, 4)
        assert queues["embeddings"]["adaptive"] is False
        refused = httpx.post(f"{tiny.url}/v1/embeddings", json={"model": "local", "input": "one more"}, timeout=60)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        # The wait to the millisecond, spread so that refused clients do not come back together;
        # Retry-After is the same wait rounded up to whole seconds.
        wait_ms = int(refused.headers["Retry-After-Ms"])
        assert wait_ms >= 250 and int(refused.headers["Retry-After"]) == -(-wait_ms // 1000)
        assert refused.json()["error"]["code"] == "server_overloaded"
        assert "retry in" in refused.json()["error"]["message"]
        # A full queue refuses before reading the body: even one that is not JSON gets the 503,
        # not the 400 its parsing would give.
        unread = httpx.post(f"{tiny.url}/v1/embeddings", content=b'{"model": "local", "input": ',
                            headers={"content-type": "application/json"}, timeout=60)
        assert unread.status_code == 503 and "Retry-After" in unread.headers, unread.text
        # Health and another route class are not queued behind the embeddings.
        assert httpx.get(f"{tiny.url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{tiny.url}/v1/collections", timeout=60).status_code == 200
        metrics = httpx.get(f"{tiny.url}/metrics", timeout=10).text
        assert 'semkit_overloaded_total{route_class="embeddings"} 2.0' in metrics
        # The server's own time to each refusal, apart from the client's, and how late its loop runs.
        assert 'semkit_refusal_duration_seconds_count{status="503"} 2.0' in metrics
        assert re.search(r"^semkit_event_loop_lag_seconds_count [1-9]", metrics, re.MULTILINE), metrics
    finally:
        sender.join(timeout=600)
    assert big["r"].status_code == 200 and len(big["r"].json()["data"]) == 1000
    assert httpx.get(f"{tiny.url}/healthz", timeout=10).json()["queues"]["embeddings"]["admitted"] == 0
    # With the queue drained the same small request goes through.
    again = httpx.post(f"{tiny.url}/v1/embeddings", json={"model": "local", "input": "one more"}, timeout=60)
    assert again.status_code == 200


def test_http_search_defaults_to_the_library_hybrid_search(tiny: RunningServer, tmp_path: Path) -> None:
    from semkit import apps

    ids, texts, meta = banking_sample(60, "b")
    with httpx.Client(base_url=tiny.url, timeout=120) as client:
        assert client.post("/v1/collections", json={"name": "bank", "model": "local"}).status_code == 201
        records = [{"id": i, "text": t, "metadata": m} for i, t, m in zip(ids, texts, meta, strict=True)]
        assert client.post("/v1/collections/bank/upsert", json={"records": records}).status_code == 200
        query = "my card was declined at the shop"
        answer = client.post("/v1/collections/bank/search", json={"query": query}).json()
        by_vector = client.post("/v1/collections/bank/search",
                                json={"vector": [0.0] * 383 + [1.0], "k": 3}).json()
    col = tiny.state.collection("bank")
    library = apps.search(col, query)
    assert answer["mode"] == "hybrid"
    assert [h["id"] for h in answer["hits"]] == [h.id for h in library]
    assert [h["score"] for h in answer["hits"]] == pytest.approx([h.score for h in library], abs=1e-5)
    assert by_vector["mode"] == "vector" and len(by_vector["hits"]) == 3
