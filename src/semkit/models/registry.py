"""Model specs (``scheme:name``) to embedders. Provider modules are imported only when used,
so ``import semkit`` never pulls in torch, onnxruntime or an HTTP client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ModelNotAvailable
from . import catalog
from .base import Embedder

Factory = Callable[..., Embedder]


def _local(name: str, **options: Any) -> Embedder:
    from .local import load_local

    return load_local(name, **options)


def _openai(name: str, **options: Any) -> Embedder:
    from .openai import OpenAIEmbedder

    return OpenAIEmbedder(name, **options)


def _cohere(name: str, **options: Any) -> Embedder:
    from .cohere import CohereEmbedder

    return CohereEmbedder(name, **options)


def _http(name: str, **options: Any) -> Embedder:
    from .openai import OpenAICompatibleEmbedder

    return OpenAICompatibleEmbedder(name, **options)


def _clip(name: str, **options: Any) -> Embedder:
    from .clip import load_clip

    return load_clip(name, **options)


_FACTORIES: dict[str, Factory] = {
    "local": _local,
    "openai": _openai,
    "cohere": _cohere,
    "http": _http,
    "clip": _clip,
}


def register(scheme: str, factory: Factory) -> None:
    """Add a provider: ``semkit.model("scheme:name", **options)`` will call ``factory(name, **options)``."""
    _FACTORIES[scheme] = factory


def schemes() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``scheme:name``; a bare ``local`` means the default model, a bare catalogue name
    finds its provider."""
    spec = spec.strip()
    if not spec:
        raise ModelNotAvailable("empty model spec; use e.g. 'local' or 'openai:text-embedding-3-small'")
    if spec == "local":
        return "local", catalog.DEFAULT_LOCAL
    if spec in ("clip", "clip:"):  # the folder comes from SEMKIT_CLIP_MODEL
        return "clip", ""
    scheme, sep, name = spec.partition(":")
    if sep and scheme in _FACTORIES:
        if not name:
            if scheme == "local":
                return "local", catalog.DEFAULT_LOCAL
            raise ModelNotAvailable(f"model spec {spec!r} names no model; e.g. '{scheme}:MODEL'")
        return scheme, name
    for provider in ("local", "openai", "cohere"):
        if catalog.find(provider, spec) is not None:
            return provider, spec
    known = ", ".join(f"{s}:" for s in _FACTORIES)
    raise ModelNotAvailable(
        f"unknown model {spec!r}: use a provider prefix ({known}) such as "
        "'local', 'local:/path/to/model', 'openai:text-embedding-3-small'; "
        "`semkit models` lists the catalogue"
    )


def create(spec: str, **options: Any) -> Embedder:
    scheme, name = parse_spec(spec)
    return _FACTORIES[scheme](name, **options)
