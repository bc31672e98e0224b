"""Request limits: body size and batch sizes (413), a per-key rate limit (429), and the bounds
of the admission queues (503, ``server/admission.py``).

The body limit is Starlette's ``RequestBodyLimitMiddleware``: it counts bytes as the body
streams in, so a client that lies about ``Content-Length`` or sends chunks cannot make the
server buffer more than the limit. The rate limit is a token bucket per caller (the key id, or the client address on a
``--no-auth`` server): ``rate`` requests per second on average with bursts of ``burst``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import ConfigError, InvalidInput
from .responses import ApiError


@dataclass(frozen=True)
class Limits:
    """Every limit of the server in one value; ``0`` / ``None`` where noted turns one off."""

    max_body_bytes: int = 16 * 1024 * 1024
    max_embedding_inputs: int = 2048
    """Inputs in one ``/v1/embeddings`` request (OpenAI's own limit is 2048)."""
    max_upsert_records: int = 10_000
    max_ids: int = 10_000
    """Ids in one get / delete / recommend request."""
    max_k: int = 1_000
    max_image_pixels: int = 8192 * 8192
    """Pixels of one image searched by (width x height, read from its header before decoding):
    a small compressed file can decode to gigabytes; 8192 x 8192 passes any camera photo."""
    rate_limit: float = 0.0
    """Requests per second per key; 0 = unlimited (a key may carry its own)."""
    burst: int = 0
    """Bucket size; 0 = twice the rate (at least 1)."""
    model_concurrency: int = 2
    """Model calls running at once. Two on this 2-core machine: a second call overlaps its
    tokenisation and Python work with the first's matrix products (measured: +10-40% texts/s
    with 8 clients, ``benchmarks/server_embeddings.py --model-workers 1|2``)."""
    model_threads: int = 0
    """Threads each call of a local model uses (onnxruntime intra-op); 0 = one when
    ``model_concurrency`` >= 2 (the calls run side by side, one core each, instead of 2 calls x
    2 threads fighting over 2 vCPUs: measured +15-20% texts/s with 16 single-text clients, +5-12%
    searches/s, rejects and /healthz answered ~40% sooner under overload), else the model's
    default. ``SEMKIT_LOCAL_THREADS``, when set, wins."""
    model_nice: int = 10
    """Niceness added to the model worker threads (Linux): the event loop, which answers every
    request, refusals and ``/healthz`` included, then gets a core as soon as it has something to
    do instead of waiting behind model calls; the model still gets every cycle the loop leaves.
    Measured under overload (256 clients, 2 vCPUs, load ~2.5 with other work; 3 interleaved pairs,
    nice 10 vs 0): 503s p99 client side 87-135 vs 143-182 ms, server side 3.5-4.1 vs 5.0-5.1 ms,
    event-loop lateness p50 0.9-1.2 vs 1.8-2.8 ms; accepted p99 unchanged. (The store threads at
    nice 10 too cut 503s p99 a little more, 81-107 ms, but cost ~6% of searches/s at 16 clients
    when the clients share the machine: not done.) 0 runs them at the loop's priority.
    onnxruntime's own pool threads (``model_threads`` >= 2) keep the usual priority."""
    store_concurrency: int = 0
    """Store/app calls running at once in the worker threads (``semkit serve --store-threads``).
    0 = automatic (``store_threads``): one per CPU core for a store in this process (a folder,
    ``memory://``), whose calls are Python and NumPy work that mostly holds the GIL, so more threads
    than cores only queue for it; four per core for a database server (``postgresql://``,
    ``qdrant://``), whose calls mostly wait on the network. Measured on 2 vCPUs, embedded store,
    hybrid search at 16 clients, two interleaved pairs: 2 threads 190 / 187 q/s vs 4 threads
    158 / 180 (1 and 4 clients unchanged)."""

    def store_threads(self, db_uri: str) -> int:
        """How many store calls run at once for a store at ``db_uri``."""
        if self.store_concurrency > 0:
            return self.store_concurrency
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        in_process = "://" not in db_uri or db_uri.startswith(("memory://", "file://"))
        return max(2, cores) if in_process else 4 * max(2, cores)
    max_batch_texts: int = 256
    """Texts merged into one model call from concurrent requests."""
    queue_embeddings: int = 256
    """Texts of ``/v1/embeddings`` requests admitted at once (running or waiting); more answer
    503. The starting bound, before the adaptive bound has measured this machine: the bundled
    model embeds ~300-350 short texts/s on 2 vCPUs, so a full queue drains in < 1 s
    (``benchmarks/server_load.py``)."""
    queue_search: int = 64
    """Search and read requests admitted at once (~100-200 searches/s on 2 vCPUs: < 1 s of work)."""
    queue_writes: int = 32
    """Upserts, deletes, collection creation and drops admitted at once."""
    queue_jobs: int = 16
    """Whole-collection work admitted at once: ``/index``, dedup, cluster, classify, outliers, job polls."""
    queue_target_seconds: float = 0.5
    """Adaptive bounds: each class's bound follows ``this x its measured throughput`` (within
    1/8..8x of the ``queue_*`` value it starts from), so admitted work waits about this long on
    average (Little's law) and its p99 stays under ~2 s; 0 keeps the ``queue_*`` bounds fixed
    (``semkit serve --queue-target``). ``class_queue_targets`` overrides it per class."""
    class_queue_targets: tuple[tuple[str, float], ...] = ()
    """Classes whose target differs from ``queue_target_seconds`` (``semkit serve --queue-target
    CLASS=SECONDS``)."""
    fixed_queues: tuple[str, ...] = ()
    """Classes whose bound the operator set (``--queue CLASS=N``): those never adapt."""

    def queue_bounds(self) -> dict[str, int]:
        """Each admission route class's bound."""
        return {"embeddings": self.queue_embeddings, "search": self.queue_search,
                "writes": self.queue_writes, "jobs": self.queue_jobs}

    def queue_targets(self) -> dict[str, float]:
        """Each admission route class's adaptive target, seconds (0: a fixed bound)."""
        own = dict(self.class_queue_targets)
        return {name: own.get(name, self.queue_target_seconds) for name in self.queue_bounds()}

    def with_queue_targets(self, settings: Iterable[str]) -> Limits:
        """These limits with targets set from ``SECONDS`` (every class alike) or ``CLASS=SECONDS``
        strings (``semkit serve --queue-target 0.5 --queue-target embeddings=2``), in order."""
        limits = self
        for setting in settings:
            name, eq, value = setting.rpartition("=")
            name = name.strip().lower()
            try:
                seconds = float(value)
            except ValueError:
                seconds = -1.0
            if not math.isfinite(seconds) or seconds < 0 or (eq and name not in self.queue_bounds()):
                raise ConfigError(f"--queue-target {setting!r}: give SECONDS (every class) or CLASS=SECONDS, "
                                  f"SECONDS >= 0, CLASS one of {', '.join(self.queue_bounds())} "
                                  "(e.g. --queue-target 0.5 or --queue-target embeddings=2)")
            if eq:
                targets = {**dict(limits.class_queue_targets), name: seconds}
                limits = replace(limits, class_queue_targets=tuple(targets.items()))
            else:
                limits = replace(limits, queue_target_seconds=seconds, class_queue_targets=())
        return limits

    def with_queue_bounds(self, settings: Iterable[str]) -> Limits:
        """These limits with bounds set from ``CLASS=N`` strings (``semkit serve --queue search=128``)."""
        changes: dict[str, int] = {}
        for setting in settings:
            name, _, value = setting.partition("=")
            name = name.strip().lower()
            if name not in self.queue_bounds() or not value.strip().isdigit() or int(value) < 1:
                raise ConfigError(f"--queue {setting!r}: give CLASS=N with N >= 1, CLASS one of "
                                  f"{', '.join(self.queue_bounds())} (e.g. --queue search=128)")
            changes[f"queue_{name}"] = int(value)
        fixed = tuple(sorted({*self.fixed_queues, *(k.removeprefix("queue_") for k in changes)}))
        return replace(self, **changes, fixed_queues=fixed)

    # --- the checks routes make, one message each --------------------------------------------

    def check_k(self, k: int) -> None:
        """422 for a result count above ``max_k``."""
        if k > self.max_k:
            raise InvalidInput(f"k={k} is above the server's limit of {self.max_k}")

    def check_ids(self, count: int) -> None:
        """413 for more ids in one request than ``max_ids``."""
        _check_batch(count, self.max_ids, "ids", "too_many_ids")

    def check_upsert_records(self, count: int) -> None:
        """413 for more records in one upsert than ``max_upsert_records``."""
        _check_batch(count, self.max_upsert_records, "records", "too_many_records")

    def check_embedding_inputs(self, count: int) -> None:
        """413 for more inputs in one ``/v1/embeddings`` request than ``max_embedding_inputs``."""
        _check_batch(count, self.max_embedding_inputs, "inputs", "too_many_inputs")


def _check_batch(count: int, limit: int, what: str, code: str) -> None:
    if count > limit:
        raise ApiError(413, f"{count} {what} in one request; the limit is {limit}: send smaller batches", code)


MAX_RATE_BUCKETS = 10_000
"""Callers whose buckets are kept at most (a bounded cache: a ``--no-auth`` server keys them by
client address). Past it, buckets that have refilled are dropped: a full bucket is the same as
none, so no caller gains anything from the pruning."""


class RateLimiter:
    """Token buckets by caller id; thread-safe; at most ``MAX_RATE_BUCKETS`` of them kept."""

    def __init__(self, rate: float, burst: int = 0) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _prune(self, now: float, capacity: float, rate: float) -> None:
        refill_s = capacity / rate
        for caller in [c for c, (_, last) in self._buckets.items() if now - last >= refill_s]:
            del self._buckets[caller]
        while len(self._buckets) >= MAX_RATE_BUCKETS:  # all busy: the least recently seen go
            del self._buckets[next(iter(self._buckets))]

    def check(self, caller: str, rate: float | None = None) -> float:
        """0 if the request may go ahead (and is counted), else seconds to wait."""
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return 0.0
        capacity = float(self.burst or max(1, math.ceil(2 * rate)))
        now = time.monotonic()
        with self._lock:
            if caller not in self._buckets and len(self._buckets) >= MAX_RATE_BUCKETS:
                self._prune(now, capacity, rate)
            tokens, last = self._buckets.pop(caller, (capacity, now))  # re-inserted: newest last
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / rate
