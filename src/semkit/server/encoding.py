"""Response bodies encoded without a pass through pydantic: for the hot routes (embeddings,
search), validating a result the server built itself into a response model and encoding it
cost more of the event loop than the rest of the request (measured per hybrid search at 16
clients: ~10% of the loop's time). The routes keep their ``response_model`` for the API's
schema, and tests check that what they send validates against it."""

from __future__ import annotations

import json
from typing import Any

try:  # ~20x faster than json.dumps on a vector's floats; optional (plain json otherwise)
    import orjson
except ImportError:  # pragma: no cover - depends on the install
    orjson = None  # type: ignore[assignment]


def json_bytes(value: Any, *, numpy: bool = False) -> bytes:
    """``value`` as compact UTF-8 JSON. ``numpy``: NumPy arrays in it are written as lists of
    their float64 numbers (only with orjson installed; without it, pass plain lists)."""
    if orjson is not None:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY if numpy else 0)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def has_orjson() -> bool:
    """Whether ``json_bytes`` can write NumPy arrays itself."""
    return orjson is not None
