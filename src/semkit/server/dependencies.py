"""What every route shares: the server state of a request, who is calling (key, rate limit),
what that key may touch, and the parameter types used across routers.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse

from .. import errors
from .auth import Principal
from .jobs import Job
from .responses import ApiError
from .state import ServerState

log = logging.getLogger("semkit.server")


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
            token = request.headers.get("api-key", "")  # Pinecone's header, for its SDK (routes_pinecone)
        if not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>' (or 'Api-Key: <key>') "
                                "(create one with `semkit keys create`)", "missing_api_key",
                           headers={"WWW-Authenticate": "Bearer"})
        try:
            key = state.keys.verify(token.strip())
        except errors.ConfigError as exc:
            # The operator's problem, told in the server log; a caller learns no server path.
            log.error("cannot check API keys: %s", exc)
            raise ApiError(503, "the server cannot read its API key file; its operator must fix it "
                                "(the server log says how)", "key_file_unreadable",
                           headers={"Retry-After": "30"}) from None
        if key is None:
            raise ApiError(401, "invalid or revoked API key; create a new one with `semkit keys create`",
                           "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        principal = Principal(key, client)
    wait = state.rate.check(principal.id, principal.key.rate_limit if principal.key else None)
    if wait > 0:
        state.metrics.rate_limited.inc()
        seconds = max(1, math.ceil(wait))  # the body and the header say the same
        raise ApiError(429, f"rate limit exceeded for this key; retry in {seconds} s", "rate_limited",
                       headers={"Retry-After": str(seconds)})
    return principal


def authorize(principal: Principal, collection: str | None, *, write: bool) -> None:
    """403 for a key used outside its collections, or a read-only key writing."""
    if collection is not None and not principal.may_use(collection):
        raise ApiError(403, f"this API key may not use collection {collection!r}", "forbidden_collection")
    if write and principal.read_only:
        raise ApiError(403, "this API key is read-only; writing needs a key created without --read-only",
                       "read_only_key")


def accepted(job: Job) -> JSONResponse:
    """The answer to a request that started a background job: 202 and the job to poll."""
    return JSONResponse(job.as_dict(), status_code=202)


Caller = Annotated[Principal, Depends(caller)]
"""A route parameter: the authenticated, rate-limited caller."""

NamePath = Annotated[str, Path(min_length=1, max_length=200, description="Collection name", examples=["docs"])]
"""A route parameter: the collection named in the path."""
