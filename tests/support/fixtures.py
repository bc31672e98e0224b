"""Session fixtures shared by every test folder (registered from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own embedding cache directory, so no test sees another's cache.

    The exported ONNX models are expensive to build, so they live in one session-wide folder
    (``SEMKIT_ONNX_DIR``) instead.
    """
    path = tmp_path_factory.mktemp("semkit-cache")
    monkeypatch.setenv("SEMKIT_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session", autouse=True)
def shared_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import os

    path = tmp_path_factory.mktemp("semkit-onnx")
    old = os.environ.get("SEMKIT_ONNX_DIR")
    os.environ.setdefault("SEMKIT_ONNX_DIR", str(path))
    yield Path(os.environ["SEMKIT_ONNX_DIR"])
    if old is None and os.environ.get("SEMKIT_ONNX_DIR") == str(path):
        del os.environ["SEMKIT_ONNX_DIR"]
