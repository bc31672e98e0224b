"""The app factory: one FastAPI application over one database.

Everything a route needs lives on ``ServerState`` (``app.state.semkit``): the database, the
model pool (each model loaded once, behind its micro-batcher), the key store, limits, metrics
and background jobs. Library errors become HTTP answers in one place (``error_response``),
in OpenAI's error shape ``{"error": {"message", "type", "code", "param"}}`` so OpenAI clients
show the message.

Public without a key: ``/healthz``, the web UI's static files and the OpenAPI schema (none
holds data). Everything else needs ``Authorization: Bearer <key>`` unless the app was built
with ``auth=False`` (``semkit serve --no-auth``, refused on anything but loopback).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

import semkit

from .. import errors
from ..collection import Collection
from .auth import KeyStore, Principal, default_keys_path
from .jobs import JobCancelled, JobManager
from .limits import Limits, RateLimiter
from .metrics import Metrics
from .models import BatchedEmbedder, ModelPool

log = logging.getLogger("semkit.server")
T = TypeVar("T")

STATIC_DIR = Path(__file__).with_name("static")


class ApiError(HTTPException):
    """An HTTP answer with a machine-readable code (OpenAI's ``error.code``)."""

    def __init__(self, status: int, message: str, code: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code


class ServerState:
    def __init__(self, db_uri: str, *, auth: bool, keys_path: str | Path | None, limits: Limits,
                 models: Sequence[str], cache: bool, cache_dir: str | None,
                 index_roots: Sequence[str | Path] = ()) -> None:
        self.db_uri = db_uri
        self.db = semkit.connect(db_uri)
        self.auth = auth
        self.keys = KeyStore(Path(keys_path) if keys_path else default_keys_path(db_uri))
        self.limits = limits
        self.metrics = Metrics()
        self.rate = RateLimiter(limits.rate_limit, limits.burst)
        self.pool = ModelPool(cache=cache, cache_dir=cache_dir, workers=limits.model_concurrency,
                              max_batch_texts=limits.max_batch_texts, metrics=self.metrics)
        self.served = tuple(models)
        self.index_roots = tuple(Path(r).resolve() for r in index_roots)
        self.jobs = JobManager(on_change=self._job_gauge, describe_error=describe_error)
        self.limiter = anyio.CapacityLimiter(limits.store_concurrency)
        self._collections: dict[str, Collection] = {}

    # --- calling the library off the event loop ----------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking library code in a worker thread (bounded by ``store_concurrency``)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    # --- models ---------------------------------------------------------------------------------

    def served_spec(self, name: str) -> str:
        """The served model spec ``name`` designates (its spec, id, bare name or alias)."""
        from ..collection import split_embedder_id
        from ..models import catalog, registry

        wanted = split_embedder_id(name.strip())[0].lower()
        for spec in self.served:
            candidates = {spec.lower()}
            try:
                scheme, model_name = registry.parse_spec(spec)
            except errors.SemkitError:
                continue
            candidates |= {f"{scheme}:{model_name}".lower(), model_name.lower()}
            info = catalog.find(scheme, model_name)
            if info is not None:
                candidates |= {a.lower() for a in info.aliases}
                if info.hub_id:
                    candidates |= {info.hub_id.lower(), f"{scheme}:{info.hub_id}".lower()}
            if wanted in candidates:
                return spec
        raise errors.ModelNotAvailable(
            f"the model {name!r} is not served here; this server serves: {', '.join(self.served)} "
            "(GET /v1/models lists them)"
        )

    def model(self, name: str) -> BatchedEmbedder:
        return self.pool.for_spec(self.served_spec(name))

    # --- collections ----------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        """The open collection ``name``, with its model from the pool (re-opened when its spec
        changed, e.g. after a drop and re-create or a re-embed)."""
        spec = self.db.store.get_collection(name)
        if spec is None:
            raise errors.CollectionNotFound(
                f"no collection named {name!r}; GET /v1/collections lists them, "
                "POST /v1/collections creates one"
            )
        cached = self._collections.get(name)
        if cached is not None and cached.spec == spec:
            return cached
        model: Any = None
        if spec.embedder is not None:
            try:
                model = self.pool.for_id(spec.embedder)
            except errors.SemkitError as exc:
                # Vector search, get and delete work without the model; embedding will say why.
                log.warning("collection %r: model %s not loaded: %s", name, spec.embedder, exc)
        col = self.db.collection(name, model=model, create=False) if model is not None else \
            self.db.collection(name, create=False)
        self._collections[name] = col
        return col

    def forget(self, name: str) -> None:
        self._collections.pop(name, None)

    def _job_gauge(self, counts: dict[str, int]) -> None:
        for state, n in counts.items():
            self.metrics.jobs.labels(state).set(n)

    def close(self) -> None:
        self.jobs.close()
        self.pool.close()
        self.db.close()


# --- errors ---------------------------------------------------------------------------------------

_STATUS: list[tuple[type[BaseException], int, str]] = [
    (errors.CollectionNotFound, 404, "collection_not_found"),
    (errors.ModelNotAvailable, 404, "model_not_found"),
    (errors.InvalidFilter, 422, "invalid_filter"),
    (errors.DimensionMismatch, 422, "dimension_mismatch"),
    (errors.InvalidInput, 422, "invalid_input"),
    (errors.ModelMismatch, 409, "model_mismatch"),
    (errors.ConfigError, 400, "config_error"),
    (errors.MissingDependency, 501, "missing_dependency"),
    (errors.StoreLocked, 503, "store_locked"),
    (errors.RateLimited, 503, "provider_rate_limited"),
    (errors.ProviderUnavailable, 502, "provider_unavailable"),
    (errors.ProviderError, 502, "provider_error"),
    (errors.StoreError, 500, "store_error"),
    (JobCancelled, 409, "cancelled"),
    (errors.SemkitError, 500, "semkit_error"),
]

# Keys and URI passwords never go back to clients or into logs, whatever a message contains.
_SECRETS = [
    (re.compile(r"sk-[A-Za-z0-9_-]{8,}"), "sk-***"),
    (re.compile(r"(Bearer\s+)\S+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
]


def redact(text: str) -> str:
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


def classify_error(exc: BaseException) -> tuple[int, str]:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def describe_error(exc: BaseException) -> dict[str, Any]:
    status, code = classify_error(exc)
    message = redact(str(exc)) if isinstance(exc, errors.SemkitError) else \
        "internal server error; the server log has the details"
    return {"message": message, "type": _error_type(status), "code": code, "status": status}


def _error_type(status: int) -> str:
    if status in (401, 403):
        return "authentication_error" if status == 401 else "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None,
                   param: str | None = None) -> JSONResponse:
    body = {"error": {"message": redact(message), "type": _error_type(status), "code": code, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.SemkitError)
    async def _semkit(request: Request, exc: errors.SemkitError) -> JSONResponse:
        status, code = classify_error(exc)
        headers = None
        if isinstance(exc, (errors.StoreLocked, errors.RateLimited)):
            retry = getattr(exc, "retry_after", None) or 1
            headers = {"Retry-After": str(max(1, math.ceil(retry)))}
        if status >= 500:
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__,
                      redact(str(exc)))
        return error_response(status, str(exc), code, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or {404: "not_found", 405: "method_not_allowed",
                                              413: "request_too_large"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 413 and code == "request_too_large" and not isinstance(exc, ApiError):
            message = (f"request body is larger than the server's limit; send smaller batches "
                       f"(limit: {request.app.state.semkit.limits.max_body_bytes:,} bytes)")
        return error_response(exc.status_code, message, code, dict(exc.headers or {}) or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        param = ".".join(str(p) for p in first if p != "body") or None
        return error_response(422, "invalid request: " + "; ".join(problems), "invalid_input", param=param)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: unexpected %s", request.method, request.url.path, type(exc).__name__,
                  exc_info=exc)
        return error_response(500, "internal server error; the server log has the details", "internal_error")


# --- authentication, authorisation, rate limit --------------------------------------------------

def state_of(request: Request) -> ServerState:
    return request.app.state.semkit  # type: ignore[no-any-return]


async def caller(request: Request) -> Principal:
    """FastAPI dependency: who is calling (401 without a valid key), counted against the
    rate limit (429). Async because it never blocks (a hash, a stat of the key file), which
    spares every request a hop to the thread pool."""
    state = state_of(request)
    client = request.client.host if request.client else ""
    if not state.auth:
        principal = Principal(None, client)
    else:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>' "
                                "(create one with `semkit keys create`)", "missing_api_key",
                           headers={"WWW-Authenticate": "Bearer"})
        key = state.keys.verify(token.strip())
        if key is None:
            raise ApiError(401, "invalid or revoked API key; create a new one with `semkit keys create`",
                           "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        principal = Principal(key, client)
    wait = state.rate.check(principal.id, principal.key.rate_limit if principal.key else None)
    if wait > 0:
        state.metrics.rate_limited.inc()
        raise ApiError(429, f"rate limit exceeded for this key; retry in {wait:.1f} s", "rate_limited",
                       headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return principal


def authorize(principal: Principal, collection: str | None, *, write: bool) -> None:
    """403 for a key used outside its collections, or a read-only key writing."""
    if collection is not None and not principal.may_use(collection):
        raise ApiError(403, f"this API key may not use collection {collection!r}", "forbidden_collection")
    if write and principal.read_only:
        raise ApiError(403, "this API key is read-only; writing needs a key created without --read-only",
                       "read_only_key")


# --- middleware -----------------------------------------------------------------------------------

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


class MetricsMiddleware:
    """Counts every request by method, route template and status, and times it (pure ASGI,
    so it adds no per-request task or body copy)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)


