"""Cohere embeddings (``cohere:``) over the v2 API.

Wire format: ``POST {base_url}/v2/embed`` with ``{"model", "texts": [...], "input_type",
"embedding_types": ["float"], "output_dimension"?, "truncate": "END"}``; the reply carries
``embeddings.float`` in request order and ``meta.billed_units.input_tokens``. Cohere embeds
documents and queries differently, so ``kind`` maps to ``input_type`` (``search_document`` /
``search_query``). Batching, retries and the cost meter are the shared remote layer's, tuned
with its ``RemoteOptions``. The provider's descriptor (``COHERE``) is at the end.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ModelNotAvailable
from ..types import Kind, Matrix
from . import catalog
from .base import Provider
from .counters import counter_for
from .remote import MalformedReply, RemoteEmbedder, RemoteOptions, decode_embedding, stack

COHERE_BASE_URL = "https://api.cohere.com"
COHERE_MAX_TEXTS = 96
COHERE_BASE_URL_VARIABLE = "COHERE_BASE_URL"

INPUT_TYPES: dict[Kind, str] = {"document": "search_document", "query": "search_query"}


class CohereEmbedder(RemoteEmbedder):
    """Cohere's embedding models: ``cohere:embed-v4.0``, ``embed-english-v3.0``,
    ``embed-multilingual-v3.0``, ``embed-english-light-v3.0``.

    The key comes from ``api_key``, ``COHERE_API_KEY`` (or the SDK's ``CO_API_KEY``) and is
    needed only at the first request. ``dimensions`` (embed-v4.0 only: 256, 512, 1024, 1536)
    is sent as ``output_dimension``. Over-long texts are truncated by Cohere
    (``truncate: "END"``); ``EmbeddingResult.truncated`` counts the texts whose ESTIMATED
    token count exceeds the model's context, since Cohere's tokenizer is not available here.
    """

    provider = "cohere"
    key_variables = ("COHERE_API_KEY", "CO_API_KEY")  # the second is the Cohere SDK's name
    truncation = "server"
    max_batch_size = COHERE_MAX_TEXTS
    default_batch_size = COHERE_MAX_TEXTS
    default_batch_tokens = 500_000

    def __init__(
        self,
        name: str,
        *,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        options: RemoteOptions | None = None,
        **knobs: Any,
    ) -> None:
        info = catalog.find("cohere", name)
        if info is None:
            known = ", ".join(f"cohere:{m.name}" for m in catalog.by_provider("cohere"))
            raise ModelNotAvailable(f"unknown Cohere embedding model {name!r}; known models: {known}")
        self.info = info
        self.model = info.name
        self._output_dimension: int | None = None
        if dimensions is None:
            self.dimensions = info.dimensions
        else:
            self.dimensions = info.check_dimensions(dimensions)
            # Only models with a choice accept the field; v3 models reject it.
            if info.matryoshka_dimensions:
                self._output_dimension = dimensions
        self.max_tokens = info.max_tokens
        super().__init__(
            base_url=base_url or os.environ.get(COHERE_BASE_URL_VARIABLE) or COHERE_BASE_URL,
            api_key=api_key, counter=counter_for(info.tokenizer), options=options, **knobs,
        )
        self.meter.price_per_million = info.price_per_million
        self.id = f"cohere:{self.model}@{self.dimensions}"

    def _endpoint(self) -> str:
        # Accept a base_url given with or without the version segment.
        return "/embed" if self.base_url.endswith("/v2") else "/v2/embed"

    def _payload(self, texts: list[str], kind: Kind) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "texts": texts,
            "input_type": INPUT_TYPES[kind],
            "embedding_types": ["float"],
            "truncate": "END",
        }
        if self._output_dimension is not None:
            body["output_dimension"] = self._output_dimension
        return body

    def _parse(self, data: Any, n: int) -> tuple[Matrix, int | None]:
        rows = data["embeddings"]["float"]
        if not isinstance(rows, list) or len(rows) != n:
            got = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise MalformedReply(f"expected {n} embeddings, got {got}")
        tokens = ((data.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
        vectors = stack([decode_embedding(r) for r in rows])
        return vectors, (int(tokens) if isinstance(tokens, int | float) else None)


COHERE = Provider(
    scheme="cohere",
    factory=CohereEmbedder,
    key_variables=CohereEmbedder.key_variables,
    variables=(COHERE_BASE_URL_VARIABLE,),
    tokenizer="estimate",  # Cohere's tokenizer is not available offline
)
