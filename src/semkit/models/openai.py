"""OpenAI embeddings (``openai:``) and any OpenAI-compatible ``/embeddings`` server (``http:``).

Wire format: ``POST {base_url}/embeddings`` with ``{"model", "input": [...], "dimensions"?,
"encoding_format"}``; the reply's ``data[i].index`` says which input each vector belongs to,
and ``usage.prompt_tokens`` what was billed. Batching, retries and the cost meter are the
shared remote layer's (``remote.py``), tuned with its ``RemoteOptions``. The two providers'
descriptors (``OPENAI``, ``HTTP``) are at the end of this module.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from ..errors import ConfigError, InvalidInput, ModelNotAvailable, ProviderError
from ..types import Kind, Matrix
from ..vectors import normalize
from . import catalog
from .base import Provider
from .counters import EstimateCounter, counter_for
from .remote import MalformedReply, RemoteEmbedder, RemoteOptions, decode_embedding, stack

EncodingFormat = Literal["float", "base64"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_BASE_URL_VARIABLE = "OPENAI_BASE_URL"
OPENAI_ORGANIZATION_VARIABLE = "OPENAI_ORG_ID"
HTTP_BASE_URL_VARIABLE = "SEMKIT_HTTP_BASE_URL"
OPENAI_MAX_INPUTS = 2048
OPENAI_MAX_REQUEST_TOKENS = 300_000


class _OpenAIWire(RemoteEmbedder):
    """The OpenAI ``/embeddings`` request and reply, shared by both embedders below."""

    model: str
    encoding_format: EncodingFormat
    _send_dimensions: int | None

    def _endpoint(self) -> str:
        return "/embeddings"

    def _payload(self, texts: list[str], kind: Kind) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": texts,
                                "encoding_format": self.encoding_format}
        if self._send_dimensions is not None:
            body["dimensions"] = self._send_dimensions
        return body

    def _parse(self, data: Any, n: int) -> tuple[Matrix, int | None]:
        items = data["data"]
        if not isinstance(items, list) or len(items) != n:
            got = len(items) if isinstance(items, list) else type(items).__name__
            raise MalformedReply(f"expected {n} embeddings, got {got}")
        rows: list[np.ndarray | None] = [None] * n
        for position, item in enumerate(items):
            # Servers may answer out of order; ``index`` is authoritative when present.
            index = item.get("index", position)
            if not isinstance(index, int) or not 0 <= index < n or rows[index] is not None:
                raise MalformedReply(f"bad or repeated embedding index {index!r}")
            rows[index] = decode_embedding(item["embedding"])
        usage = data.get("usage") or {}
        tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
        return stack(rows), (int(tokens) if isinstance(tokens, int | float) else None)  # type: ignore[arg-type]


class OpenAIEmbedder(_OpenAIWire):
    """OpenAI's hosted embedding models: ``openai:text-embedding-3-small`` (and ``-large``,
    ``text-embedding-ada-002``).

    The API key comes from ``api_key`` or ``OPENAI_API_KEY`` and is needed only when the
    first request is made, so an embedder can be built for introspection without one.
    ``dimensions`` asks the API for shorter (Matryoshka) vectors; the allowed values come
    from the catalogue. Texts longer than the model's 8191 tokens are cut here with the exact
    tokenizer and counted in ``EmbeddingResult.truncated``.
    """

    provider = "openai"
    key_variables = ("OPENAI_API_KEY",)
    truncation = "client"
    max_batch_size = OPENAI_MAX_INPUTS
    max_request_tokens = OPENAI_MAX_REQUEST_TOKENS
    default_batch_size = 512
    default_batch_tokens = OPENAI_MAX_REQUEST_TOKENS

    def __init__(
        self,
        name: str,
        *,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        encoding_format: EncodingFormat = "base64",
        options: RemoteOptions | None = None,
        **knobs: Any,
    ) -> None:
        info = catalog.find("openai", name)
        if info is None:
            known = ", ".join(f"openai:{m.name}" for m in catalog.by_provider("openai"))
            raise ModelNotAvailable(
                f"unknown OpenAI embedding model {name!r}; known models: {known}. For another "
                "OpenAI-compatible server use 'http:MODEL' with base_url=..."
            )
        self.info = info
        self.model = info.name
        if dimensions is None:
            self.dimensions = info.dimensions
            self._send_dimensions = None
        else:
            self.dimensions = info.check_dimensions(dimensions)
            # ada-002 rejects the parameter even at its native size.
            self._send_dimensions = dimensions if info.any_dimensions else None
        if encoding_format not in ("float", "base64"):
            raise InvalidInput(f"encoding_format must be 'float' or 'base64', got {encoding_format!r}")
        self.encoding_format = encoding_format
        self.max_tokens = info.max_tokens
        self.organization = organization or os.environ.get(OPENAI_ORGANIZATION_VARIABLE) or None
        super().__init__(
            base_url=base_url or os.environ.get(OPENAI_BASE_URL_VARIABLE) or OPENAI_BASE_URL,
            api_key=api_key, counter=counter_for(info.tokenizer), options=options, **knobs,
        )
        self.meter.price_per_million = info.price_per_million
        self.id = f"openai:{self.model}@{self.dimensions}"

    def _extra_headers(self) -> dict[str, str]:
        return {"OpenAI-Organization": self.organization} if self.organization else {}

    def _accept(self, vectors: Matrix) -> Matrix:
        # A proxy that ignores ``dimensions`` sends full-size vectors: v3 models are trained
        # for prefix truncation, so cut them here (the shared layer renormalises).
        if vectors.shape[1] > self.dimensions and self.info.any_dimensions:
            return np.ascontiguousarray(vectors[:, : self.dimensions])
        return super()._accept(vectors)


class OpenAICompatibleEmbedder(_OpenAIWire):
    """Any server speaking OpenAI's ``/v1/embeddings`` (Ollama, vLLM, TEI, LM Studio,
    infinity): ``semkit.model("http:MODEL", base_url="http://127.0.0.1:7997/v1")``.

    ``dimensions``: when given, replies must have that many components (and with
    ``request_dimensions=True`` the value is also sent, for servers that support Matryoshka
    output). When omitted, the size is learnt from the first reply; reading ``dimensions`` or
    ``id`` before any embedding sends one short probe request.

    ``id`` is ``http:MODEL@DIMS``: it names the vector space, so a collection keeps working
    when the same model is served from another address. ``fingerprint`` adds a short hash of
    the server's host and port, the prefixes and the normalisation, so the embedding cache
    never mixes two servers that happen to use the same model name. The API key is never part
    of either.

    Token counts are estimates (the server's tokenizer is unknown); vectors are normalised to
    unit length here unless ``normalize=False``. ``max_tokens`` (default 512) is only what
    the embedder reports; over-long texts are left to the server to truncate, and counted in
    ``truncated`` only when ``max_tokens`` was given explicitly.
    """

    provider = "http"
    key_variables = ("SEMKIT_HTTP_API_KEY",)
    key_required = False
    truncation = "server"
    default_batch_size = 64
    default_batch_tokens = 100_000

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        dimensions: int | None = None,
        request_dimensions: bool = False,
        query_prefix: str = "",
        document_prefix: str = "",
        normalize: bool = True,
        max_tokens: int | None = None,
        encoding_format: EncodingFormat = "float",
        price_per_million: float = 0.0,
        options: RemoteOptions | None = None,
        **knobs: Any,
    ) -> None:
        if not name or not name.strip():
            raise ModelNotAvailable("http: needs a model name as the server knows it, e.g. 'http:bge-small-en'")
        base_url = base_url or os.environ.get(HTTP_BASE_URL_VARIABLE)
        if not base_url:
            raise ConfigError(
                f"http:{name} needs the server's address: pass base_url='http://HOST:PORT/v1' "
                f"or set {HTTP_BASE_URL_VARIABLE}"
            )
        if dimensions is not None and (not isinstance(dimensions, int) or isinstance(dimensions, bool)
                                       or dimensions < 1):
            raise InvalidInput(f"dimensions must be a positive integer, got {dimensions!r}")
        if request_dimensions and dimensions is None:
            raise InvalidInput("request_dimensions=True needs dimensions=N to send")
        if encoding_format not in ("float", "base64"):
            raise InvalidInput(f"encoding_format must be 'float' or 'base64', got {encoding_format!r}")
        for label, prefix in (("query_prefix", query_prefix), ("document_prefix", document_prefix)):
            if not isinstance(prefix, str):
                raise InvalidInput(f"{label} must be a string, got {type(prefix).__name__}")
        self.model = name
        self.encoding_format = encoding_format
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.normalized = normalize
        self._dimensions = dimensions
        self._send_dimensions = dimensions if request_dimensions else None
        self._probe_lock = threading.Lock()
        self.max_tokens = max_tokens if max_tokens is not None else 512
        super().__init__(
            base_url=base_url, api_key=api_key, counter=EstimateCounter(), options=options,
            count_overflows=max_tokens is not None, **knobs,
        )
        self.meter.price_per_million = float(price_per_million)

    # ``dimensions`` and ``id`` may need the server: the Embedder contract reads them as
    # attributes, so they are properties that probe once.
    @property
    def dimensions(self) -> int:  # type: ignore[override]
        if self._dimensions is None:
            with self._probe_lock:
                if self._dimensions is None:
                    self._embed_texts(["dimension probe"], "document")
        assert self._dimensions is not None
        return self._dimensions

    @property
    def id(self) -> str:  # type: ignore[override]
        return f"http:{self.model}@{self.dimensions}"

    @property
    def fingerprint(self) -> str:
        where = urlsplit(self.base_url)
        host = hashlib.sha256(f"{where.hostname}:{where.port}".encode()).hexdigest()[:8]
        parts = [self.id, f"host={host}"]
        if self.query_prefix:
            parts.append(f"qp={self.query_prefix!r}")
        if self.document_prefix:
            parts.append(f"dp={self.document_prefix!r}")
        parts.append("norm" if self.normalized else "raw")
        return ";".join(parts)

    def _prefix(self, kind: Kind) -> str:
        return self.query_prefix if kind == "query" else self.document_prefix

    def _accept(self, vectors: Matrix) -> Matrix:
        width = vectors.shape[1]
        with self._state_lock:
            if self._dimensions is None:
                self._dimensions = width
                return vectors
            expected = self._dimensions
        if width != expected:
            raise ProviderError(
                f"http:{self.model} at {self.base_url} returned {width}-dimensional vectors, "
                f"expected {expected}: pass dimensions={width} (or omit dimensions to detect "
                "it), or request_dimensions=True if the server can shorten its vectors",
                provider=self.provider,
            )
        return vectors

    def _finish(self, vectors: Matrix) -> Matrix:
        return normalize(vectors) if self.normalized else vectors

    def __repr__(self) -> str:
        dims = self._dimensions if self._dimensions is not None else "?"
        return f"<OpenAICompatibleEmbedder http:{self.model}@{dims} base_url={self.base_url}>"


OPENAI = Provider(
    scheme="openai",
    factory=OpenAIEmbedder,
    key_variables=OpenAIEmbedder.key_variables,
    variables=(OPENAI_BASE_URL_VARIABLE, OPENAI_ORGANIZATION_VARIABLE),
    # Models outside the catalogue are still OpenAI models: counted with OpenAI's tokenizer.
    tokenizer="cl100k_base",
)

HTTP = Provider(
    scheme="http",
    factory=OpenAICompatibleEmbedder,
    key_variables=OpenAICompatibleEmbedder.key_variables,
    key_required=OpenAICompatibleEmbedder.key_required,
    variables=(HTTP_BASE_URL_VARIABLE,),
    # A server can run any model: its tokenizer is unknown.
    tokenizer="estimate",
)
