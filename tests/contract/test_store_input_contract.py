"""Bad input fails alike on every backend, and each backend does what the registry says.

Every backend validates writes with ``store.base.prepare_rows``, so the same bad upsert raises
the same error type with the same message everywhere (``MemoryStore``'s answer is the
reference), and nothing of it is written. Backend-specific rules (PostgreSQL's NUL) are tested
with their backend. The capabilities declared in ``store/registry.py`` are checked against the
backend itself: the dtypes it accepts, whether its keyword search is the shared Python BM25,
whether its search is always exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from semkit.errors import ConfigError, DimensionMismatch, InvalidInput
from semkit.store import filters, registry
from semkit.store.base import MAX_METADATA_DEPTH, CollectionSpec, VectorStore
from semkit.store.keyword import bm25_top_k
from semkit.store.memory import MemoryStore
from semkit.types import STORAGE_DTYPES
from tests.contract.conftest import DIMS, Loaded, unique

REGISTRY_NAMES = {"memory": "memory", "embedded": "embedded", "pgvector": "pgvector", "qdrant": "qdrant-local"}
"""The registry entry each contract backend is opened as (the contract runs Qdrant's local mode)."""


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"k": value}
    return value


def _circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


GOOD = {"ids": ["keep", "new"], "vectors": np.ones((2, 4), np.float32), "texts": ["changed", "new"],
        "metadata": [{"v": 2}, {"v": 3}]}

BAD_UPSERTS: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "wrong-dimensions": ({"vectors": np.ones((2, 5), np.float32)}, DimensionMismatch),
    "nan": ({"vectors": np.array([[1, 2, 3, 4], [np.nan, 0, 0, 0]], np.float32)}, InvalidInput),
    "infinity": ({"vectors": np.array([[1, 2, 3, 4], [np.inf, 0, 0, 0]], np.float32)}, InvalidInput),
    "beyond-float32": ({"vectors": [[1e39, 0, 0, 0], [1, 0, 0, 0]]}, InvalidInput),
    "ragged": ({"vectors": [[1, 2, 3, 4], [1, 2]]}, InvalidInput),
    "more-vectors-than-ids": ({"vectors": np.ones((3, 4), np.float32)}, InvalidInput),
    "fewer-texts-than-ids": ({"texts": ["one"]}, InvalidInput),
    "more-metadata-than-ids": ({"metadata": [{}, {}, {}]}, InvalidInput),
    "no-ids-one-vector": ({"ids": [], "vectors": np.ones((1, 4), np.float32), "texts": None, "metadata": None},
                          InvalidInput),
    "duplicate-ids": ({"ids": ["keep", "keep"]}, InvalidInput),
    "empty-id": ({"ids": ["keep", ""]}, InvalidInput),
    "id-not-a-string": ({"ids": ["keep", 7]}, InvalidInput),
    "id-lone-surrogate": ({"ids": ["keep", "b\ud800"]}, InvalidInput),
    "text-not-a-string": ({"texts": ["changed", 3]}, InvalidInput),
    "text-lone-surrogate": ({"texts": ["changed", "x\udfff"]}, InvalidInput),
    "metadata-not-a-dict": ({"metadata": [{}, ["x"]]}, InvalidInput),
    "metadata-none-row": ({"metadata": [{}, None]}, InvalidInput),
    "metadata-object-value": ({"metadata": [{}, {"v": object()}]}, InvalidInput),
    "metadata-nan": ({"metadata": [{}, {"v": float("nan")}]}, InvalidInput),
    "metadata-nested-infinity": ({"metadata": [{}, {"v": [1, {"w": float("inf")}]}]}, InvalidInput),
    "metadata-int-key": ({"metadata": [{}, {1: "x"}]}, InvalidInput),
    "metadata-int-beyond-double": ({"metadata": [{}, {"v": 10**400}]}, InvalidInput),
    "metadata-too-deep": ({"metadata": [{}, _deep(MAX_METADATA_DEPTH + 1)]}, InvalidInput),
    "metadata-circular": ({"metadata": [{}, _circular()]}, InvalidInput),
    "metadata-lone-surrogate": ({"metadata": [{}, {"v": "\ud800"}]}, InvalidInput),
    "metadata-surrogate-key": ({"metadata": [{}, {"\ud800": 1}]}, InvalidInput),
}


def _fails(store: VectorStore, name: str, call: dict[str, Any]) -> Exception:
    with pytest.raises(Exception) as caught:
        store.upsert(name, call["ids"], call["vectors"], call["texts"], call["metadata"])
    return caught.value


@pytest.mark.parametrize("bad", list(BAD_UPSERTS), ids=list(BAD_UPSERTS))
def test_a_bad_upsert_fails_as_the_reference_and_writes_nothing(store: VectorStore, bad: str) -> None:
    change, error = BAD_UPSERTS[bad]
    call = {**GOOD, **change}
    reference = MemoryStore()
    reference.create_collection(CollectionSpec("ref", 4))
    expected = _fails(reference, "ref", call)
    assert type(expected) is error, f"the reference raised {type(expected).__name__}: {expected}"

    name = unique()
    store.create_collection(CollectionSpec(name, 4))
    store.upsert(name, ["keep"], np.ones((1, 4), np.float32), ["kept"], [{"v": 1}])
    got = _fails(store, name, call)
    assert type(got) is type(expected) and str(got) == str(expected)
    assert store.count(name) == 1
    [kept] = store.get(name, ["keep"])
    assert (kept.text, kept.metadata) == ("kept", {"v": 1})


