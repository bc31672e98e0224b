"""The app factory: assembles one FastAPI application over one database.

What a route needs lives on ``ServerState`` (``server/state.py``, ``app.state.semkit``); who
may call is decided in ``server/dependencies.py``; library errors become HTTP answers in
``server/responses.py``. This module only puts the pieces together: state, routers, error
handlers, middleware, and the few server routes (health, metrics).

Public without a key: ``/healthz``, the web UI's static files, the OpenAPI schema and its
Swagger UI at ``/docs`` (none holds data). Everything else needs ``Authorization: Bearer <key>``
unless the app was built with ``auth=False`` (``semkit serve --no-auth``, refused on anything
but loopback).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from .. import __version__, errors
from . import heap, routes_apps, routes_collections, routes_docs, routes_jobs, routes_openai, routes_pinecone, routes_ui
from .admission import AdmissionMiddleware
from .dependencies import caller
from .embeddings_direct import direct_embeddings_route
from .limits import Limits
from .metrics import watch_loop_lag
from .middleware import DeclaredBodyLimit, LoopbackHostOnly, MetricsMiddleware
from .responses import install_error_handlers
from .state import ServerState


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
    served_model_names: Mapping[str, str] | None = None,
    rerank: str | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """The server for the database at ``db_uri``.

    ``auth=False`` serves without keys (the caller must only bind loopback; ``semkit serve``
    enforces it). ``keys_path``: the key file (default: see ``semkit.server.auth``).
    ``models``: specs served by ``/v1/embeddings`` and allowed for new collections.
    ``cache``: use the persistent embedding cache (in ``cache_dir``, default
    ``SEMKIT_CACHE_DIR`` or the user cache folder). ``cors_origins``: origins allowed by CORS
    (none by default: CORS is off). ``index_roots``: folders whose files clients may index
    server-side (none by default: ``/index`` answers 403). ``preload``: load the served models at start-up rather
    than on the first request. ``served_model_names``: alias -> model, extra names the served
    models answer to (``{"text-embedding-3-small": "local"}`` for clients that only accept OpenAI names).
    ``rerank``: ``windows`` or a cross-encoder folder (``semkit.models.rerank.load_reranker``),
    loaded once here; searches with ``rerank: true`` use it. ``settle_heap``: once started, freeze
    the start-up objects, make the garbage collector's young collections rarer and give freed
    heap memory back to the system when the resident set grows (``server/heap.py``; ``semkit
    serve`` does, an application embedding the app may not want it).
    """
    limits = limits or Limits()
    if not models:
        raise errors.ConfigError("serve at least one model (e.g. models=['local'])")
    trimmer = heap.HeapTrimmer() if settle_heap else None
    frozen_objects = 0  # at start-up (0: not settled); counted once, see heap.settle_heap
    state = ServerState(db_uri, auth=auth, keys_path=keys_path, limits=limits, models=models, cache=cache,
                        cache_dir=cache_dir, index_roots=index_roots, aliases=served_model_names)
    if rerank is not None:
        from ..models.rerank import load_reranker

        state.reranker = load_reranker(rerank)  # at start-up: a bad folder stops the server, not a search

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if preload:
            for spec in state.served:
                await asyncio.to_thread(state.pool.for_spec, spec)
                await asyncio.to_thread(routes_openai.served_counter, spec)
        background = [asyncio.create_task(watch_loop_lag(state.metrics.loop_lag))]
        if settle_heap:
            nonlocal frozen_objects
            frozen_objects = heap.settle_heap()
        if trimmer is not None:
            background.append(asyncio.create_task(trimmer.run()))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.to_thread(state.close)

    app = FastAPI(
        title="semkit", version=__version__, lifespan=lifespan,
        summary="Embeddings from any model: generate, store, search, apply.",
        # FastAPI's docs pages load their scripts from a CDN; routes_docs serves /docs offline.
        docs_url=None, redoc_url=None,
        responses={401: {"description": "Missing or invalid API key"},
                   403: {"description": "Key not allowed here"},
                   429: {"description": "Rate limit exceeded"}},
    )
    app.state.semkit = state
    install_error_handlers(app)
    for module in (routes_openai, routes_collections, routes_apps, routes_jobs, routes_pinecone, routes_ui,
                   routes_docs):
        app.include_router(module.router)
    # Ahead of the FastAPI route, which stays for the schema and for bodies that do not validate.
    app.router.routes.insert(0, direct_embeddings_route(routes_openai.embeddings_route()))

    @app.get("/healthz", tags=["server"], summary="Liveness (no key needed)")
    async def healthz() -> dict[str, Any]:
        # rerank: the kind of reranker `rerank: true` uses (null: none), so the UI shows its toggle.
        return {"status": "ok", "version": __version__, "auth": state.auth,
                "rerank": state.reranker.kind if state.reranker is not None else None,
                # queues: each route class's admitted work and bound (503 beyond it).
                "queues": state.admission.snapshot(),
                # model: calls at once and threads per local model call (serve --model-workers/--model-threads).
                "model": {"workers": state.pool.workers, "threads": state.pool.threads},
                # store: calls at once in the worker threads (serve --store-threads).
                "store": {"threads": state.store_threads},
                # gc: objects frozen at start-up and the collector's thresholds (server/heap.py).
                "gc": {"frozen": frozen_objects, "thresholds": list(gc.get_threshold())},
                # heap: trims that gave freed memory back to the system (server/heap.py; null: not settled).
                "heap": trimmer.snapshot() if trimmer is not None else None}

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
                           allow_headers=["Authorization", "Api-Key", "Content-Type"])
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=limits.max_body_bytes)
    # Inside the body and host checks (refused requests take no slot), outside everything else.
    app.add_middleware(AdmissionMiddleware, admission=state.admission)
    app.add_middleware(DeclaredBodyLimit, max_bytes=limits.max_body_bytes)
    if not auth:
        app.add_middleware(LoopbackHostOnly)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
