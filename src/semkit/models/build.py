"""Building models: a spec (``local``, ``openai:text-embedding-3-small``) or the embedder id a
collection recorded (``local:all-MiniLM-L6-v2@384``) to an embedder, with or without the
persistent embedding cache. ``semkit.model()``, ``Collection``, the server's model pool and the
distributed workers all build their models here."""

from __future__ import annotations

import os
from typing import Any

from ..errors import DimensionMismatch, InvalidInput
from . import catalog, registry
from .base import Embedder


def build_model(spec: str, *, cache: bool = True, cache_dir: str | os.PathLike[str] | None = None,
                **options: Any) -> Embedder:
    """The embedder ``spec`` names, built by its provider with ``options``; with ``cache`` its
    vectors are kept in the persistent cache in ``cache_dir`` (default ``SEMKIT_CACHE_DIR`` or
    the user cache folder), so the same text is never embedded, or paid for, twice."""
    embedder = registry.create(spec, **options)
    return with_cache(embedder, cache_dir) if cache else embedder


def with_cache(embedder: Embedder, cache_dir: str | os.PathLike[str] | None = None) -> Embedder:
    """``embedder`` behind the persistent embedding cache in ``cache_dir``."""
    from .cache import CachedEmbedder, EmbeddingCache

    return CachedEmbedder(embedder, EmbeddingCache.open(cache_dir))


def split_embedder_id(embedder_id: str) -> tuple[str, int | None]:
    """``local:all-MiniLM-L6-v2@384`` → (``local:all-MiniLM-L6-v2``, 384)."""
    spec, sep, dims = embedder_id.rpartition("@")
    if sep and dims.isdigit():
        return spec, int(dims)
    return embedder_id, None


def model_from_id(embedder_id: str, *, cache: bool = True,
                  cache_dir: str | os.PathLike[str] | None = None) -> Embedder:
    """Re-create the embedder a collection recorded (its id is the spec plus ``@dims``)."""
    spec, dims = split_embedder_id(embedder_id)
    info = catalog.find(*registry.parse_spec(spec))
    if info is not None and dims is not None and info.dimensions != dims:
        # A Matryoshka / API-sized variant of a catalogue model.
        return build_model(spec, cache=cache, cache_dir=cache_dir, dimensions=dims)
    embedder = build_model(spec, cache=cache, cache_dir=cache_dir)
    if dims is not None and embedder.dimensions != dims:
        # A truncated (Matryoshka) or API-sized model: the size is an option of the spec.
        embedder = build_model(spec, cache=cache, cache_dir=cache_dir, dimensions=dims)
    return embedder


def resolve_model(model: str | Embedder, dimensions: int | None) -> Embedder:
    """An embedder from a spec string (built with the default cache) or an embedder object,
    checking ``dimensions`` when given."""
    if isinstance(model, str):
        options: dict[str, Any] = {"dimensions": dimensions} if dimensions is not None else {}
        embedder = build_model(model, **options)
    else:
        embedder = model
        for attr in ("id", "dimensions", "embed"):
            if not hasattr(embedder, attr):
                raise InvalidInput(
                    f"model must be a spec like 'local' or an Embedder, got {type(model).__name__}"
                )
    if dimensions is not None and embedder.dimensions != dimensions:
        raise DimensionMismatch(dimensions, embedder.dimensions, f"model {embedder.id}")
    return embedder
