"""The contracts of the models floor: the ``Embedder`` every provider implements (with its
optional image capability), the result it returns, and the ``Provider`` descriptor a provider
module declares once for the table in ``providers.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInput
from ..types import KINDS, Kind, Matrix
from ..vectors import check_texts
from .catalog import ModelInfo

if TYPE_CHECKING:
    from .images import ImageBatch

ImageErrors = Literal["raise", "skip"]

STREAM_PIECE = 256
"""Texts per piece when an embedder cannot stream a whole call itself: each piece is one call,
so a consumer that stores pieces as they come (the cache) loses at most one piece on a crash."""

Stream = Iterator[tuple[int, "EmbeddingResult"]]
"""Pieces of one call as they are computed: (index of the piece's first text, its result)."""


@dataclass(frozen=True)
class EmbeddingResult:
    """Vectors for a batch, in input order, with what it took to make them."""

    vectors: Matrix
    truncated: int = 0
    """How many inputs were longer than the model's context and were cut."""
    tokens: int = 0
    """Tokens billed or processed (the provider's own ``usage`` when it reports one)."""
    cached: int = 0
    """How many rows came from the embedding cache instead of the model."""
    text_tokens: np.ndarray | None = None
    """Each text's tokens as the model processed them (special tokens included, capped at its
    context), -1 for a text the model did not see (a cache hit); ``None`` from a model that does
    not report them (``reports_text_tokens``). Lets a caller that needs per-text counts (the
    server's ``usage`` and context check) skip a second tokenisation."""
    text_truncated: np.ndarray | None = None
    """With ``text_tokens``: True where the text was longer than the context and was cut."""

    def with_vectors(self, vectors: Matrix) -> EmbeddingResult:
        """The same result for other vectors of the same texts (a wrapper that transforms them)."""
        return replace(self, vectors=vectors)


@dataclass
class CostMeter:
    """Running totals of what an embedder has consumed; thread-safe."""

    price_per_million: float = 0.0
    requests: int = 0
    tokens: int = 0
    items: int = 0
    cached_items: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, tokens: int = 0, items: int = 0, requests: int = 0, cached_items: int = 0,
            retries: int = 0) -> None:
        with self._lock:
            self.tokens += tokens
            self.items += items
            self.requests += requests
            self.cached_items += cached_items
            self.retries += retries

    @property
    def dollars(self) -> float:
        return self.tokens * self.price_per_million / 1_000_000

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "items": self.items,
            "cached_items": self.cached_items,
            "retries": self.retries,
            "dollars": round(self.dollars, 6),
        }


