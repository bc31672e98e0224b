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
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Models built by module- or session-scoped fixtures (set up before ``isolated_cache``)
    cache in a session folder, never in the user's own ``~/.cache/semkit``."""
    import os

    path = tmp_path_factory.mktemp("semkit-session-cache")
    old = os.environ.get("SEMKIT_CACHE_DIR")
    os.environ["SEMKIT_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SEMKIT_CACHE_DIR", None)
    else:
        os.environ["SEMKIT_CACHE_DIR"] = old


@pytest.fixture(scope="session", autouse=True)
def shared_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import os

    path = tmp_path_factory.mktemp("semkit-onnx")
    old = os.environ.get("SEMKIT_ONNX_DIR")
    os.environ.setdefault("SEMKIT_ONNX_DIR", str(path))
    yield Path(os.environ["SEMKIT_ONNX_DIR"])
    if old is None and os.environ.get("SEMKIT_ONNX_DIR") == str(path):
        del os.environ["SEMKIT_ONNX_DIR"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a real PostgreSQL 18 + pgvector on 127.0.0.1 for the whole session.

    Tests using it carry the ``postgres`` marker. ``SEMKIT_TEST_POSTGRES_DSN`` points the
    tests at an existing server instead (it must have pgvector installed). If the embedded
    server cannot start, the tests fail with the reason, unless ``SEMKIT_SKIP_POSTGRES=1``
    (then they are skipped).
    """
    import os

    from tests.support.pgserver import PostgresUnavailable, start_postgres

    external = os.environ.get("SEMKIT_TEST_POSTGRES_DSN")
    if external:
        yield external
        return
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        if os.environ.get("SEMKIT_SKIP_POSTGRES") == "1":
            pytest.skip(f"SEMKIT_SKIP_POSTGRES=1 and the embedded PostgreSQL did not start: {exc}")
        pytest.fail(f"could not start the embedded PostgreSQL server: {exc}\n"
                    "(set SEMKIT_SKIP_POSTGRES=1 to skip PostgreSQL tests)", pytrace=False)
    try:
        yield server.dsn
    finally:
        server.stop()
from tests.support.fake_provider import fake_provider  # noqa: F401, E402
