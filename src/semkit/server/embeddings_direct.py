"""``POST /v1/embeddings`` answered without FastAPI's per-request machinery.

The embeddings route is the server's busiest and its requests are small: at 16 clients sending
one text each, the model threads are the bottleneck and every cycle the event loop spends on a
request is one the model does not get (on 2 vCPUs, the loop took 0.19 cores and the model 1.54).
FastAPI's request wrapper and dependency solving were a large share of the loop's time per
request; prototypes that skipped them served 3-9% more texts/s at 16 and 64 clients
(docs/measurements.md, stop 29).

``DirectEmbeddings`` is a Starlette route placed ahead of the FastAPI one, so everything around
the route is as before: the middleware (admission, body limits, host check, metrics, CORS) and
the app's exception handlers, which render every error this route raises. What it skips is only
the wrapper, and it runs the same parts: the same ``EmbeddingsRequest`` model validates the body
(as FastAPI would, from ``json.loads``), the same ``caller`` checks the key and the rate limit,
the same endpoint function answers, and the same ``answered_as_openai`` gives OpenAI's 400s. A body
that is not JSON, or does not validate, goes to the FastAPI route with its bytes replayed, so its
error is the one FastAPI gives, word for word. The FastAPI route stays registered for that and
for the OpenAPI schema.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.routing import Route

from .dependencies import caller
from .openai_fidelity import answered_as_openai
from .schemas import EmbeddingsRequest

Endpoint = Callable[[EmbeddingsRequest, Request, Any], Awaitable[Any]]


class DirectEmbeddings:
    """The ASGI app of the direct route: validate, then the route's own endpoint; anything that
    does not validate is handed to ``fallback`` (the FastAPI route) with its body replayed."""

    def __init__(self, route: APIRoute) -> None:
        self.route = route
        self.endpoint: Endpoint = route.endpoint
        self.fallback = route.app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = self.route  # what the metrics and the logs name it by, as before
        request = Request(scope, receive)
        raw = await request.body()  # kept by the request for the endpoint (the body-size middleware bounds it)
        body = _validated(scope, raw)
        if body is None:
            await self.fallback(scope, _replaying(raw), send)
            return
        response = await answered_as_openai(self._answer(body, request))
        await response(scope, receive, send)

    async def _answer(self, body: EmbeddingsRequest, request: Request) -> Any:
        return await self.endpoint(body, request, await caller(request))


def direct_embeddings_route(route: APIRoute) -> Route:
    """A Starlette route for ``route``'s path and methods, answered by ``DirectEmbeddings``."""
    return Route(route.path, DirectEmbeddings(route), methods=sorted(route.methods or ()),
                 include_in_schema=False)


def _replaying(raw: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A ``receive`` that gives ``raw`` once, then waits for the client to disconnect."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _validated(scope: dict[str, Any], raw: bytes) -> EmbeddingsRequest | None:
    """The body as FastAPI would validate it (``json.loads``, then the model in Python mode),
    or None when FastAPI should answer it: a content type FastAPI does not read as JSON, a body
    that is not JSON, or one that does not validate."""
    content_type = next((value for name, value in scope.get("headers", ()) if name == b"content-type"), None)
    if content_type is not None:
        subtype = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
        if subtype != "application/json" and not (subtype.startswith("application/") and subtype.endswith("+json")):
            return None
    try:
        return EmbeddingsRequest.model_validate(json.loads(raw))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