@runtime_checkable
class Embedder(Protocol):
    """Turns items into vectors. Providers register a factory for their scheme.

    ``id`` names the vector space (provider, model, dimensions): two embedders with the same id
    produce comparable vectors. ``fingerprint`` additionally names everything that changes the
    exact numbers (backend, precision, prefixes) and keys the embedding cache.
    """

    # Read-only here: a wrapper (the cache, the server's batcher) reads them through.
    @property
    def id(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def modalities(self) -> frozenset[str]: ...

    @property
    def meter(self) -> CostMeter: ...

    @property
    def fingerprint(self) -> str: ...

    def embed(self, items: Sequence[Any], kind: Kind = "document") -> Matrix: ...

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult: ...


@runtime_checkable
class ImageEmbedder(Embedder, Protocol):
    """An ``Embedder`` that also embeds images (``"image" in modalities``): a ``pathlib.Path``,
    the bytes of an image file, or a ``PIL.Image`` (see ``models.images``).

    ``errors="raise"`` raises ``UnreadableImage`` listing every unreadable image (nothing is
    embedded); ``errors="skip"`` embeds the readable ones and returns the failures beside them.
    """

    def embed_images(self, items: Sequence[Any], *, errors: ImageErrors = "raise") -> ImageBatch: ...


def reports_text_tokens(embedder: Any, kind: Kind) -> bool:
    """Whether ``embedder``'s results of ``kind`` carry each text's own token count
    (``EmbeddingResult.text_tokens``): a local model's, unless it prepends a prompt to that kind,
    whose tokens the text's own count must not include."""
    reports: Callable[[Kind], bool] | None = getattr(embedder, "reports_text_tokens", None)
    return bool(reports(kind)) if reports is not None else False


def supports_images(embedder: Any) -> bool:
    """Whether ``embedder`` (a model or any wrapper around one) can embed images."""
    return embedder is not None and "image" in getattr(embedder, "modalities", ())


class BaseEmbedder:
    """Shared plumbing: input checks and ``embed`` in terms of ``_embed_texts``."""

    id: str
    dimensions: int
    max_tokens: int
    modalities: frozenset[str] = frozenset({"text"})
    normalized: bool = True

    def __init__(self) -> None:
        self.meter = CostMeter()

    @property
    def fingerprint(self) -> str:
        return self.id

    def embed(self, items: Sequence[Any], kind: Kind = "document") -> Matrix:
        return self.embed_result(items, kind).vectors

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        check_kind(kind)
        texts = check_texts(items)
        result = self._embed_texts(texts, kind)
        if result.vectors.shape != (len(texts), self.dimensions):
            raise AssertionError(
                f"{self.id} returned {result.vectors.shape}, expected {(len(texts), self.dimensions)}"
            )
        return result

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        raise NotImplementedError

    def embed_stream(self, items: Sequence[Any], kind: Kind = "document", *,
                     piece: int = STREAM_PIECE) -> Stream:
        """The vectors of ``items`` in pieces, as they are computed (see ``Stream``); ``piece``
        texts per call to the model unless the model streams a whole call itself."""
        check_kind(kind)
        texts = check_texts(items)
        for start, result in self._stream_texts(texts, kind, piece):
            if result.vectors.ndim != 2 or result.vectors.shape[1] != self.dimensions \
                    or start + len(result.vectors) > len(texts):
                raise AssertionError(f"{self.id} streamed {result.vectors.shape} at row {start} "
                                     f"of {len(texts)}, expected {self.dimensions} columns")
            yield start, result

    def _stream_texts(self, texts: list[str], kind: Kind, piece: int = STREAM_PIECE) -> Stream:
        """By default ``piece`` texts per ``embed_result`` call (a model may implement either
        ``_embed_texts`` or ``embed_result`` itself, as CLIP does); a model that sorts or batches
        across a whole call (local models sort by length) overrides this to stream all of it."""
        for start in range(0, len(texts), piece):
            yield start, self.embed_result(texts[start:start + piece], kind)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.fingerprint}>"


def collect(pieces: Stream, n: int, dimensions: int) -> EmbeddingResult:
    """One result from a stream of pieces covering ``n`` texts."""
    out = np.empty((n, dimensions), dtype=np.float32)
    tokens = truncated = cached = 0
    text_tokens: np.ndarray | None = np.full(n, -1, dtype=np.int64)
    text_truncated: np.ndarray | None = np.zeros(n, dtype=bool)
    for start, result in pieces:
        end = start + len(result.vectors)
        out[start:end] = result.vectors
        tokens += result.tokens
        truncated += result.truncated
        cached += result.cached
        if text_tokens is not None and text_truncated is not None \
                and result.text_tokens is not None and result.text_truncated is not None:
            text_tokens[start:end] = result.text_tokens
            text_truncated[start:end] = result.text_truncated
        else:  # one piece without them: the whole call has none
            text_tokens = text_truncated = None
    return EmbeddingResult(out, truncated=truncated, tokens=tokens, cached=cached,
                           text_tokens=text_tokens, text_truncated=text_truncated)


def embed_stream(embedder: Embedder, texts: list[str], kind: Kind, piece: int = STREAM_PIECE) -> Stream:
    """``embedder.embed_stream`` when it has one, else ``embed_result`` on ``piece`` texts at a
    time (an embedder written against the bare ``Embedder`` protocol)."""
    stream: Callable[..., Stream] | None = getattr(embedder, "embed_stream", None)
    if stream is not None:
        yield from stream(texts, kind, piece=piece)
        return
    for start in range(0, len(texts), piece):
        yield start, embedder.embed_result(texts[start:start + piece], kind)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be 'document' or 'query', got {kind!r}")


