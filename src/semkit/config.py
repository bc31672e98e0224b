"""Where semkit keeps things. Explicit arguments win; then ``SEMKIT_*`` variables; then defaults."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "semkit"

DEFAULT_DB = "./kb"
"""The database the library and the CLI open when none is named (``SEMKIT_DB`` moves it)."""


def database_uri(explicit: str | os.PathLike[str] | None = None) -> str:
    """The database to open: ``explicit``, else ``SEMKIT_DB``, else ``./kb``."""
    if explicit is not None:
        return os.fspath(explicit)
    return os.environ.get("SEMKIT_DB") or DEFAULT_DB


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory for the embedding cache and exported ONNX models.

    ``SEMKIT_CACHE_DIR`` moves it; the default is the platform's user cache directory.
    """
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("SEMKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}
