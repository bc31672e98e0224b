"""Admission control: a bounded queue per route class, and a fast 503 beyond it.

Without it, a server given more work than it can do lets every request wait longer and longer
(measured: 256 clients sending 16 texts each waited 12-13 s, so any client with a shorter
timeout failed every request). Here each class of route (``embeddings``, ``search``,
``writes``, ``jobs``) admits a bounded amount of work at once, running or waiting; a request
that would go past the bound is answered at once with 503 and a ``Retry-After`` that says how
long the admitted work takes to drain at the rate the class has been finishing it. The client
knows within milliseconds, and the requests that were admitted keep a bounded latency.

The bounds adapt (``semkit serve --queue-target [CLASS=]SECONDS``, default 0.5 s): each class
measures how fast it finishes work while it has some (units per busy second over the last 10 s)
and keeps its bound at ``target x that rate``, within 1/8 and 8 times its starting bound (``Limits.queue_*``).
A faster machine thus admits more, a slower one less, and the admitted work waits about the
target at most. ``--queue CLASS=N`` fixes a class's bound; ``--queue-target 0`` fixes them all.

Embedding work is counted in texts (a request of 2,048 inputs is not the same load as one of
a single input); every other class counts requests. A request larger than its class's whole
bound is still admitted when the class is idle, so no valid request is refused forever.

Routes outside ``/v1`` (``/healthz``, ``/metrics``, the UI, the API docs) are never queued:
an operator's health check answers while the server sheds load.

Everything here runs on the event loop (one thread), so the counters need no lock.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from .responses import ApiError, error_type

RouteClass = Literal["embeddings", "search", "writes", "jobs"]
ROUTE_CLASSES: tuple[RouteClass, ...] = ("embeddings", "search", "writes", "jobs")

_RATE_WINDOW_S = 10.0
"""How far back completions count when estimating how fast a class drains."""
_MAX_RETRY_AFTER_S = 60
_SIZES_SEEN = 32
"""Admitted requests whose sizes tell the door what the next request most likely needs."""
_WAIT_DRAINS: dict[str, float] = {"embeddings": 2.0}
"""Drain times a refused request of the class is asked to wait at least (1 for a class not
named). Embedding clients that were admitted keep their class full: each sends its next request
as its last is answered, so a refused one that comes back after one drain time mostly finds it
full again, and spends one of its client's retries (the ``openai`` SDK makes two) for nothing.
Two drain times halve those refusals with the same bound, so admitted requests wait no longer:
at 64 clients sending 16 texts on 2 vCPUs, ~650 refusals in 10 s at one drain time, ~330 at
two, ~235 at three. The cost: after a one-off burst whose admitted clients do not come back,
the class can sit idle for up to the extra drain time. Searches are small and interactive:
their clients come back after one drain time. (texts/s at 64 clients did not measurably change:
the run-to-run noise, 570-623 texts/s at 16 clients, is larger than the refusals' cost.)"""
_MIN_RETRY_AFTER_S = 0.25
"""The shortest wait a refusal asks for: sooner, the class would most likely still be full."""
_RESIZE_EVERY_S = 0.25
_MIN_BUSY_S = 1.0
"""Busy seconds measured in the window before an adaptive bound moves."""
"""How often an adaptive bound follows the measured rate (at most)."""
ADAPTIVE_RANGE = 8
"""An adaptive bound stays within [start / 8, start x 8] of its configured starting bound."""


class Overloaded(ApiError):
    """503: the route class is at its bound. ``retry_after_ms`` is when to try again, drawn from
    ``[drain, 2 x drain]`` (``drain``: how long the admitted work takes to finish at the class's
    measured rate, times the class's ``_WAIT_DRAINS``); ``retry_after`` is the same in whole
    seconds, rounded up, for the ``Retry-After`` header, which cannot say less.

    Why the spread: refused clients that all wait the same time come back together. Measured
    under 256 clients with one ``Retry-After: 1`` for all: the refused came back in bursts of
    hundreds every ~1.6 s, each burst held the event loop ~100-130 ms, and the p99 of a refusal
    went from under 3 ms (inside the server) to 110-145 ms (at the client). Clients that read
    ``Retry-After-Ms`` (OpenAI's own client does, and semkit's) spread out over a drain time."""

    def __init__(self, route_class: RouteClass, in_flight: int, limit: int, unit: str, drain_s: float,
                 jitter: float | None = None) -> None:
        wait = min(float(_MAX_RETRY_AFTER_S), max(_MIN_RETRY_AFTER_S, drain_s)
                   * (1.0 + (random.random() if jitter is None else jitter)))
        wait_ms = round(wait * 1000)
        retry_after = max(1, -(-wait_ms // 1000))  # the same wait in whole seconds, rounded up
        super().__init__(
            503, f"the server is at capacity for {route_class} ({in_flight} {unit} admitted, its bound is "
                 f"{limit}); retry in {retry_after} s, or raise the bound with `semkit serve --queue "
                 f"{route_class}=N` if this machine has room", "server_overloaded",
            headers={"Retry-After": str(retry_after), "Retry-After-Ms": str(wait_ms)})
        self.retry_after = retry_after
        self.retry_after_ms = wait_ms


class _ClassQueue:
    """One route class: the work admitted now, its bound, and how fast it has been finishing.

    The drain rate is measured over the time the class had work (units finished / busy seconds
    in the last ``_RATE_WINDOW_S``), so an idle spell does not read as a slow server. With a
    ``target_s`` the bound follows it: ``target_s x rate``, kept within ``[floor, ceiling]``,
    so admitted work waits about ``target_s`` at most whatever the machine's speed."""

    def __init__(self, name: RouteClass, limit: int, *, target_s: float = 0.0,
                 floor: int = 1, ceiling: int = 0) -> None:
        self.name = name
        self.limit = limit
        self.target_s = target_s
        self.floor = max(1, min(floor, limit))
        self.ceiling = max(ceiling, limit)
        self.unit = "texts" if name == "embeddings" else "requests"
        self.in_flight = 0
        self._done: deque[tuple[float, int]] = deque()
        """(finish time, units) of recent completions."""
        self._done_units = 0
        self._busy: deque[list[float]] = deque()
        """[start, end] of recent spells with work admitted; the last is open while busy."""
        self._next_resize = 0.0
        self._sizes: deque[int] = deque(maxlen=_SIZES_SEEN)

    def started(self, units: int, now: float) -> None:
        if self.in_flight == 0:
            self._busy.append([now, math.inf])
        self.in_flight += units
        self._sizes.append(units)

    def smallest_seen(self) -> int:
        """The fewest units among the last ``_SIZES_SEEN`` admitted requests (1 before any)."""
        return min(self._sizes, default=1)

    def finished(self, units: int, now: float) -> None:
        self.in_flight = max(0, self.in_flight - units)
        self._done.append((now, units))
        self._done_units += units
        if self.in_flight == 0 and self._busy:
            self._busy[-1][1] = now
        if self.target_s > 0 and now >= self._next_resize:
            self._next_resize = now + _RESIZE_EVERY_S
            rate, busy = self._measure(now)
            # Only from a real measurement: a first fraction of a second of work would read as a
            # slow class and shrink the bound under the very load that is warming it up.
            if rate > 0 and busy >= _MIN_BUSY_S:
                self.limit = max(self.floor, min(self.ceiling, math.ceil(self.target_s * rate)))

    def rate(self, now: float) -> float:
        """Units finished per busy second over the recent window (0 before any finished); the
        busy time counts as at least a second, so a burst's first completions do not read as
        an endless rate."""
        return self._measure(now)[0]

    def _measure(self, now: float) -> tuple[float, float]:
        """(rate, busy seconds) over the recent window."""
        horizon = now - _RATE_WINDOW_S
        while self._done and self._done[0][0] < horizon:
            self._done_units -= self._done.popleft()[1]
        while self._busy and self._busy[0][1] < horizon:
            self._busy.popleft()
        if not self._done:
            return 0.0, 0.0
        busy = sum(min(end, now) - max(start, horizon) for start, end in self._busy)
        return self._done_units / max(busy, 1.0), busy

    def drain_seconds(self, now: float) -> float:
        """Seconds until the admitted work is done at the recent drain rate (1 s before any
        work has finished, when there is no rate yet)."""
        rate = self.rate(now)
        if rate <= 0:
            return 1.0
        return self.in_flight / rate


class Admission:
    """The bounded queues of one server; ``limits`` maps a route class to its bound.

    ``target_s`` > 0 (one for all, or by class) makes a class's bound adaptive (``limits`` are
    then the starting bounds, kept between ``1/ADAPTIVE_RANGE`` and ``ADAPTIVE_RANGE`` times
    themselves); classes named in ``fixed`` keep their bound (an operator's ``--queue CLASS=N``).
    ``clock``: seconds, monotonic (tests pass their own)."""

    def __init__(self, limits: Mapping[str, int], registry: CollectorRegistry | None = None, *,
                 target_s: float | Mapping[str, float] = 0.0, fixed: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        unknown = set(limits) - set(ROUTE_CLASSES)
        if unknown:
            raise ValueError(f"unknown route classes {sorted(unknown)}; known: {', '.join(ROUTE_CLASSES)}")
        fixed = set(fixed)
        self._clock = clock
        self._queues: dict[str, _ClassQueue] = {}
        for name in ROUTE_CLASSES:
            start = max(1, int(limits.get(name, 1)))
            target = target_s.get(name, 0.0) if isinstance(target_s, Mapping) else target_s
            adaptive = target > 0 and name not in fixed
            self._queues[name] = _ClassQueue(
                name, start, target_s=target if adaptive else 0.0,
                floor=max(2, start // ADAPTIVE_RANGE) if adaptive else start,
                ceiling=start * ADAPTIVE_RANGE if adaptive else start)
        self._in_flight: Gauge | None = None
        self._bound: Gauge | None = None
        self._rejected: Counter | None = None
        if registry is not None:
            self._in_flight = Gauge("semkit_admitted", "Work admitted and not finished, by route class "
                                    "(texts for embeddings, else requests)", ["route_class"], registry=registry)
            self._bound = Gauge("semkit_admission_bound", "The bound of each route class's queue", ["route_class"],
                                registry=registry)
            self._rejected = Counter("semkit_overloaded", "Requests answered 503 because their route class "
                                     "was at its bound", ["route_class"], registry=registry)
            for queue_name, q in self._queues.items():
                self._bound.labels(queue_name).set(q.limit)

    def limit(self, route_class: RouteClass) -> int:
        return self._queues[route_class].limit

    def in_flight(self, route_class: RouteClass) -> int:
        return self._queues[route_class].in_flight

    def admit(self, route_class: RouteClass, units: int = 1) -> None:
        """Count ``units`` of work in, or raise ``Overloaded`` (503) when the class is full."""
        q = self._queues[route_class]
        units = max(1, units)
        if q.in_flight and q.in_flight + units > q.limit:
            raise self._refusal(route_class, q)
        q.started(units, self._clock())
        if self._in_flight is not None:
            self._in_flight.labels(route_class).set(q.in_flight)

    def check_room(self, route_class: RouteClass) -> None:
        """Raise ``Overloaded`` now if no request the size of the smallest of the class's last
        ``_SIZES_SEEN`` admitted ones could be admitted (1 unit before any). For routes that
        admit by a count known only after parsing the body: a class that cannot take such a
        request refuses it before any of the body is read.

        Why the sizes seen: clients sending 16 texts each, refused only once the class was
        full to the last text, were mostly refused after their body was read and validated,
        ~0.4 ms of the event loop each against ~0.1 ms at the door (64 such clients: ~65
        refusals a second)."""
        q = self._queues[route_class]
        if q.in_flight and q.in_flight + q.smallest_seen() > q.limit:
            raise self._refusal(route_class, q)

    def _refusal(self, route_class: RouteClass, q: _ClassQueue) -> Overloaded:
        """The 503 for a request ``q`` cannot take, counted in ``semkit_overloaded_total``."""
        if self._rejected is not None:
            self._rejected.labels(route_class).inc()
        drain = q.drain_seconds(self._clock()) * _WAIT_DRAINS.get(route_class, 1.0)
        return Overloaded(route_class, q.in_flight, q.limit, q.unit, drain)

    def release(self, route_class: RouteClass, units: int = 1) -> None:
        q = self._queues[route_class]
        q.finished(max(1, units), self._clock())
        if self._in_flight is not None:
            self._in_flight.labels(route_class).set(q.in_flight)
        if self._bound is not None and q.target_s > 0:
            self._bound.labels(route_class).set(q.limit)

    @contextmanager
    def slot(self, route_class: RouteClass, units: int = 1) -> Iterator[None]:
        """``admit`` for the ``with`` block, released however it ends."""
        self.admit(route_class, units)
        try:
            yield
        finally:
            self.release(route_class, units)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each class's admitted work, bound and measured drain rate (for ``/healthz``)."""
        now = self._clock()
        return {name: {"admitted": q.in_flight, "bound": q.limit, "adaptive": q.target_s > 0,
                       "per_second": round(q.rate(now), 1)} for name, q in self._queues.items()}


# Which class a request belongs to, from its method and path alone (before routing, so a
# refused request costs no body parsing). /v1/embeddings is admitted by its route, which
# knows how many texts it carries; the middleware refuses it early only when its class is full.
_COLLECTION = r"/v1/collections/[^/]+"
_EMBEDDINGS = re.compile(r"/v1/embeddings/?")
_RULES: list[tuple[re.Pattern[str], RouteClass | None]] = [
    (_EMBEDDINGS, None),
    (re.compile(r"/v1/jobs(/.*)?"), "jobs"),
    (re.compile(_COLLECTION + r"/(index|dedup|cluster|classify|outliers)/?"), "jobs"),
    (re.compile(_COLLECTION + r"/(upsert|delete)/?"), "writes"),
    (re.compile(r"/pinecone/[^/]+/vectors/(upsert|delete|update)/?"), "writes"),
    (re.compile(r"/pinecone/.*"), "search"),
    (re.compile(r"/v1/.*"), "search"),
]


def route_class(method: str, path: str) -> RouteClass | None:
    """The class of ``method path``, or None for what is never queued (health, metrics, UI,
    docs, and /v1/embeddings, which its route admits by text count)."""
    if not path.startswith(("/v1/", "/pinecone/")):
        return None
    if method in ("POST", "DELETE") and re.fullmatch(r"/v1/collections/?(/[^/]+/?)?", path):
        return "writes"  # create and drop a collection
    for pattern, cls in _RULES:
        if pattern.fullmatch(path):
            return cls
    return "search"


class AdmissionMiddleware:
    """Admits each ``/v1`` and ``/pinecone`` request into its route class for as long as it is being answered."""

    def __init__(self, app: Any, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        cls = route_class(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if cls is None:
            if scope["type"] == "http" and scope.get("method") == "POST" and _EMBEDDINGS.fullmatch(scope["path"]):
                try:
                    self.admission.check_room("embeddings")
                except Overloaded as exc:
                    await _refuse(exc, scope, receive, send)
                    return
            await self.app(scope, receive, send)
            return
        try:
            self.admission.admit(cls)
        except Overloaded as exc:
            await _refuse(exc, scope, receive, send)
            return
        try:
            await refusals_first()
            await self.app(scope, receive, send)
        finally:
            self.admission.release(cls)


async def refusals_first() -> None:
    """Let every request that arrived with this admitted one be admitted or refused before
    this one goes on. An admitted request waits for the model or the store anyway; a refused
    client wants its 503 now. Measured at the start of an overload (256 clients sending at the
    same instant): answered in arrival order, the last refusals waited behind ~80 admitted
    requests' body parsing and query embedding, p99 ~85 ms; one yield after admission puts
    them first."""
    await asyncio.sleep(0)


async def _refuse(exc: Overloaded, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The 503 sent straight to the server: the same JSON ``error_response`` gives, without a
    response object or a pass of the message through ``redact`` (it holds only the class's
    name and numbers). Under overload this runs for most requests, on the event loop."""
    body = json.dumps({"error": {"message": exc.detail, "type": error_type(503), "code": exc.code,
                                 "param": None}}, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in (exc.headers or {}).items()]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
