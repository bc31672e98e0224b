"""Prometheus metrics of one app: requests, latency, embeddings computed, cache hits, and the
process's own (``process_resident_memory_bytes``, ``process_cpu_seconds_total``,
``process_open_fds``... from prometheus_client's process collector, read from /proc on Linux).

Each app gets its own registry (several apps in one process, as in tests, never share
counters). Routes are labelled by their template (``/v1/collections/{name}/search``), never
by the raw path, so label cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import asyncio

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""For what must take milliseconds (a refusal, the event loop's lateness): the 50 ms target sits
on a bucket boundary."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "semkit_http_requests", "HTTP requests handled", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "semkit_http_request_duration_seconds", "Time to answer an HTTP request",
            ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.in_flight = Gauge("semkit_http_requests_in_flight", "Requests being handled",
                               registry=self.registry)
        self.embeddings = Counter(
            "semkit_embeddings_computed", "Texts embedded by a model (cache misses)", ["model"],
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "semkit_embedding_cache_hits", "Texts answered by the embedding cache", ["model"],
            registry=self.registry,
        )
        self.model_batches = Counter(
            "semkit_model_batches", "Model calls (each may merge several requests)", ["model"],
            registry=self.registry,
        )
        self.rate_limited = Counter("semkit_rate_limited", "Requests refused with 429",
                                    registry=self.registry)
        self.jobs = Gauge("semkit_jobs", "Background jobs by state", ["state"], registry=self.registry)
        # Under overload a refusal must come back within milliseconds. A client measures that
        # time plus its own scheduling; these two say what the server itself adds.
        self.refusal_latency = Histogram(
            "semkit_refusal_duration_seconds", "Time from a request reaching the app to its 503/429 "
            "answer being sent", ["status"], buckets=_FAST_BUCKETS, registry=self.registry,
        )
        self.loop_lag = Histogram(
            "semkit_event_loop_lag_seconds", "How late the event loop ran a timer due every 50 ms: "
            "about how long a request that just arrived waits before the server starts reading it",
            buckets=_FAST_BUCKETS, registry=self.registry,
        )
        # Memory, CPU and open files of the server process: what an operator watches first.
        ProcessCollector(registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


LOOP_LAG_PERIOD_S = 0.05


async def watch_loop_lag(histogram: Histogram, period: float = LOOP_LAG_PERIOD_S) -> None:
    """Observe, every ``period``, how late the event loop wakes a sleeper (until cancelled). A
    request's bytes wait about as long before the loop reads them, so this is the server's share
    of the latency a client sees for answers the loop gives at once (refusals, ``/healthz``)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        histogram.observe(max(0.0, loop.time() - due))
