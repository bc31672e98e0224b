"""``semkit.langchain_store.SemkitVectorStore``: LangChain's vector store interface over a real
collection (an embedded folder and a real PostgreSQL + pgvector), with the real model and real
texts (Banking77). Its answers must be the collection's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from tests.support.shared_data import banking_sample

pytest.importorskip("langchain_core")
from semkit.langchain_store import SemkitVectorStore


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
def collection(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[semkit.Collection]:
    if request.param == "embedded":
        db = semkit.connect(tmp_path / "kb")
    else:
        db = semkit.connect(request.getfixturevalue("postgres_dsn"))
    name = f"lc_{uuid.uuid4().hex[:8]}"
    try:
        yield db.collection(name, model="local")
    finally:
        db.drop(name)
        db.close()


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str], list[dict[str, Any]]]:
    return banking_sample(150, "b")


def test_the_store_answers_as_its_collection(collection: semkit.Collection,
                                             corpus: tuple[list[str], list[str], list[dict[str, Any]]]) -> None:
    ids, texts, metadata = corpus
    store = SemkitVectorStore(collection)
    assert store.add_texts(texts, metadata, ids=ids) == ids
    assert collection.count() == len(ids)
    queries = ["how do I activate my card", "my transfer was declined", "exchange rate fees"]
    for query in queries:
        scored = store.similarity_search_with_score(query, k=5)
        hits = collection.search(query, k=5)
        assert [(d.id, d.page_content, d.metadata) for d, _ in scored] == [(h.id, h.text, h.metadata) for h in hits]
        assert [s for _, s in scored] == pytest.approx([h.score for h in hits])
        # ...which is the brute-force cosine ranking of the same texts.
        expected = np.argsort(-(semkit.embed(texts) @ semkit.embed([query], kind="query")[0]), kind="stable")[:5]
        assert [d.id for d, _ in scored] == [ids[i] for i in expected]
        by_vector = store.similarity_search_by_vector(semkit.embed([query], kind="query")[0].tolist(), k=5)
        assert [d.id for d in by_vector] == [d.id for d, _ in scored]
    category = metadata[0]["category"]
    filtered = store.similarity_search(queries[0], k=5, filter={"category": category})
    assert filtered and all(d.metadata["category"] == category for d in filtered)
    assert [d.id for d in filtered] == [h.id for h in collection.search(queries[0], k=5, where={"category": category})]
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 3}).invoke(queries[1])] == [
        h.id for h in collection.search(queries[1], k=3)]


def test_get_and_delete_go_to_the_collection(collection: semkit.Collection,
                                             corpus: tuple[list[str], list[str], list[dict[str, Any]]]) -> None:
    ids, texts, metadata = corpus
    store = SemkitVectorStore(collection)
    store.add_texts(texts[:10], metadata[:10], ids=ids[:10])
    got = store.get_by_ids(ids[:2])
    assert [(d.id, d.page_content) for d in got] == list(zip(ids[:2], texts[:2], strict=True))
    assert store.delete(ids[:2]) is True
    assert collection.count() == 8 and store.get_by_ids(ids[:2]) == []
    with pytest.raises(semkit.errors.InvalidInput, match="ids or filter"):
        store.delete()
    new = store.add_texts(["a text without an id"])
    assert len(new) == 1 and collection.get(new)[0].text == "a text without an id"


def test_from_texts_builds_a_collection_and_refuses_a_foreign_embedding(tmp_path: Path) -> None:
    store = SemkitVectorStore.from_texts(["cats purr", "stocks fell"], db=str(tmp_path / "kb"),
                                         collection_name="notes", ids=["c", "s"])
    assert store.similarity_search("kitten", k=1)[0].id == "c"
    with semkit.connect(tmp_path / "kb") as db:
        assert db.collection("notes").count() == 2
    from langchain_core.embeddings import FakeEmbeddings

    with pytest.raises(semkit.errors.ConfigError, match="own model"):
        SemkitVectorStore.from_texts(["x"], FakeEmbeddings(size=384), db=str(tmp_path / "kb"))
