from __future__ import annotations

import subprocess
import sys

import semkit
from semkit import errors


def test_public_names_are_pinned() -> None:
    assert sorted(semkit.__all__) == sorted(
        ["__version__", "connect", "embed", "errors", "model", "similarity"]
    )


def test_importing_semkit_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, semkit, semkit.cli, semkit.embed.registry, semkit.store.filters, semkit.ingest.distributed;"
        "heavy = [m for m in ('torch', 'onnxruntime', 'psycopg', 'faiss', 'sentence_transformers',"
        " 'transformers', 'hnswlib', 'pyarrow', 'ray', 'qdrant_client') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_error_is_a_semkit_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.SemkitError)
    assert errors.RateLimited("x").retryable
    assert not errors.AuthError("x").retryable
    assert errors.StoreLocked("x").retryable


def test_embed_stays_a_function_after_submodules_load() -> None:
    # `semkit.embed` is both the entry point and the name of the providers' package.
    code = (
        "import semkit, semkit.embed.cache, semkit.embed.registry;"
        "from semkit.embed import catalog;"
        "print(callable(semkit.embed))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
