"""The provider table: every ``Provider`` descriptor, by scheme. The spec parser and factory
(``registry.py``), availability (``availability.py``), token counting (``tokens.py``) and the
distributed workers' environment (``worker_environment_names``) all read it.

Adding a provider touches two files: its module, which declares its ``Provider`` next to the
code that reads its settings, and the ``_BUILT_IN`` line below (or, at run time, ``register``).
Provider modules import nothing heavy at module level, so importing this table is cheap: torch,
onnxruntime and HTTP clients load when a model is built.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelNotAvailable
from .base import Factory, Provider
from .clip import CLIP
from .cohere import COHERE
from .local import LOCAL
from .locate import HF_CACHE_VARIABLES
from .openai import HTTP, OPENAI

_BUILT_IN: tuple[Provider, ...] = (LOCAL, OPENAI, COHERE, HTTP, CLIP)

PROVIDERS: dict[str, Provider] = {p.scheme: p for p in _BUILT_IN}
"""Every provider by scheme; bare catalogue names are looked up in this order."""

GENERAL_WORKER_VARIABLES: tuple[str, ...] = (
    "SEMKIT_CACHE_DIR",  # config.cache_dir: the embedding cache and the exported ONNX graphs
    *HF_CACHE_VARIABLES,  # locate.hf_hub_cache: where models in the Hugging Face cache are
    "HF_HUB_OFFLINE",  # huggingface_hub: never reach for the network
    "TRANSFORMERS_OFFLINE",  # transformers (the torch backend, CLIP): same
    "TOKENIZERS_PARALLELISM",  # tokenizers: whether it may start its own threads
)
"""Settings every provider's models depend on, whoever provides them."""


def provider(scheme: str) -> Provider | None:
    return PROVIDERS.get(scheme)


def schemes() -> tuple[str, ...]:
    return tuple(PROVIDERS)


def register(scheme: str | Provider, factory: Factory | None = None, **fields: Any) -> Provider:
    """Add (or replace) a provider: ``register(Provider(...))``, or ``register("scheme",
    factory, **fields)`` with the other ``Provider`` fields as keywords. Afterwards
    ``semkit.model("scheme:name", **options)`` calls ``factory(name, **options)``."""
    if isinstance(scheme, Provider):
        if factory is not None or fields:
            raise TypeError("register(Provider(...)) takes no other arguments")
        descriptor = scheme
    else:
        if factory is None:
            raise TypeError(f"register({scheme!r}, factory) needs the factory that builds its models")
        descriptor = Provider(scheme=scheme, factory=factory, **fields)
    if not descriptor.scheme or ":" in descriptor.scheme or "@" in descriptor.scheme:
        raise ModelNotAvailable(f"a provider scheme is a plain word, like 'local' or 'openai'; got "
                                f"{descriptor.scheme!r}")
    PROVIDERS[descriptor.scheme] = descriptor
    return descriptor


def worker_environment_names() -> tuple[str, ...]:
    """The environment variables a worker process must see as the driver does: the general ones,
    and every provider's key and setting variables (the union, each once, in table order)."""
    names = list(GENERAL_WORKER_VARIABLES)
    for descriptor in PROVIDERS.values():
        names += descriptor.worker_variables
    return tuple(dict.fromkeys(names))
