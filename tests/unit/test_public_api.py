from __future__ import annotations

import subprocess
import sys

import semkit
from semkit import errors


def test_public_names_are_pinned() -> None:
    assert sorted(semkit.__all__) == sorted(
        ["__version__", "apps", "connect", "embed", "errors", "model", "similarity"]
    )


def test_importing_semkit_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, semkit, semkit.cli, semkit.models.registry, semkit.store.filters, semkit.ingest.distributed;"
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


def test_a_name_is_a_module_or_a_function_never_both() -> None:
    # `semkit.embed` is the entry point; the providers live in `semkit.models`. Every public
    # name of `semkit.apps` is a function or a class, never a module.
    code = (
        "import inspect, semkit, semkit.models.cache, semkit.models.registry;"
        "from semkit.models import catalog;"
        "from semkit import apps;"
        "print(callable(semkit.embed), inspect.ismodule(semkit.models.catalog),"
        " [n for n in apps.__all__ if inspect.ismodule(getattr(apps, n))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True True []"


def test_apps_is_an_attribute_of_the_package_and_loads_lazily() -> None:
    code = (
        "import sys, semkit;"
        "before = 'semkit.apps' in sys.modules;"
        "apps = semkit.apps;"
        "heavy = [m for m in ('torch', 'sklearn', 'onnxruntime', 'faiss', 'scipy') if m in sys.modules];"
        "report = apps.duplicates(apps.from_matrix([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), threshold=0.99);"
        "print(before, len(report.groups), heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False 1 []"
