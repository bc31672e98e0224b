"""``connect``, ``Database`` and ``Collection`` on the in-memory store: validation, the
fingerprint rules, batching, re-embed and export/import. Behaviour shared by every backend is
also in tests/contract/test_collection_contract.py."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.collection import Collection, Hit, model_from_id, split_embedder_id
from semkit.database import Database, connect, register_scheme
from semkit.errors import (
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    InvalidFilter,
    InvalidInput,
    ModelMismatch,
)
from semkit.models import providers
from semkit.models.base import Provider
from semkit.store.memory import MemoryStore
from tests.support.hash_embedder import HashEmbedder


@pytest.fixture
def db() -> Iterator[Database]:
    with connect("memory://") as database:
        yield database


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder(16)


@pytest.fixture
def docs(db: Database, embedder: HashEmbedder) -> Collection:
    return db.collection("docs", model=embedder)


@pytest.fixture
def test_scheme(monkeypatch: pytest.MonkeyPatch) -> list[HashEmbedder]:
    """``semkit.model("test:NAME", dimensions=N)`` builds HashEmbedders; returns those built."""
    built: list[HashEmbedder] = []

    def factory(name: str, dimensions: int = 16, **_: Any) -> HashEmbedder:
        built.append(HashEmbedder(dimensions, name=name))
        return built[-1]

    monkeypatch.setitem(providers.PROVIDERS, "test", Provider("test", factory))
    return built


# --- connect and Database -----------------------------------------------------------------


def test_connect_schemes(tmp_path: Path) -> None:
    with semkit.connect("memory://") as a, semkit.connect("memory://") as b:
        assert isinstance(a.store, MemoryStore) and a.store is not b.store
    with pytest.raises(ConfigError, match="unknown database scheme 'redis'"):
        connect("redis://localhost")
    with pytest.raises(ConfigError):
        connect("")


def test_register_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.store import registry

    monkeypatch.setattr(registry, "SCHEMES", dict(registry.SCHEMES))
    seen: list[str] = []

    def factory(uri: str, **options: Any) -> MemoryStore:
        seen.append(uri)
        return MemoryStore()

    register_scheme("toy", factory)
    connect("toy://somewhere/db").close()
    assert seen == ["toy://somewhere/db"]


def test_database_lists_and_drops(db: Database, embedder: HashEmbedder) -> None:
    db.collection("b", model=embedder)
    db.collection("a", model=None, dimensions=3)
    assert db.collections() == ["a", "b"]
    assert "a" in db and "zzz" not in db
    db.drop("a")
    assert db.collections() == ["b"]
    with pytest.raises(CollectionNotFound):
        db.drop("a")
    with pytest.raises(CollectionNotFound, match="existing"):
        db.collection("missing", create=False)


def test_collection_arguments_are_checked(db: Database, embedder: HashEmbedder) -> None:
    with pytest.raises(InvalidInput, match="dimensions="):
        db.collection("own", model=None)
    with pytest.raises(InvalidInput, match="metric"):
        db.collection("x", model=embedder, metric="manhattan")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="reserved"):
        db.collection("x__reembed", model=embedder)
    with pytest.raises(DimensionMismatch):
        db.collection("x", model=embedder, dimensions=8)
    db.collection("l2", model=embedder, metric="l2")
    with pytest.raises(InvalidInput, match="metric"):
        db.collection("l2", metric="cosine")
    assert db.collection("l2").metric == "l2"
    assert db.collections() == ["l2"]


def test_spec_records_the_fingerprint(docs: Collection, embedder: HashEmbedder) -> None:
    spec = docs.spec
    assert (spec.embedder, spec.dimensions, spec.metric, spec.dtype, spec.normalized) == (
        embedder.id, 16, "cosine", "float32", True,
    )
    info = docs.info()
    assert info["count"] == 0 and info["embedder"] == embedder.id


def test_recorded_model_is_loaded_lazily_from_its_id(db: Database, test_scheme: list[HashEmbedder]) -> None:
    created = db.collection("docs", model="test:hash", dimensions=24)
    assert created.spec.embedder == "test:hash@24"
    created.upsert(ids=["a", "b"], texts=["apples and pears", "cars and trucks"])
    built = len(test_scheme)
    reopened = db.collection("docs")  # no model argument: the recorded one
    assert len(test_scheme) == built  # nothing loaded yet
    assert reopened.search([1.0] * 24, k=1)  # vector search needs no model
    assert len(test_scheme) == built
    assert reopened.search("pears", k=1)[0].id == "a"
    assert reopened.model is not None and reopened.model.id == "test:hash@24"
    with pytest.raises(ModelMismatch, match=r"docs\.reembed\(model=\.\.\.\)"):
        db.collection("docs", model="test:other", dimensions=24)


def test_embedder_ids_turn_back_into_specs(test_scheme: list[HashEmbedder]) -> None:
    assert split_embedder_id("local:all-MiniLM-L6-v2@384") == ("local:all-MiniLM-L6-v2", 384)
    assert split_embedder_id("http:my@model") == ("http:my@model", None)
    assert model_from_id("test:hash@16").id == "test:hash@16"
    assert model_from_id("test:hash@40").dimensions == 40


def test_own_vectors_collection_refuses_a_model(db: Database, embedder: HashEmbedder) -> None:
    db.collection("own", model=None, dimensions=16)
    with pytest.raises(ModelMismatch, match="own vectors"):
        db.collection("own", model=embedder)


# --- upsert validation: bad input is refused and nothing is written ----------------------


def _seed(docs: Collection) -> None:
    docs.upsert(ids=["keep"], texts=["kept text"], metadata=[{"v": 1}])


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"ids": ["a", "b"], "texts": ["one"]}, InvalidInput, "texts ran out"),
        ({"ids": ["a"], "texts": ["one", "two"]}, InvalidInput, "ids ran out"),
        ({"ids": ["a", "a"], "texts": ["one", "two"]}, InvalidInput, "more than once"),
        ({"ids": ["a", 3], "texts": ["one", "two"]}, InvalidInput, "non-empty strings"),
        ({"ids": ["a", ""], "texts": ["one", "two"]}, InvalidInput, "non-empty strings"),
        ({"ids": "abc", "texts": ["one"]}, InvalidInput, "wrap a single id"),
        ({"ids": ["a", "b"], "texts": ["one", "  "]}, InvalidInput, "non-empty strings"),
        ({"ids": ["a", "b"], "texts": ["one", None]}, InvalidInput, "None is allowed only"),
        ({"ids": ["a"]}, InvalidInput, "nothing to upsert"),
        ({"ids": ["a", "b"], "vectors": np.ones((2, 5))}, DimensionMismatch, "expected vectors of 16"),
        ({"ids": ["a", "b"], "vectors": [[1.0] * 16, [float("nan")] * 16]}, InvalidInput, "NaN"),
        ({"ids": ["a", "b"], "vectors": [[1.0] * 16, [1.0] * 3]}, InvalidInput, "equal-length"),
        ({"ids": ["a", "b"], "texts": ["x", "y"], "metadata": [{}, "meta"]}, InvalidInput, "pass a dict"),
        ({"ids": ["a"], "texts": ["x"], "metadata": [{"s": {1, 2}}]}, InvalidInput, "metadata.s is a set"),
        ({"ids": ["a"], "texts": ["x"], "metadata": [{"n": float("nan")}]}, InvalidInput, "JSON cannot"),
        ({"ids": ["a"], "texts": ["x"], "metadata": [{1: "x"}]}, InvalidInput, "not a string"),
        ({"ids": ["keep", "new"], "metadata": [{"v": 2}, {"v": 3}]}, InvalidInput, "metadata-only"),
    ],
)
def test_bad_upserts_write_nothing(docs: Collection, embedder: HashEmbedder, kwargs: dict[str, Any],
                                   error: type, fragment: str) -> None:
    _seed(docs)
    calls = len(embedder.calls)
    with pytest.raises(error, match=re.escape(fragment)):
        docs.upsert(**kwargs)
    assert len(embedder.calls) == calls
    assert len(docs) == 1
    assert docs.get(["keep"])[0].metadata == {"v": 1}


def test_a_bad_row_late_in_a_list_writes_nothing(docs: Collection, embedder: HashEmbedder) -> None:
    ids = [f"id{i}" for i in range(2_500)]
    texts = [f"text number {i}" for i in range(2_500)]
    texts[2_400] = ""
    with pytest.raises(InvalidInput, match="id2400"):
        docs.upsert(ids=ids, texts=texts)
    assert len(docs) == 0 and embedder.calls == []


def test_texts_need_a_model(db: Database) -> None:
    own = db.collection("own", model=None, dimensions=3)
    with pytest.raises(InvalidInput, match="no model to embed"):
        own.upsert(ids=["a"], texts=["hello"])
    own.upsert(ids=["a"], texts=["hello"], vectors=[[1, 2, 3]])
    assert own.get("a")[0].text == "hello"


# --- upsert behaviour ---------------------------------------------------------------------


def test_iterables_stream_in_batches(docs: Collection, embedder: HashEmbedder) -> None:
    n = 2_345
    ids = (f"id{i}" for i in range(n))
    texts = (f"text {i} about topic {i % 7}" for i in range(n))
    metadata = ({"i": i} for i in range(n))
    done: list[int] = []
    result = docs.upsert(ids, texts, metadata=metadata, batch_size=1_000, progress=done.append)
    assert (result.count, result.embedded, result.unchanged) == (n, n, 0)
    assert done == [1_000, 2_000, n]
    assert [len(texts) for _, texts in embedder.calls] == [1_000, 1_000, 345]
    assert len(docs) == n
    assert docs.get("id2344")[0].metadata == {"i": 2344}


def test_a_short_iterator_is_an_error(docs: Collection) -> None:
    with pytest.raises(InvalidInput, match="texts ran out"):
        docs.upsert(iter(["a", "b", "c"]), iter(["one", "two"]))


def test_rerunning_an_upsert_embeds_nothing(docs: Collection, embedder: HashEmbedder) -> None:
    ids, texts = ["a", "b", "c"], ["one fish", "two fish", "red fish"]
    docs.upsert(ids=ids, texts=texts)
    again = docs.upsert(ids=ids, texts=texts)
    assert (again.embedded, again.unchanged) == (0, 3)
    assert embedder.texts_embedded == 3


def test_fields_not_passed_are_kept(db: Database) -> None:
    own = db.collection("own", model=None, dimensions=2, metric="dot")
    own.upsert(ids=["a", "b"], vectors=[[1, 0], [0, 1]], texts=["first", None], metadata=[{"m": 1}, None])
    own.upsert(ids=["a"], vectors=[[2, 0]])
    a, b = own.get(["a", "b"], include_vectors=True)
    assert (a.text, a.metadata) == ("first", {"m": 1})
    assert np.allclose(a.vector, [2, 0])  # dot collections keep magnitudes
    assert (b.text, b.metadata) == (None, {})
    own.upsert(ids=["a"], vectors=[[2, 0]], texts=[None])
    assert own.get("a")[0].text is None


def test_cosine_collections_store_unit_vectors(db: Database) -> None:
    own = db.collection("own", model=None, dimensions=2)
    own.upsert(ids=["a"], vectors=np.array([[3.0, 4.0]]))
    assert np.allclose(own.get("a", include_vectors=True)[0].vector, [0.6, 0.8])
    assert own.search([30, 40], k=1)[0].score == pytest.approx(1.0, abs=1e-6)


def test_metadata_is_stored_as_json(docs: Collection) -> None:
    docs.upsert(ids=["a"], texts=["x"], metadata=[{"t": (1, 2), "n": np.int64(5), "f": np.float32(0.5),
                                                  "b": np.bool_(True)}])
    meta = docs.get("a")[0].metadata
    assert meta == {"t": [1, 2], "n": 5, "f": 0.5, "b": True}
    assert type(meta["n"]) is int


# --- search, get, delete, scan ------------------------------------------------------------


@pytest.fixture
def filled(docs: Collection) -> Collection:
    docs.upsert(
        ids=["ml", "pizza", "bread", "cars"],
        texts=["machine learning with neural networks", "pizza with mozzarella", "bread from the oven",
               "fast cars and engines"],
        metadata=[{"year": 2021}, {"year": 2019}, {"year": 2023}, {}],
    )
    return docs


def test_search_arguments(filled: Collection) -> None:
    with pytest.raises(InvalidInput, match="k must be"):
        filled.search("x", k=0)
    with pytest.raises(InvalidInput, match="k must be"):
        filled.search("x", k=True)  # type: ignore[arg-type]
    with pytest.raises(InvalidFilter):
        filled.search("x", where={"year": {"$bogus": 1}})
    with pytest.raises(InvalidInput, match="empty"):
        filled.search("   ")
    with pytest.raises(InvalidInput, match="search_many"):
        filled.search(np.ones((2, 16)))
    with pytest.raises(DimensionMismatch):
        filled.search([1.0, 2.0])


def test_search_many_matches_search(filled: Collection) -> None:
    queries = ["neural networks", "oven bread", "engines"]
    many = filled.search_many(queries, k=2, where={"year": {"$exists": True}})
    assert [[h.id for h in hits] for hits in many] == [
        [h.id for h in filled.search(q, k=2, where={"year": {"$exists": True}})] for q in queries
    ]
    assert filled.search_many([], k=2) == []
    by_vector = filled.search(filled.get("cars", include_vectors=True)[0].vector, k=1, include_vectors=True)
    assert by_vector[0].id == "cars" and by_vector[0].vector is not None


def test_hits_are_frozen(filled: Collection) -> None:
    hit = filled.search("pizza", k=1)[0]
    assert isinstance(hit, Hit) and hit.id == "pizza"
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.score = 2.0  # type: ignore[misc]


def test_keyword_search(filled: Collection) -> None:
    hits = filled.keyword_search("pizza oven", k=5)
    assert {h.id for h in hits} == {"pizza", "bread"}
    assert [h.id for h in filled.keyword_search("pizza oven", k=5, where={"year": {"$gt": 2020}})] == ["bread"]


def test_delete_needs_ids_or_where(filled: Collection) -> None:
    with pytest.raises(InvalidInput, match=r"db\.drop"):
        filled.delete()
    assert filled.delete("ml") == 1
    assert filled.delete(ids=["pizza", "bread"], where={"year": 2019}) == 1
    assert sorted(r.id for r in filled) == ["bread", "cars"]


def test_scan(filled: Collection) -> None:
    batches = list(filled.scan(batch_size=3))
    assert [len(b) for b in batches] == [3, 1]
    assert all(r.vector is None for b in batches for r in b)
    assert {r.id for b in filled.scan(where={"year": {"$gte": 2021}}) for r in b} == {"ml", "bread"}
    with pytest.raises(InvalidInput):
        list(filled.scan(batch_size=0))


# --- re-embed -----------------------------------------------------------------------------


class FailingEmbedder(HashEmbedder):
    """Fails on its n-th call: an interrupted re-embed."""

    def __init__(self, dimensions: int, name: str, fail_on: int) -> None:
        super().__init__(dimensions, name)
        self.fail_on = fail_on

    def _embed_texts(self, texts: list[str], kind: Any) -> Any:
        if len(self.calls) + 1 == self.fail_on:
            self.calls.append((kind, []))
            raise RuntimeError("provider went away")
        return super()._embed_texts(texts, kind)


def test_interrupted_reembed_resumes(db: Database, docs: Collection) -> None:
    docs.upsert(ids=[f"d{i}" for i in range(10)], texts=[f"document {i}" for i in range(10)])
    with pytest.raises(RuntimeError):
        docs.reembed(model=FailingEmbedder(8, "new", fail_on=3), batch_size=3)
    # The original is untouched; the shadow holds the first two batches.
    assert docs.spec.embedder == "test:hash@16" and db.collection("docs").dimensions == 16
    assert db.store.count("docs__reembed") == 6
    assert db.collections() == ["docs"]
    resumed = HashEmbedder(8, "new")
    docs.reembed(model=resumed, batch_size=3)
    assert resumed.texts_embedded == 4
    assert docs.spec.embedder == "test:new@8" and len(docs) == 10
    assert db.store.get_collection("docs__reembed") is None
    assert db.collection("docs", model=resumed).search("document 7", k=1)[0].id == "d7"


def test_resumed_reembed_drops_records_deleted_meanwhile(db: Database, docs: Collection) -> None:
    docs.upsert(ids=[f"d{i}" for i in range(6)], texts=[f"document {i}" for i in range(6)])
    with pytest.raises(RuntimeError):
        docs.reembed(model=FailingEmbedder(8, "new", fail_on=2), batch_size=3)
    assert db.store.count("docs__reembed") == 3
    docs.delete(ids=["d0", "d4"])
    docs.upsert(ids=["d1"], texts=["document one, rewritten"])
    resumed = HashEmbedder(8, "new")
    docs.reembed(model=resumed, batch_size=3)
    assert sorted(r.id for r in docs) == ["d1", "d2", "d3", "d5"]
    assert sorted(t for _, texts in resumed.calls for t in texts) == [
        "document 3", "document 5", "document one, rewritten",
    ]


def test_opening_with_the_recorded_spec_does_not_load_the_model(
    db: Database, test_scheme: list[HashEmbedder],
) -> None:
    db.collection("docs", model="test:hash", dimensions=24)
    built = len(test_scheme)
    again = db.collection("docs", model="test:hash")
    assert len(test_scheme) == built
    again.upsert(ids=["a"], texts=["loaded now"])
    assert len(test_scheme) > built and again.model is not None and again.model.id == "test:hash@24"


def test_drop_removes_a_leftover_shadow(db: Database, docs: Collection) -> None:
    docs.upsert(ids=["a", "b"], texts=["one", "two"])
    with pytest.raises(RuntimeError):
        docs.reembed(model=FailingEmbedder(8, "new", fail_on=2), batch_size=1)
    db.drop("docs")
    assert [s.name for s in db.store.list_collections()] == []


# --- export / import ----------------------------------------------------------------------


def test_csv_round_trip(db: Database, tmp_path: Path) -> None:
    own = db.collection("own", model=None, dimensions=3, metric="dot")
    own.upsert(ids=["a", "b"], vectors=[[1, 2, 3], [4, 5, 6]], texts=["a, \"quoted\"\nline", None],
               metadata=[{"k": [1, "x"]}, {}])
    path = tmp_path / "own.csv"
    assert own.export(path) == 2
    other = semkit.connect("memory://").collection("own", model=None, dimensions=3, metric="dot")
    assert other.import_(path) == 2
    a, b = other.get(["a", "b"], include_vectors=True)
    assert (a.text, a.metadata, b.text) == ("a, \"quoted\"\nline", {"k": [1, "x"]}, None)
    assert np.allclose(a.vector, [1, 2, 3]) and np.allclose(b.vector, [4, 5, 6])
    with pytest.raises(InvalidInput, match="records no collection spec"):
        db.import_collection("again", path)


def test_import_checks_dimensions_before_writing(db: Database, docs: Collection, tmp_path: Path) -> None:
    docs.upsert(ids=["a"], texts=["hello"])
    path = tmp_path / "docs.parquet"
    docs.export(path)
    small = db.collection("small", model=None, dimensions=4)
    with pytest.raises(DimensionMismatch):
        small.import_(path)
    assert len(small) == 0


def test_import_refuses_files_without_vectors(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text('{"id": "a", "text": "just text"}\n', encoding="utf-8")
    own = db.collection("own", model=None, dimensions=3)
    with pytest.raises(InvalidInput, match="import never embeds"):
        own.import_(path)


def test_export_format_and_atomic_write(docs: Collection, tmp_path: Path) -> None:
    docs.upsert(ids=["a"], texts=["hello"])
    with pytest.raises(InvalidInput, match="suffix"):
        docs.export(tmp_path / "docs.txt")
    target = tmp_path / "docs.jsonl"
    target.write_text("old contents", encoding="utf-8")
    assert docs.export(target) == 1
    assert target.read_text(encoding="utf-8").startswith('{"semkit"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl"]  # no temp file left


def test_import_collection_creates_from_the_recorded_spec(docs: Collection, tmp_path: Path) -> None:
    docs.upsert(ids=["a", "b"], texts=["hello world", "goodbye moon"], metadata=[{"n": 1}, {"n": 2}])
    path = tmp_path / "docs.parquet"
    docs.export(path)
    with connect("memory://") as other:
        assert other.import_collection(None, path) == 2
        copy = other.collection("docs", model=HashEmbedder(16))
        assert copy.spec.fingerprint() == docs.spec.fingerprint()
        assert copy.search("goodbye", k=1)[0].id == "b"


def test_a_folder_reopens_with_its_recorded_model(tmp_path: Path, test_scheme: list[HashEmbedder]) -> None:
    with semkit.connect(tmp_path / "kb") as db:
        db.collection("docs", model="test:hash").upsert(ids=["a", "b"], texts=["red apples", "blue cars"])
    with semkit.connect(f"file://{tmp_path / 'kb'}") as db:
        assert db.collections() == ["docs"]
        docs = db.collection("docs")
        assert docs.spec.embedder == "test:hash@16"
        assert docs.search("apples", k=1)[0].id == "a"
        with pytest.raises(ModelMismatch):
            db.collection("docs", model="test:other")