def empty_matrix(dimensions: int) -> Matrix:
    return np.zeros((0, dimensions), dtype=np.float32)


class EmbedderWrapper:
    """Base of embedders that wrap another one (the cache, the server's request batcher).

    The ``Embedder`` surface reads through to ``inner``, and so do provider-specific
    attributes (``backend``, ``precision``...), so wrapping never hides them. Subclasses
    implement ``embed_result``.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    @property
    def modalities(self) -> frozenset[str]:
        return self.inner.modalities

    @property
    def meter(self) -> CostMeter:
        # The inner meter: tokens and dollars count real model calls only.
        return self.inner.meter

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the wrapper lacks; private names and a not-yet-set
        # ``inner`` (during construction or copying) must not recurse into the inner embedder.
        if name == "inner" or name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def embed(self, items: Sequence[Any], kind: Kind = "document") -> Matrix:
        return self.embed_result(items, kind).vectors

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        raise NotImplementedError

    def embed_stream(self, items: Sequence[Any], kind: Kind = "document", *,
                     piece: int = STREAM_PIECE) -> Stream:
        """``piece`` texts per ``embed_result`` call. Defined here so that the inner embedder's
        own ``embed_stream`` is never reached through ``__getattr__``, which would skip what the
        wrapper does; a wrapper that can stream overrides it."""
        texts = check_texts(items)
        for start in range(0, len(texts), piece):
            yield start, self.embed_result(texts[start:start + piece], kind)

    def embed_images(self, items: Sequence[Any], *, errors: ImageErrors = "raise") -> ImageBatch:
        """Images go straight to the inner model: a wrapper neither caches nor merges them."""
        if not supports_images(self.inner):
            raise InvalidInput(f"{self.id} embeds text only; images need a model that embeds them (clip:...)")
        embed_images: Callable[..., ImageBatch] = self.inner.embed_images  # type: ignore[attr-defined]
        return embed_images(items, errors=errors)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.inner!r}>"


# --- what a provider is ---------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDescription:
    """What is known about a model without loading it: its catalogue entry (or a stand-in with
    the fields token counting and cost need; 0 where unknown) and where its files are."""

    info: ModelInfo
    folder: Path | None = None
    """The folder holding the model's files (its ``tokenizer.json``), for models on disk."""


Factory = Callable[..., Embedder]


@dataclass(frozen=True)
class Provider:
    """Everything semkit knows about one provider, declared once, next to its code; the table in
    ``providers.py`` lists every descriptor and the spec parser, catalogue lookups, availability,
    token counting and the distributed workers' environment all read it.

    A provider module imports nothing heavy at module level: torch, onnxruntime or an HTTP
    client load when ``factory`` builds a model.
    """

    scheme: str
    """The spec prefix: ``semkit.model("scheme:name")``."""
    factory: Factory
    """``factory(name, **options)`` builds the embedder."""
    key_variables: tuple[str, ...] = ()
    """Environment variables holding the API key, the first one set wins; empty: no key."""
    key_required: bool = True
    """Whether requests need a key (a self-hosted server may not)."""
    variables: tuple[str, ...] = ()
    """The other environment variables the provider reads (base URLs, backends, model folders):
    a distributed worker needs them as the driver has them."""
    tokenizer: str = "estimate"
    """How texts of a model outside the catalogue are counted: ``cl100k_base``, ``hf`` (the
    model's ``tokenizer.json``, found through ``describe``) or ``estimate``."""
    default_name: str | None = None
    """What a bare ``scheme`` (or ``scheme:``) names; ``None``: a model name is required."""
    describe: Callable[[str], ModelDescription] | None = None
    """A model outside the catalogue, without loading it (its folder, its size when on disk)."""
    availability: Callable[[ModelInfo], tuple[bool, str]] | None = None
    """(usable now, why) for a catalogue entry; by default, whether a key variable is set."""

    @property
    def worker_variables(self) -> tuple[str, ...]:
        return self.key_variables + self.variables
