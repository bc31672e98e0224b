"""A LangChain ``VectorStore`` over a semkit ``Collection`` (``pip install 'semkit[langchain]'``).

The collection embeds with its own model, stores and searches; LangChain's ``embedding`` is not
used (a collection's vectors must all come from one model, which the collection records). So
a LangChain app gets semkit's stores (an embedded folder, PostgreSQL + pgvector), its cache and
its filters without a server::

    db = semkit.connect("./kb")
    store = SemkitVectorStore(db.collection("docs", model="local"))
    store.add_texts(["..."], metadatas=[{"year": 2024}])
    store.similarity_search("question", k=4, filter={"year": {"$gte": 2020}})

Scores (``similarity_search_with_score``, relevance scores) are the collection's: for a cosine
collection the cosine, higher is better.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .collection import Collection, Hit
from .database import connect
from .errors import ConfigError, InvalidInput, MissingDependency

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingDependency("langchain-core", "langchain", "semkit's LangChain vector store") from None


class SemkitVectorStore(VectorStore):
    """LangChain's vector store interface, answered by ``collection``."""

    def __init__(self, collection: Collection) -> None:
        if collection.model is None:
            raise ConfigError(f"collection {collection.name!r} has no model to embed texts; open it with a "
                              "model (db.collection(name, model='local')) to use it from LangChain")
        self.collection = collection

    @property
    def embeddings(self) -> Embeddings | None:
        return None  # the collection embeds with its own model

    def add_texts(self, texts: Iterable[str], metadatas: list[dict[str, Any]] | None = None, *,
                  ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        """Upsert ``texts`` (new random ids unless ``ids`` are given); returns the ids."""
        items = list(texts)
        record_ids = [str(i) for i in ids] if ids is not None else [uuid.uuid4().hex for _ in items]
        if len(record_ids) != len(items):
            raise InvalidInput(f"{len(items)} texts but {len(record_ids)} ids; give one id per text")
        self.collection.upsert(ids=record_ids, texts=items, metadata=metadatas)
        return record_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete by ``ids`` and/or ``filter=`` (a semkit filter); never everything by default."""
        where = kwargs.get("filter")
        if ids is None and where is None:
            raise InvalidInput("delete needs ids or filter=; to remove the whole collection use db.drop(name)")
        return self.collection.delete(ids=ids, where=where) > 0

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [Document(page_content=r.text or "", metadata=dict(r.metadata), id=r.id)
                for r in self.collection.get(list(ids))]

    def similarity_search(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                          **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict[str, Any] | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        return [_scored(hit) for hit in self.collection.search(query, k=k, where=filter)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None,
                                    **kwargs: Any) -> list[Document]:
        return [_scored(hit)[0] for hit in self.collection.search([embedding], k=k, where=filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda score: score  # already higher-is-better

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings | None = None,
                   metadatas: list[dict[str, Any]] | None = None, *, ids: list[str] | None = None,
                   db: str | None = None, collection_name: str = "langchain", model: str = "local",
                   **kwargs: Any) -> SemkitVectorStore:
        """A store over the collection ``collection_name`` of ``db`` (default ``SEMKIT_DB`` or
        ``./kb``), created with ``model`` if new, holding ``texts``."""
        if embedding is not None:
            raise ConfigError("a semkit collection embeds with its own model: pass model='local' (or another "
                              "semkit model spec) instead of a LangChain embedding")
        store = cls(connect(db).collection(collection_name, model=model))
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _scored(hit: Hit) -> tuple[Document, float]:
    return Document(page_content=hit.text or "", metadata=dict(hit.metadata), id=hit.id), float(hit.score)
