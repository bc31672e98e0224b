"""semkit: embeddings from any model, stored and searched, applied — one library, CLI and server.

Importing semkit is cheap: torch, onnxruntime, HTTP clients and database drivers load only
when a feature needs them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import errors
from .types import Kind, Matrix
from .vectors import cosine

if TYPE_CHECKING:
    from . import apps
    from .database import Database
    from .models.base import Embedder

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "apps",
    "connect",
    "embed",
    "errors",
    "model",
    "similarity",
]


def model(spec: str = "local", *, cache: bool = True, cache_dir: str | None = None,
          **options: Any) -> Embedder:
    """An embedder for ``spec``: ``local`` (the bundled all-MiniLM-L6-v2),
    ``local:/path/to/folder``, ``openai:text-embedding-3-small``, ``cohere:embed-v4.0``,
    ``http:MODEL`` (any OpenAI-compatible server, with ``base_url=``).

    Options go to the provider (``dimensions``, ``base_url``, ``api_key``, ``backend``...).
    With ``cache=True`` (the default) vectors are kept in a persistent content-addressed cache,
    so the same text is never embedded, or paid for, twice.
    """
    from .models.build import build_model

    return build_model(spec, cache=cache, cache_dir=cache_dir, **options)


_loaded: dict[tuple[str, bool, tuple[tuple[str, Any], ...]], Embedder] = {}
_loaded_lock = threading.Lock()


def _shared_model(spec: str, cache: bool, options: dict[str, Any]) -> Embedder:
    # semkit.embed() is a convenience entry point: loading a model takes a second or more, so
    # the loaded model is reused for the same spec and options within this process.
    key = (spec, cache, tuple(sorted(options.items())))
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = model(spec, cache=cache, **options)
        return _loaded[key]


def embed(texts: Sequence[str] | str, model: str = "local", kind: Kind = "document", *,
          cache: bool = True, **options: Any) -> Matrix:
    """Embed texts with ``model``; returns an ``(n, dimensions)`` float32 array in input order.

    ``kind="query"`` embeds the query side (models with query prefixes or input types use it).
    """
    return _shared_model(model, cache, options).embed(
        [texts] if isinstance(texts, str) else texts, kind
    )


def similarity(a: str | Any, b: str | Any, model: str = "local") -> float | np.ndarray:
    """Cosine similarity of two texts, two vectors, or two batches (a matrix of scores)."""
    if isinstance(a, str) or isinstance(b, str):
        texts = [x for x in (a, b) if isinstance(x, str)]
        vecs = iter(embed(texts, model))
        a = next(vecs) if isinstance(a, str) else a
        b = next(vecs) if isinstance(b, str) else b
    return cosine(a, b)


def connect(uri: str | None = None, **options: Any) -> Database:
    """Open a database of collections: a folder path (embedded, no server),
    ``postgresql://...`` (pgvector), or ``memory://`` (in-process, for tests).

    Without ``uri``: ``SEMKIT_DB``, else ``./kb`` (the CLI's default too).
    """
    from .database import connect as _connect

    return _connect(uri, **options)


def __getattr__(name: str) -> Any:
    # ``import semkit; semkit.apps.search(...)`` works without importing the apps (and what
    # they import) at ``import semkit`` time.
    if name == "apps":
        import importlib

        return importlib.import_module(".apps", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
