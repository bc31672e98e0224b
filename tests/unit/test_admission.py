"""Admission control's bookkeeping: bounds per route class, Retry-After, route classes."""

from __future__ import annotations

import pytest

from semkit.errors import ConfigError
from semkit.server.admission import Admission, Overloaded, route_class
from semkit.server.limits import Limits


def test_a_full_class_refuses_with_retry_after_and_other_classes_still_admit() -> None:
    admission = Admission({"embeddings": 10, "search": 2, "writes": 1, "jobs": 1})
    admission.admit("search")
    admission.admit("search")
    with pytest.raises(Overloaded) as refused:
        admission.admit("search")
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": str(refused.value.retry_after)}
    assert refused.value.retry_after >= 1
    assert "semkit serve --queue search=N" in str(refused.value.detail)
    admission.admit("writes")  # its own bound
    admission.release("search")
    admission.admit("search")  # room again
    assert admission.snapshot()["search"] == {"admitted": 2, "bound": 2}


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
    admission = Admission({"embeddings": 1, "search": 40, "writes": 1, "jobs": 1})
    for _ in range(40):
        admission.admit("search")
    for _ in range(20):  # 20 done within the last second: ~20/s (over the one-second floor)
        admission.release("search")
    for _ in range(20):
        admission.admit("search")
    with pytest.raises(Overloaded) as refused:
        admission.admit("search")
    assert refused.value.retry_after == 2  # 40 admitted at ~20/s


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
