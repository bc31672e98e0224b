"""ASGI middleware of the app: the declared-body-size check, the loopback Host check of a
server without keys, and request metrics (pure ASGI, so none adds a per-request task or body
copy)."""

from __future__ import annotations

import functools
import ipaddress
import time
from typing import Any

from .metrics import Metrics
from .responses import error_response


class DeclaredBodyLimit:
    """413 in the API's JSON shape for a declared ``Content-Length`` over the limit, before
    anything is read. (Bodies that grow past the limit while streaming are stopped by
    Starlette's ``RequestBodyLimitMiddleware`` behind this one.)"""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    response = error_response(
                        413, f"request body is {int(value):,} bytes, over the server's limit of "
                             f"{self.max_bytes:,}; send smaller batches", "request_too_large",
                        headers={"Connection": "close"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


@functools.lru_cache(maxsize=256)
def is_loopback_host(host_header: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (``localhost``, ``127.x.x.x``,
    ``[::1]``, with or without a port)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackHostOnly:
    """A server without API keys answers only requests addressed to a loopback name: a web page
    on another site whose name an attacker re-points at 127.0.0.1 (DNS rebinding) sends its
    own host name and is refused, so it cannot use the key-less API from a victim's browser."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            host = next((value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"host"), "")
            if not is_loopback_host(host):
                response = error_response(
                    403, "this server runs without API keys and only answers requests addressed to localhost or "
                         "127.0.0.1; start it with keys (no --no-auth) to serve other host names",
                    "host_not_allowed")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class MetricsMiddleware:
    """Counts every request by method, route template and status, and times it.

    The labelled series are looked up once and kept: ``labels()`` costs ~5 us a call, three
    calls a request, and under overload most requests are refusals that cost ~60 us in all."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def _series_of(self, method: str, template: str, status: int) -> tuple[Any, Any, Any]:
        """(request counter, latency histogram, refusal histogram or None) of one label set."""
        key = (method, template, status)
        series = self._series.get(key)
        if series is None:
            metrics = self.metrics
            refusal = metrics.refusal_latency.labels(str(status)) if status in (429, 503) else None
            series = (metrics.requests.labels(method, template, str(status)), metrics.latency.labels(method, template),
                      refusal)
            self._series[key] = series
        return series

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if scope["path"].startswith("/ui") else "unmatched")
            count, latency, refusal = self._series_of(scope.get("method", ""), template, status)
            took = time.perf_counter() - start
            count.inc()
            latency.observe(took)
            if refusal is not None:
                refusal.observe(took)
