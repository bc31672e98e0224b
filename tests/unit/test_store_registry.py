"""``store/registry.py``: the one table of store schemes, factories and capabilities."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import semkit
from semkit import capacity
from semkit.database import register_scheme
from semkit.errors import ConfigError
from semkit.store import registry
from semkit.store.memory import MemoryStore


def test_a_uri_names_a_backend_and_its_target(tmp_path: Path) -> None:
    assert registry.find("./kb") == (registry.EMBEDDED, "./kb")
    assert registry.find("file:///data/kb") == (registry.EMBEDDED, "/data/kb")
    pg, target = registry.find("PostgreSQL://me@db/x")
    assert pg.name == "pgvector" and target == "PostgreSQL://me@db/x"
    assert registry.find("postgres://db/x")[0] is pg
    local, target = registry.find("qdrant+local://./q")
    assert local.name == "qdrant-local" and target == "./q"
    assert registry.find("qdrant://host:6333")[1] == "qdrant://host:6333"
    with pytest.raises(ConfigError, match=r"unknown database scheme 'redis'.*memory://"):
        registry.find("redis://localhost")


def test_every_built_in_backend_declares_its_capabilities() -> None:
    names = [b.name for b in registry.BUILT_IN]
    assert names == ["embedded", "pgvector", "qdrant", "qdrant-local", "memory"]
    for backend in registry.BUILT_IN:
        caps = registry.capabilities(backend.name)
        assert caps.dtypes and set(caps.dtypes) <= {"float32", "float16", "int8", "binary"}
        assert all(registry.SCHEMES[s] is backend for s in backend.schemes)
    assert registry.capabilities("pgvector").needs_server and not registry.capabilities("embedded").needs_server
    assert not registry.capabilities("memory").persistent
    with pytest.raises(ConfigError, match="unknown store backend"):
        registry.backend("redis")


def test_capacity_reads_the_dtypes_from_the_registry() -> None:
    for name in capacity.BACKENDS:
        assert capacity.SUPPORTED[name] == registry.capabilities(name).dtypes


def test_connect_keeps_the_backend_it_opened(tmp_path: Path) -> None:
    with semkit.connect("memory://") as db:
        assert db.backend is not None and db.backend.name == "memory"
        assert db.capabilities is not None and db.capabilities.keyword_search == "python"
    with semkit.connect(tmp_path / "kb") as db:
        assert db.backend is registry.EMBEDDED and db.capabilities.ann_index == "hnsw"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="takes no options"):
        semkit.connect("memory://", pool=3)


def test_a_registered_scheme_opens_with_unknown_capabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "SCHEMES", dict(registry.SCHEMES))
    targets: list[str] = []

    def factory(target: str, **options: Any) -> MemoryStore:
        targets.append(target)
        return MemoryStore()

    register_scheme("Toy", factory, pass_uri=False)
    with semkit.connect("toy://some/where") as db:
        assert targets == ["some/where"]
        assert db.backend is not None and db.backend.name == "toy" and db.capabilities is None


def test_reading_the_registry_imports_no_backend() -> None:
    code = ("import sys; from semkit.store import registry; registry.find('postgresql://x'); "
            "registry.capabilities('qdrant'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'qdrant_client', 'faiss') "
            "or m in ('semkit.store.embedded', 'semkit.store.pgvector', 'semkit.store.qdrant')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


BACKEND_MODULES = ("embedded", "pgvector", "qdrant", "memory")


def test_no_backend_imports_another_backend_or_the_registry() -> None:
    package = Path(registry.__file__).parent
    for module in BACKEND_MODULES:
        tree = ast.parse((package / f"{module}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
                    for alias in node.names if node.module is None}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
        forbidden = imported & {*BACKEND_MODULES, "registry"}
        assert not forbidden, f"store/{module}.py imports {sorted(forbidden)}"


@pytest.mark.parametrize("dsn", ["user=postgres dbname=docs host=127.0.0.1 port=5432", "dbname=docs", "host=db"])
def test_a_libpq_string_is_refused_instead_of_becoming_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                dsn: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="postgresql://"):
        semkit.connect(dsn)
    assert list(tmp_path.iterdir()) == []