# --- the factory ----------------------------------------------------------------------------------

def create_app(
    db_uri: str,
    *,
    auth: bool = True,
    keys_path: str | Path | None = None,
    limits: Limits | None = None,
    models: Sequence[str] = ("local",),
    cache: bool = True,
    cache_dir: str | None = None,
    cors_origins: Sequence[str] = (),
    index_roots: Sequence[str | Path] = (),
    preload: bool = True,
) -> FastAPI:
    """The server for the database at ``db_uri``.

    ``auth=False`` serves without keys (the caller must only bind loopback; ``semkit serve``
    enforces it). ``keys_path``: the key file (default: see ``semkit.server.auth``).
    ``models``: specs served by ``/v1/embeddings`` and allowed for new collections.
    ``cache``: use the persistent embedding cache (in ``cache_dir``, default
    ``SEMKIT_CACHE_DIR`` or the user cache folder). ``cors_origins``: origins allowed by CORS
    (none by default: CORS is off). ``index_roots``: folders whose files clients may index
    server-side (none by default: ``/index`` answers 403). ``preload``: load the served models at start-up rather
    than on the first request.
    """
    limits = limits or Limits()
    if not models:
        raise errors.ConfigError("serve at least one model (e.g. models=['local'])")
    state = ServerState(db_uri, auth=auth, keys_path=keys_path, limits=limits, models=models, cache=cache,
                        cache_dir=cache_dir, index_roots=index_roots)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if preload:
            for spec in state.served:
                await asyncio.to_thread(state.pool.for_spec, spec)
        try:
            yield
        finally:
            await asyncio.to_thread(state.close)

    app = FastAPI(
        title="semkit", version=semkit.__version__, lifespan=lifespan,
        summary="Embeddings from any model: generate, store, search, apply.",
        # The interactive docs pages load their scripts from a CDN; this server works offline.
        docs_url=None, redoc_url=None,
        responses={401: {"description": "Missing or invalid API key"},
                   403: {"description": "Key not allowed here"},
                   429: {"description": "Rate limit exceeded"}},
    )
    app.state.semkit = state
    _install_error_handlers(app)

    from . import routes_apps, routes_collections, routes_jobs, routes_openai, routes_ui

    for module in (routes_openai, routes_collections, routes_apps, routes_jobs, routes_ui):
        app.include_router(module.router)

    @app.get("/healthz", tags=["server"], summary="Liveness (no key needed)")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": semkit.__version__, "auth": state.auth}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/metrics", tags=["server"], summary="Prometheus metrics")
    async def metrics(request: Request) -> Response:
        await caller(request)
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=limits.max_body_bytes)
    app.add_middleware(DeclaredBodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
