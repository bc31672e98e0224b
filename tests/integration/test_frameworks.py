"""The framework recipes of docs/frameworks.md, as written there, against a real ``semkit serve``:
LangChain's ``OpenAIEmbeddings`` (both settings of ``check_embedding_ctx_length``) and a LangChain
vector store; LlamaIndex's ``OpenAIEmbedding`` (through a ``--served-model-name`` alias) and
``OpenAILikeEmbedding`` with a ``VectorStoreIndex`` retriever. Offline: tiktoken's cl100k_base
comes from ``semkit.tiktoken_cache``. Vectors must equal the library's, rankings a brute-force
ranking of the same real texts (Banking77)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.tiktoken_cache import prepare_cache
from tests.support.server import RunningServer, serve
from tests.support.shared_data import banking_sample

pytest.importorskip("openai")
pytestmark = pytest.mark.slow

TEXTS = ["The cat sat on the mat", "A feline rested on a rug", "The stock market fell sharply today"]
LONG = "word " * 600  # 602 MiniLM tokens, over its context of 256
K = 3


@pytest.fixture(scope="module")
def tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The recipe's ``TIKTOKEN_CACHE_DIR`` for the whole module (tiktoken keeps an encoding once loaded)."""
    folder = prepare_cache(tmp_path_factory.mktemp("tiktoken"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("frameworks") / "kb"
    with serve(str(db), served_model_names={"text-embedding-3-small": "local"}) as running:
        yield running


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return server.state.keys.create(name="frameworks")[0]


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    """Distinct real texts (documents) and other real texts (queries)."""
    _, texts, _ = banking_sample(120, "b")
    distinct = list(dict.fromkeys(texts))
    return distinct[:100], distinct[100:110]


def brute_force(documents: list[str], query: str, k: int) -> list[str]:
    """The top ``k`` documents by cosine with the library's own vectors."""
    scores = semkit.embed(documents) @ semkit.embed([query], kind="query")[0]
    return [documents[i] for i in np.argsort(-scores, kind="stable")[:k]]


# --- LangChain ---------------------------------------------------------------------------------

@pytest.mark.parametrize("check_ctx", [False, True], ids=["strings", "token-arrays"])
def test_langchain_openai_embeddings_equal_the_library(server: RunningServer, key: str, tiktoken_cache: Path,
                                                       check_ctx: bool) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(model="local", base_url=f"{server.url}/v1", api_key=key,
                                  check_embedding_ctx_length=check_ctx)
    np.testing.assert_allclose(embeddings.embed_documents(TEXTS), semkit.embed(TEXTS), atol=1e-5)
    np.testing.assert_allclose(embeddings.embed_query(TEXTS[0]), semkit.embed(TEXTS[:1])[0], atol=1e-5)


def test_langchain_long_texts_are_refused_unless_the_client_asks_to_cut(server: RunningServer, key: str,
                                                                       tiktoken_cache: Path) -> None:
    import openai
    from langchain_openai import OpenAIEmbeddings

    strict = OpenAIEmbeddings(model="local", base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="over the model's context"):
        strict.embed_documents([LONG])
    cutting = OpenAIEmbeddings(model="local", base_url=f"{server.url}/v1", api_key=key,
                               default_headers={"X-Semkit-Truncate": "true"})
    np.testing.assert_allclose(cutting.embed_documents([LONG, TEXTS[0]]), semkit.embed([LONG, TEXTS[0]]), atol=1e-5)


def test_langchain_vector_store_retrieves_what_brute_force_ranks_first(
        server: RunningServer, key: str, corpus: tuple[list[str], list[str]]) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_openai import OpenAIEmbeddings

    documents, queries = corpus
    store = InMemoryVectorStore(OpenAIEmbeddings(model="local", base_url=f"{server.url}/v1", api_key=key,
                                                 check_embedding_ctx_length=False))
    store.add_texts(documents)
    for query in queries:
        assert [d.page_content for d in store.similarity_search(query, k=K)] == brute_force(documents, query, K)


# --- LlamaIndex --------------------------------------------------------------------------------

def _llama_models(server: RunningServer, key: str) -> dict[str, Any]:
    from llama_index.embeddings.openai import OpenAIEmbedding
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    return {
        # OpenAIEmbedding only accepts OpenAI's model names: the server answers to one as an alias.
        "OpenAIEmbedding": OpenAIEmbedding(model="text-embedding-3-small", api_base=f"{server.url}/v1", api_key=key),
        "OpenAILikeEmbedding": OpenAILikeEmbedding(model_name="local", api_base=f"{server.url}/v1", api_key=key),
    }


@pytest.mark.parametrize("which", ["OpenAIEmbedding", "OpenAILikeEmbedding"])
def test_llamaindex_embeddings_equal_the_library(server: RunningServer, key: str, which: str) -> None:
    model = _llama_models(server, key)[which]
    np.testing.assert_allclose(model.get_text_embedding_batch(TEXTS), semkit.embed(TEXTS), atol=1e-5)
    np.testing.assert_allclose(model.get_query_embedding(TEXTS[0]), semkit.embed(TEXTS[:1])[0], atol=1e-5)


@pytest.mark.parametrize("which", ["OpenAIEmbedding", "OpenAILikeEmbedding"])
def test_llamaindex_vector_store_index_retrieves_what_brute_force_ranks_first(
        server: RunningServer, key: str, tiktoken_cache: Path, corpus: tuple[list[str], list[str]],
        which: str) -> None:
    from llama_index.core import Document, VectorStoreIndex

    documents, queries = corpus
    # from_documents splits with LlamaIndex's default splitter, which counts cl100k tokens.
    index = VectorStoreIndex.from_documents([Document(text=t) for t in documents],
                                            embed_model=_llama_models(server, key)[which])
    retriever = index.as_retriever(similarity_top_k=K)
    for query in queries:
        assert [hit.node.get_content() for hit in retriever.retrieve(query)] == brute_force(documents, query, K)
