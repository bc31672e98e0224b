"""The semkit HTTP server: REST over collections and apps, an OpenAI-compatible
``/v1/embeddings``, API keys, limits, Prometheus metrics and a small offline web UI.

Needs the ``server`` extra (``pip install 'semkit[server]'``). The server has no logic of its
own: every route calls the same public functions a library user calls. Build the ASGI app with
``create_app`` and run it with any ASGI server (``semkit serve`` uses uvicorn).
"""

from __future__ import annotations

from typing import Any


def create_app(db_uri: str, **options: Any) -> Any:
    """The FastAPI application for the database at ``db_uri`` (see ``semkit.server.app``)."""
    from .app import create_app as _create_app

    return _create_app(db_uri, **options)


__all__ = ["create_app"]
