"""Model specs (``scheme:name``) to providers: parsing a spec, building its embedder (uncached;
``build.py`` adds the cache), and describing its model without loading it. Everything a
provider is comes from the table in ``providers.py``."""

from __future__ import annotations

from typing import Any

from ..errors import ModelNotAvailable
from . import catalog
from .base import Embedder, ModelDescription, Provider
from .providers import PROVIDERS, register, schemes

__all__ = ["create", "describe", "identify", "parse_spec", "register", "schemes"]


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``scheme:name``; a bare scheme means its default model (``local`` the bundled
    MiniLM, ``clip`` the folder ``SEMKIT_CLIP_MODEL`` names), a bare catalogue name finds its
    provider."""
    spec = spec.strip()
    if not spec:
        raise ModelNotAvailable("empty model spec; use e.g. 'local' or 'openai:text-embedding-3-small'")
    scheme, sep, name = spec.partition(":")
    descriptor = PROVIDERS.get(scheme)
    if descriptor is not None and (sep or descriptor.default_name is not None):
        if name:
            return scheme, name
        if descriptor.default_name is not None:
            return scheme, descriptor.default_name
        raise ModelNotAvailable(f"model spec {spec!r} names no model; e.g. '{scheme}:MODEL'")
    for candidate in PROVIDERS:
        if catalog.find(candidate, spec) is not None:
            return candidate, spec
    known = ", ".join(f"{s}:" for s in PROVIDERS)
    raise ModelNotAvailable(
        f"unknown model {spec!r}: use a provider prefix ({known}) such as "
        "'local', 'local:/path/to/model', 'openai:text-embedding-3-small'; "
        "`semkit models` lists the catalogue"
    )


def _provider(scheme: str) -> Provider:
    descriptor = PROVIDERS.get(scheme)
    if descriptor is None:  # unregistered since the spec was parsed
        raise ModelNotAvailable(f"no provider for {scheme!r}; known: {', '.join(PROVIDERS)}")
    return descriptor


def create(spec: str, **options: Any) -> Embedder:
    """The embedder ``spec`` names, built by its provider with ``options``; no cache."""
    scheme, name = parse_spec(spec)
    return _provider(scheme).factory(name, **options)


def describe(spec: str) -> ModelDescription:
    """What is known about the model a spec or an embedder id (spec plus ``@dims``) names,
    without loading it: its catalogue entry, else what its provider can tell (a local folder's
    size and tokenizer), else a stand-in with the provider's tokenizer and 0 for what is unknown.
    ``ModelNotAvailable`` when no provider takes the spec."""
    base, sep, dims = spec.rpartition("@")
    if sep and dims.isdigit():
        spec = base
    scheme, name = parse_spec(spec)
    info = catalog.find(scheme, name)
    if info is not None:
        return ModelDescription(info)
    descriptor = _provider(scheme)
    if descriptor.describe is not None:
        return descriptor.describe(name)
    return ModelDescription(catalog.ModelInfo(name=name, provider=scheme, dimensions=0, max_tokens=0,
                                              tokenizer=descriptor.tokenizer))


def identify(spec: str, dimensions: int | None = None) -> tuple[str, int] | None:
    """The id and dimensions of the embedder ``create(spec)`` would build, read from the model
    folder's config without loading the model (a local model's load builds its ONNX session:
    ~0.3 s and ~100 MB). ``None`` when only loading can tell: another provider, a Matryoshka
    size, a folder with modules only sentence-transformers runs (it decides the size), or a
    model its id would not find again (the id is what a collection reloads the model from)."""
    scheme, name = parse_spec(spec)
    if scheme != "local":
        return None
    from .local import ModelFolder, resolve

    try:
        resolved = resolve(name)
        folder = ModelFolder.read(resolved.folder)
        again = resolve(resolved.name)
    except ModelNotAvailable:
        return None
    if again.folder != resolved.folder or folder.onnx_blocker() is not None:
        return None
    if dimensions is not None and dimensions != folder.dimensions:
        return None
    # LocalEmbedder's id: ``local:<resolved name>@<dimensions>``.
    return f"local:{resolved.name}@{folder.dimensions}", folder.dimensions
