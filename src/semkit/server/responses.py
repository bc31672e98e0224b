"""Errors as HTTP answers: the one place that maps the library's error tree to statuses and
shapes every error body.

Bodies follow OpenAI's error shape ``{"error": {"message", "type", "code", "param"}}`` so
OpenAI clients show the message. Messages pass through ``semkit.redaction.redact``: keys and
URI passwords never go back to clients or into logs, whatever a message contains.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import errors
from ..redaction import redact
from .jobs import JobCancelled, TooManyJobs

log = logging.getLogger("semkit.server")


class ApiError(HTTPException):
    """An HTTP answer with a machine-readable code (OpenAI's ``error.code``)."""

    def __init__(self, status: int, message: str, code: str, *, headers: dict[str, str] | None = None,
                 param: str | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.param = param
        """The request field at fault (OpenAI's ``error.param``), if one is."""


# The first class an error is an instance of decides (subclasses before their bases).
_STATUS: list[tuple[type[BaseException], int, str]] = [
    (errors.CollectionNotFound, 404, "collection_not_found"),
    (errors.CollectionExists, 409, "collection_exists"),
    (errors.StoreCorrupt, 500, "store_corrupt"),
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
    (TooManyJobs, 429, "too_many_jobs"),
    (errors.SemkitError, 500, "semkit_error"),
]

_INTERNAL = "internal server error; the server log has the details"


def classify_error(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and error code for ``exc``."""
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def describe_error(exc: BaseException) -> dict[str, Any]:
    """``exc`` as a failed job records it: message (redacted; none for unexpected errors),
    type, code and status."""
    status, code = classify_error(exc)
    message = redact(str(exc)) if isinstance(exc, errors.SemkitError) else _INTERNAL
    return {"message": message, "type": error_type(status), "code": code, "status": status}


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "invalid_request_error" if status < 500 else "server_error"


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None,
                   param: str | None = None) -> JSONResponse:
    body = {"error": {"message": redact(message), "type": error_type(status), "code": code, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error a route raises (library, HTTP, validation, unexpected) answers in the one shape."""

    @app.exception_handler(errors.SemkitError)
    async def _semkit(request: Request, exc: errors.SemkitError) -> JSONResponse:
        status, code = classify_error(exc)
        headers = None
        if isinstance(exc, (errors.StoreLocked, errors.RateLimited, TooManyJobs)):
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
        return error_response(exc.status_code, message, code, dict(exc.headers or {}) or None,
                              param=getattr(exc, "param", None))

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
        return error_response(500, _INTERNAL, "internal_error")