BAD_METADATA_UPDATES: dict[str, tuple[list[Any], list[Any]]] = {
    "more-ids-than-dicts": (["keep", "other"], [{"v": 2}]),
    "duplicate-ids": (["keep", "keep"], [{"v": 2}, {"v": 3}]),
    "id-not-a-string": (["keep", 7], [{"v": 2}, {"v": 3}]),
    "not-a-dict": (["keep"], ["v"]),
    "not-json": (["keep"], [{"v": {1, 2}}]),
    "nan": (["keep"], [{"v": float("nan")}]),
    "lone-surrogate": (["keep"], [{"v": "\ud800"}]),
}


@pytest.mark.parametrize("bad", list(BAD_METADATA_UPDATES), ids=list(BAD_METADATA_UPDATES))
def test_a_bad_metadata_update_fails_as_the_reference_and_changes_nothing(store: VectorStore, bad: str) -> None:
    ids, metadata = BAD_METADATA_UPDATES[bad]
    reference = MemoryStore()
    reference.create_collection(CollectionSpec("ref", 4))
    with pytest.raises(InvalidInput) as expected:
        reference.update_metadata("ref", ids, metadata)

    name = unique()
    store.create_collection(CollectionSpec(name, 4))
    store.upsert(name, ["keep"], np.ones((1, 4), np.float32), ["kept"], [{"v": 1}])
    with pytest.raises(InvalidInput) as got:
        store.update_metadata(name, ids, metadata)
    assert type(got.value) is type(expected.value) and str(got.value) == str(expected.value)
    assert store.get(name, ["keep"])[0].metadata == {"v": 1}


def test_accepted_metadata_comes_back_as_plain_json(store: VectorStore) -> None:
    name = unique()
    store.create_collection(CollectionSpec(name, 4))
    meta = {"tuple": (1, 2), "numpy": np.float32(0.5), "count": np.int64(3), "flag": np.bool_(True),
            "nested": {"deep": _deep(MAX_METADATA_DEPTH - 2)}}
    store.upsert(name, [np.str_("a")], np.ones((1, 4), np.float32), [np.str_("text")], [meta])
    [record] = store.get(name, ["a"])
    assert record.metadata == {"tuple": [1, 2], "numpy": 0.5, "count": 3, "flag": True,
                               "nested": {"deep": _deep(MAX_METADATA_DEPTH - 2)}}
    assert type(record.id) is str and type(record.text) is str


# --- the registry's capabilities, checked against each backend ---------------------------------


@pytest.mark.parametrize("dtype", STORAGE_DTYPES)
def test_the_declared_dtypes_are_the_accepted_ones(store: VectorStore, backend: str, dtype: str) -> None:
    declared = registry.capabilities(REGISTRY_NAMES[backend]).dtypes
    spec = CollectionSpec(unique(), 4, dtype=dtype)  # type: ignore[arg-type]
    if dtype in declared:
        store.create_collection(spec)
        assert store.get_collection(spec.name).dtype == dtype  # type: ignore[union-attr]
    else:
        with pytest.raises(ConfigError):
            store.create_collection(spec)
        assert store.get_collection(spec.name) is None


def test_an_unknown_dtype_is_invalid_input(store: VectorStore) -> None:
    with pytest.raises(InvalidInput, match="unknown dtype 'float64'"):
        store.create_collection(CollectionSpec(unique(), 4, dtype="float64"))  # type: ignore[arg-type]


def test_python_keyword_search_is_the_shared_bm25(store: VectorStore, backend: str) -> None:
    if registry.capabilities(REGISTRY_NAMES[backend]).keyword_search != "python":
        pytest.skip("this backend searches keywords with its own engine")
    name = unique()
    store.create_collection(CollectionSpec(name, 2))
    texts = ["the quick brown fox", "quick quick fox", "a lazy dog", None, "Fox and the hound, quick"]
    ids = [f"t{i}" for i in range(len(texts))]
    store.upsert(name, ids, np.ones((len(ids), 2), np.float32), texts, [{"n": i} for i in range(len(ids))])
    where = filters.parse({"n": {"$gt": 0}})
    got = store.keyword_query(name, "quick fox", 10, where=where)
    want = bm25_top_k("quick fox", [(i, t) for n, (i, t) in enumerate(zip(ids, texts, strict=True))
                                    if t is not None and n > 0], 10)
    assert got.ids == want.ids
    assert np.allclose(got.scores, want.scores)


def test_a_backend_without_an_ann_index_is_always_exact(loaded: Loaded, backend: str) -> None:
    if registry.capabilities(REGISTRY_NAMES[backend]).ann_index is not None:
        pytest.skip("this backend searches big collections approximately")
    queries = np.random.default_rng(5).normal(size=(5, DIMS)).astype(np.float32)
    for metric, name in loaded.names.items():
        approximate = loaded.store.query(name, queries, 10)
        exact = loaded.store.query(name, queries, 10, exact=True)
        assert [a.ids for a in approximate] == [e.ids for e in exact], metric
