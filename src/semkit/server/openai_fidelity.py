"""Refusing requests the way OpenAI's API does, on the OpenAI-compatible routes (``/v1/embeddings``,
``/v1/models``).

OpenAI answers every client mistake in a request (a malformed body, an empty input, too many
inputs, a size the model cannot give, a text over the model's context) with **400** and
``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``, and its SDK raises
``openai.BadRequestError`` for exactly that status. The rest of semkit's API answers such
mistakes with 422; routes built with ``OpenAIRoute`` answer 400 instead, with one short message
naming the first problem (never pydantic's dump of every member of a union). 401, 404 and 429
keep their statuses, which are OpenAI's too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from .. import errors
from .responses import ApiError, classify_error

T = TypeVar("T")

_SHAPES = "a string, an array of strings, an array of token ids or an array of token-id arrays"
MAX_TEXT_CHARS = 1_000_000


def check_embeddings_input(value: Any) -> Any:
    """``value`` if it is one of the four shapes OpenAI accepts as ``input`` (a string, strings,
    token ids, token-id arrays), else a ``ValueError`` naming the first thing wrong."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"'input' is {'an empty string' if not value else 'blank'}; send some text")
        return value
    if not isinstance(value, list):
        raise ValueError(f"'input' must be {_SHAPES}, not {_json_type(value)}")
    if not value:
        raise ValueError("'input' is an empty array; send at least one text")
    if all(_is_token_id(t) for t in value):
        return value
    for n, item in enumerate(value):
        if isinstance(item, str):
            if not item.strip():
                raise ValueError(f"input[{n}] is {'an empty string' if not item else 'blank'}; "
                                 "send some text or leave it out")
            if len(item) > MAX_TEXT_CHARS:
                raise ValueError(f"input[{n}] is {len(item):,} characters; the limit is {MAX_TEXT_CHARS:,}")
        elif isinstance(item, list):
            if not item:
                raise ValueError(f"input[{n}] is an empty token array; leave it out")
            if not all(_is_token_id(t) for t in item):
                raise ValueError(f"input[{n}] must hold token ids (integers >= 0) only")
        else:
            raise ValueError(f"input[{n}] is {_json_type(item)}; 'input' must be {_SHAPES}")
    if len({isinstance(item, str) for item in value}) > 1:
        raise ValueError("'input' mixes strings and token arrays; send one kind per request")
    return value


def bad_request(message: str, code: str, param: str | None = None) -> ApiError:
    """A 400 in OpenAI's shape (``type`` is ``invalid_request_error``)."""
    return ApiError(400, message, code, param=param)


def validation_bad_request(exc: RequestValidationError) -> ApiError:
    """The 400 for a body that does not validate: the first problem in one sentence."""
    problems = exc.errors()
    first = problems[0] if problems else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = loc[0] if loc else None
    kind = first.get("type", "")
    if kind == "json_invalid":
        error = (first.get("ctx") or {}).get("error", "")
        message, code, param = f"the request body is not valid JSON ({error}); send a JSON object", "invalid_json", None
    elif param is None:
        message, code = "the request body must be a JSON object", "invalid_body"
    elif kind == "missing":
        message, code = f"you must provide the '{param}' parameter", "missing_required_parameter"
    elif kind == "value_error":
        message, code = str((first.get("ctx") or {}).get("error", first.get("msg", "invalid"))), "invalid_value"
    else:
        where = param + "".join(f"[{p}]" for p in loc[1:])
        message, code = f"invalid '{where}': {first.get('msg', 'invalid value')}", "invalid_value"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return bad_request(message, code, param)


async def answered_as_openai(call: Awaitable[T]) -> T:
    """``await call``, its client errors raised as OpenAI's API answers them: a 400 for a body
    that does not validate and for the library's 422s; every other error as it is."""
    try:
        return await call
    except RequestValidationError as exc:
        raise validation_bad_request(exc) from None
    except errors.SemkitError as exc:
        status, code = classify_error(exc)
        if status != 422:
            raise
        raise bad_request(str(exc), code) from None


class OpenAIRoute(APIRoute):
    """A route whose client errors (validation, and the library's 422s) answer 400 like OpenAI."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            return await answered_as_openai(handler(request))

        return answer


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", dict: "an object", list: "an array",
             str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)
