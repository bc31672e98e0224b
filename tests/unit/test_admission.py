"""Admission control's bookkeeping: bounds per route class, Retry-After, route classes."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from semkit.errors import ConfigError
from semkit.server.admission import Admission, AdmissionMiddleware, Overloaded, route_class
from semkit.server.limits import Limits


def test_a_full_class_refuses_with_retry_after_and_other_classes_still_admit() -> None:
    admission = Admission({"embeddings": 10, "search": 2, "writes": 1, "jobs": 1})
    admission.admit("search")
    admission.admit("search")
    with pytest.raises(Overloaded) as refused:
        admission.admit("search")
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after),
                                     "Retry-After-Ms": str(refused.value.retry_after_ms)}
    assert refused.value.retry_after >= 1
    assert refused.value.retry_after == -(-refused.value.retry_after_ms // 1000)  # the same wait, rounded up
    assert "semkit serve --queue search=N" in str(refused.value.detail)
    admission.admit("writes")  # its own bound
    admission.release("search")
    admission.admit("search")  # room again
    snapshot = admission.snapshot()["search"]
    assert (snapshot["admitted"], snapshot["bound"], snapshot["adaptive"]) == (2, 2, False)



def test_check_room_refuses_when_a_request_the_size_of_the_smallest_recent_one_would_not_fit() -> None:
    admission = Admission({"embeddings": 60, "search": 1, "writes": 1, "jobs": 1})
    admission.check_room("embeddings")  # idle: even an oversized request would be admitted
    for _ in range(3):
        admission.admit("embeddings", 16)  # 48 admitted, every request 16 texts
    # Another 16-text request would not fit: refused at the door, before its body is read...
    with pytest.raises(Overloaded, match="48 texts admitted"):
        admission.check_room("embeddings")
    # ...though the route's own count still admits what fits, should a smaller one get that far.
    admission.admit("embeddings", 12)
    assert admission.in_flight("embeddings") == 60
    for _ in range(4):
        admission.release("embeddings", 16)
    admission.release("embeddings", 12)  # idle again
    admission.admit("embeddings", 1)  # a one-text request among the recent ones
    for _ in range(3):
        admission.admit("embeddings", 16)  # 49 admitted
    admission.check_room("embeddings")  # a one-text request fits: no refusal at the door
    for _ in range(32):  # the one-text request leaves the sizes seen
        admission.release("embeddings", 16)
        admission.admit("embeddings", 16)
    with pytest.raises(Overloaded):
        admission.check_room("embeddings")
    assert admission.in_flight("embeddings") == 49  # checking never counts work in


def test_embeddings_count_texts_and_an_oversized_request_is_admitted_alone() -> None:
    admission = Admission({"embeddings": 8, "search": 1, "writes": 1, "jobs": 1})
    with admission.slot("embeddings", 100):  # larger than the bound, but the class is idle
        assert admission.in_flight("embeddings") == 100
        with pytest.raises(Overloaded, match="100 texts admitted"):
            admission.admit("embeddings", 1)
    assert admission.in_flight("embeddings") == 0
    admission.admit("embeddings", 5)
    admission.admit("embeddings", 3)
    with pytest.raises(Overloaded):
        admission.admit("embeddings", 1)


def test_retry_after_follows_how_fast_the_class_drains() -> None:
    now = [1000.0]
    admission = Admission({"embeddings": 1, "search": 40, "writes": 1, "jobs": 1}, clock=lambda: now[0])
    for _ in range(40):
        admission.admit("search")
    now[0] += 0.5
    for _ in range(20):  # 20 done within the first half second: 20/s (over the one-second floor)
        admission.release("search")
    for _ in range(20):
        admission.admit("search")
    waits = []
    for _ in range(200):
        with pytest.raises(Overloaded) as refused:
            admission.admit("search")
        waits.append(refused.value.retry_after_ms)
        assert refused.value.retry_after == -(-refused.value.retry_after_ms // 1000)
    # 40 admitted at ~20/s drain in ~2 s: each refusal asks for a wait in [2 s, 4 s], spread over
    # it so that the refused do not come back together.
    assert min(waits) >= 1900 and max(waits) <= 4100
    assert max(waits) - min(waits) > 1000
    assert len(set(waits)) > 100


def test_the_spread_of_retry_after_ms_and_its_bounds() -> None:
    assert Overloaded("search", 4, 4, "requests", 2.0, jitter=0.0).retry_after_ms == 2000
    assert Overloaded("search", 4, 4, "requests", 2.0, jitter=0.5).retry_after_ms == 3000
    shortest = Overloaded("search", 4, 4, "requests", 0.01, jitter=0.0)
    assert (shortest.retry_after_ms, shortest.retry_after) == (250, 1)  # never sooner than 250 ms
    longest = Overloaded("search", 4, 4, "requests", 500.0, jitter=1.0)
    assert (longest.retry_after_ms, longest.retry_after) == (60000, 60)


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/healthz", None), ("GET", "/metrics", None), ("GET", "/ui/app.js", None), ("GET", "/docs", None),
    ("POST", "/v1/embeddings", None),  # admitted by its route, counted in texts
    ("POST", "/v1/collections/docs/search", "search"), ("POST", "/v1/collections/docs/recommend", "search"),
    ("GET", "/v1/collections", "search"), ("GET", "/v1/models", "search"),
    ("POST", "/v1/collections", "writes"), ("DELETE", "/v1/collections/docs", "writes"),
    ("POST", "/v1/collections/docs/upsert", "writes"), ("POST", "/v1/collections/docs/delete", "writes"),
    ("POST", "/v1/collections/docs/index", "jobs"), ("POST", "/v1/collections/docs/cluster", "jobs"),
    ("GET", "/v1/jobs/abc", "jobs"),
    ("POST", "/pinecone/docs/query", "search"), ("GET", "/pinecone/docs/vectors/fetch", "search"),
    ("POST", "/pinecone/docs/vectors/upsert", "writes"), ("POST", "/pinecone/docs/vectors/delete", "writes"),
])
def test_route_classes(method: str, path: str, expected: str | None) -> None:
    assert route_class(method, path) == expected


def test_queue_bounds_from_serve_options() -> None:
    limits = Limits().with_queue_bounds(["search=128", "Embeddings=64"])
    assert limits.queue_bounds() == {"embeddings": 64, "search": 128, "writes": Limits().queue_writes,
                                     "jobs": Limits().queue_jobs}
    for bad in ("search", "search=0", "reads=4", "search=x"):
        with pytest.raises(ConfigError, match="--queue"):
            Limits().with_queue_bounds([bad])


def test_an_adaptive_bound_follows_the_measured_drain_rate() -> None:
    from semkit.server import admission as adm

    admission = Admission({"embeddings": 8, "search": 64, "writes": 1, "jobs": 1}, target_s=0.5)
    q = adm._ClassQueue  # the clock is passed in, so the test needs no sleeping
    search = admission._queues["search"]
    assert isinstance(search, q)
    now = 1000.0
    # 300 requests/s finished over 2 busy seconds: the bound becomes 0.5 s x 300/s = 150
    search.started(600, now)
    for step in range(1, 601):
        search.finished(1, now + step / 300)
        search.started(1, now + step / 300)
    search.finished(1, now + 2.3)  # past the resize interval: ~601 / 2.3 busy s = 261/s
    assert 120 <= search.limit <= 160
    # a slow class shrinks, but never below 1/8 of where it started
    slow = admission._queues["embeddings"]
    slow.started(1, now)
    slow.finished(1, now + 10.0)
    assert slow.limit == max(2, 8 // adm.ADAPTIVE_RANGE)


def test_a_bound_the_operator_set_never_adapts() -> None:
    limits = Limits().with_queue_bounds(["search=5"])
    assert limits.fixed_queues == ("search",)
    admission = Admission(limits.queue_bounds(), target_s=1.0, fixed=limits.fixed_queues)
    search = admission._queues["search"]
    search.started(1, 0.0)
    for i in range(1, 200):
        search.finished(1, i / 100)
        search.started(1, i / 100)
    assert admission.limit("search") == 5
    assert admission.snapshot()["search"]["adaptive"] is False
    assert admission.snapshot()["embeddings"]["adaptive"] is True


def test_an_adaptive_bound_waits_for_a_second_of_work_before_moving() -> None:
    admission = Admission({"embeddings": 8, "search": 64, "writes": 1, "jobs": 1}, target_s=0.5)
    search = admission._queues["search"]
    search.started(16, 0.0)
    for step in range(1, 31):  # 30 done in the first 0.3 s: too little to judge the class by
        search.finished(1, step / 100)
        search.started(1, step / 100)
    assert search.limit == 64


def test_store_threads_follow_the_cores_for_a_local_store_and_the_network_for_a_server() -> None:
    cores = max(2, len(os.sched_getaffinity(0)))
    automatic = Limits()
    assert automatic.store_threads("./kb") == cores
    assert automatic.store_threads("memory://") == cores
    assert automatic.store_threads("postgresql://me@db/app") == 4 * cores
    assert Limits(store_concurrency=3).store_threads("./kb") == 3
    assert Limits(store_concurrency=3).store_threads("postgresql://me@db/app") == 3


def test_a_burst_is_refused_before_the_admitted_requests_go_on() -> None:
    """Requests arriving together: every refusal is sent before any admitted request reaches
    the app (it waits for the model anyway; a refused client wants its 503 now), and the 503
    is the API's JSON error with both retry headers."""
    events: list[tuple[str, int]] = []

    async def inner_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        events.append(("app", scope["n"]))

    middleware = AdmissionMiddleware(inner_app, Admission({"search": 3}))
    responses: dict[int, list[dict[str, Any]]] = {}

    async def request(n: int) -> None:
        scope = {"type": "http", "method": "POST", "path": "/v1/collections/docs/search", "n": n}

        async def send(message: dict[str, Any]) -> None:
            responses.setdefault(n, []).append(message)
            if message["type"] == "http.response.body":
                events.append(("503", n))

        await middleware(scope, None, send)

    async def burst() -> None:
        await asyncio.gather(*(request(n) for n in range(8)))

    asyncio.run(burst())
    assert [kind for kind, _ in events] == ["503"] * 5 + ["app"] * 3
    assert sorted(n for kind, n in events if kind == "app") == [0, 1, 2]  # the first three arrived were admitted
    start, body = responses[7]
    headers = dict(start["headers"])
    assert start["status"] == 503 and headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body["body"])
    assert int(headers[b"retry-after"]) == -(-int(headers[b"retry-after-ms"]) // 1000)
    error = json.loads(body["body"])["error"]
    assert (error["type"], error["code"], error["param"]) == ("server_error", "server_overloaded", None)
    assert "3 requests admitted, its bound is 3" in error["message"]


def test_a_target_is_set_for_every_class_or_for_one() -> None:
    assert set(Limits().queue_targets().values()) == {0.5}
    assert set(Limits(queue_target_seconds=0).queue_targets().values()) == {0.0}  # every bound fixed
    # SECONDS alone sets every class alike; CLASS=SECONDS one class, keeping the others.
    assert Limits().with_queue_targets(["search=2"]).queue_targets() == {
        "embeddings": 0.5, "search": 2.0, "writes": 0.5, "jobs": 0.5}
    assert set(Limits().with_queue_targets(["search=2", "0.25"]).queue_targets().values()) == {0.25}
    fixed_but_embeddings = Limits().with_queue_targets(["0", "embeddings=1.5"])
    assert fixed_but_embeddings.queue_targets() == {"embeddings": 1.5, "search": 0.0, "writes": 0.0, "jobs": 0.0}
    admission = Admission(fixed_but_embeddings.queue_bounds(), target_s=fixed_but_embeddings.queue_targets())
    assert {name: q["adaptive"] for name, q in admission.snapshot().items()} == {
        "embeddings": True, "search": False, "writes": False, "jobs": False}
    embeddings = admission._queues["embeddings"]
    embeddings.started(1, 0.0)
    for step in range(1, 601):  # 300 texts/s over 2 busy seconds: 1.5 s x 300/s
        embeddings.finished(1, step / 300)
        embeddings.started(1, step / 300)
    embeddings.finished(1, 2.3)
    assert 360 <= embeddings.limit <= 480
    for bad in ("-1", "nan", "embeddings=", "queries=1", "fast"):
        with pytest.raises(ConfigError, match="--queue-target"):
            Limits().with_queue_targets([bad])


def test_refused_embeddings_wait_two_drain_times_and_searches_one() -> None:
    clock = [100.0]
    admission = Admission({"embeddings": 32, "search": 4, "writes": 1, "jobs": 1}, clock=lambda: clock[0])
    for name, units in (("embeddings", 16), ("search", 1)):
        admission.admit(name, units)  # type: ignore[arg-type]
        clock[0] += 1.0
        admission.release(name, units)  # type: ignore[arg-type]
    # Each class finished its work at its own rate: 16 texts/s and 1 search/s.
    admission.admit("embeddings", 32)
    for _ in range(4):
        admission.admit("search")
    waits = {}
    for name in ("embeddings", "search"):
        with pytest.raises(Overloaded) as refused:
            admission.admit(name, 16 if name == "embeddings" else 1)  # type: ignore[arg-type]
        waits[name] = refused.value.retry_after_ms / 1000
    assert 4.0 <= waits["embeddings"] <= 8.0  # 32 texts at 16/s = 2 s, twice: [4 s, 8 s]
    assert 4.0 <= waits["search"] <= 8.0  # 4 searches at 1/s = 4 s, once: [4 s, 8 s]
