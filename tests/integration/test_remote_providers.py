"""openai:, cohere: and http: against a real HTTP server on 127.0.0.1 that misbehaves on cue.

No HTTP mocking: every request crosses a socket to ``tests.support.fake_provider``, which
answers in each provider's wire format and records what it received.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import socket
import time
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from semkit.models.cohere import CohereEmbedder
from semkit.models.openai import OpenAICompatibleEmbedder, OpenAIEmbedder
from semkit.models.tokens import counter_for, estimate_tokens
from tests.support.fake_provider import (
    Drop,
    Fail,
    FakeProvider,
    Malformed,
    Slow,
    Truncated,
    fake_vector,
)

KEY = "sk-test-0123456789abcdef-SECRET"
FAST = {"retry_base_delay": 0.01}  # backoff of milliseconds keeps the retry tests quick


def openai(fake: FakeProvider, name: str = "text-embedding-3-small", **options: Any) -> OpenAIEmbedder:
    options = {"api_key": KEY, "base_url": fake.openai_url, **FAST, **options}
    return OpenAIEmbedder(name, **options)


def cohere(fake: FakeProvider, name: str = "embed-v4.0", **options: Any) -> CohereEmbedder:
    options = {"api_key": KEY, "base_url": fake.url, **FAST, **options}
    return CohereEmbedder(name, **options)


def expected(texts: list[str], dims: int) -> np.ndarray:
    return np.stack([fake_vector(t, dims) for t in texts])


def texts_of(n: int, prefix: str = "text") -> list[str]:
    return [f"{prefix} number {i}: " + "word " * (i % 13) for i in range(n)]


# --- order, batching, concurrency ----------------------------------------------------------


def test_order_is_kept_with_concurrent_out_of_order_replies(fake_provider: FakeProvider) -> None:
    fake_provider.latency = (0.0, 0.04)  # later batches often finish first
    texts = texts_of(300)
    m = openai(fake_provider, batch_size=7, concurrency=4)
    vectors = m.embed(texts)
    np.testing.assert_allclose(vectors, expected(texts, 1536), atol=1e-6)
    assert len(fake_provider.requests) == math.ceil(300 / 7)
    assert 1 < fake_provider.max_in_flight <= 4
    # The server saw every text exactly once.
    sent = sorted(t for r in fake_provider.requests for t in r.inputs)
    assert sent == sorted(texts)


def test_batches_respect_item_and_token_limits(fake_provider: FakeProvider) -> None:
    cl100k = counter_for("cl100k_base")
    texts = [("lorem ipsum dolor " * (1 + i % 9)).strip() + f" #{i}" for i in range(120)]
    m = openai(fake_provider, batch_size=16, max_batch_tokens=150, concurrency=1)
    vectors = m.embed(texts)
    np.testing.assert_allclose(vectors, expected(texts, 1536), atol=1e-6)
    sizes = [len(r.inputs) for r in fake_provider.requests]
    token_sums = [sum(cl100k.count(r.inputs)) for r in fake_provider.requests]
    assert max(sizes) <= 16
    assert max(token_sums) <= 150
    assert len(sizes) >= math.ceil(sum(cl100k.count(texts)) / 150)
    # Sequential requests carry the texts in input order.
    assert [t for r in fake_provider.requests for t in r.inputs] == texts


def test_progress_reports_every_item(fake_provider: FakeProvider) -> None:
    calls: list[tuple[int, int]] = []
    m = openai(fake_provider, batch_size=10, concurrency=3, progress=lambda d, t: calls.append((d, t)))
    m.embed(texts_of(95))
    assert calls[-1] == (95, 95)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert {t for _, t in calls} == {95}
    assert len(calls) == 10


def test_works_when_called_inside_a_running_event_loop(fake_provider: FakeProvider) -> None:
    m = openai(fake_provider, batch_size=5)
    texts = texts_of(23)

    async def handler() -> np.ndarray:
        return m.embed(texts)  # e.g. a FastAPI endpoint calling the library directly

    np.testing.assert_allclose(asyncio.run(handler()), expected(texts, 1536), atol=1e-6)


# --- retries -----------------------------------------------------------------------------------


def test_429_waits_at_least_retry_after_seconds(fake_provider: FakeProvider) -> None:
    fake_provider.script(Fail(429, "slow down", headers={"Retry-After": "1"}))
    m = openai(fake_provider)
    vectors = m.embed(["hello"])
    np.testing.assert_allclose(vectors, expected(["hello"], 1536), atol=1e-6)
    first, second = fake_provider.requests
    assert second.at - first.at >= 1.0
    assert m.meter.retries == 1 and m.meter.requests == 1


def test_429_with_an_http_date(fake_provider: FakeProvider) -> None:
    # Dates have whole-second precision, and the date is written before the request is sent:
    # now+3 s, cut to the second, is still more than 1 s after a request sent within 1 s
    # (now+2 s was not: written at x.95 and sent 0.1 s later, it left 0.95 s; seen in CI).
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    fake_provider.script(Fail(429, headers={"Retry-After": when}))
    openai(fake_provider).embed(["hello"])
    first, second = fake_provider.requests
    assert second.at - first.at >= 1.0


def test_a_429_pauses_the_other_workers_too(fake_provider: FakeProvider) -> None:
    fake_provider.script(Fail(429, headers={"Retry-After": "1"}))
    m = openai(fake_provider, batch_size=1, concurrency=2)
    m.embed(["a", "b", "c", "d"])
    told = fake_provider.requests[0].at
    later = [r.at for r in fake_provider.requests[1:]]
    # Everything sent after the 429 was answered waits. Allowed early: the request already in
    # flight, and one the other worker may send in the instant before the 429 reply is read.
    # Without a shared pause, three of the four would go at once and only the retry would wait.
    assert sum(at - told >= 1.0 for at in later) >= len(later) - 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_then_success(fake_provider: FakeProvider, status: int) -> None:
    fake_provider.script(Fail(status, "overloaded"), Fail(status, "overloaded"))
    m = openai(fake_provider)
    vectors = m.embed(["one", "two"])
    np.testing.assert_allclose(vectors, expected(["one", "two"], 1536), atol=1e-6)
    assert len(fake_provider.requests) == 3
    assert m.meter.retries == 2 and m.meter.requests == 1


@pytest.mark.parametrize("failure", [Slow(2.0), Malformed(), Truncated(), Drop()],
                         ids=["timeout", "malformed-json", "truncated-body", "dropped"])
def test_transient_failures_then_success(fake_provider: FakeProvider, failure: Any) -> None:
    fake_provider.script(failure)
    m = openai(fake_provider, timeout=0.5)
    vectors = m.embed(["alpha", "beta"])
    np.testing.assert_allclose(vectors, expected(["alpha", "beta"], 1536), atol=1e-6)
    assert len(fake_provider.requests) == 2
    assert m.meter.retries == 1


def test_gives_up_after_max_retries_with_rate_limited(fake_provider: FakeProvider) -> None:
    fake_provider.script(*[Fail(429, "quota", headers={"Retry-After": "0"})] * 5)
    m = openai(fake_provider, max_retries=2)
    with pytest.raises(RateLimited, match="gave up after 2 retries") as info:
        m.embed(["x"])
    assert info.value.retryable and info.value.retry_after == 0
    assert len(fake_provider.requests) == 3


def test_gives_up_after_max_retries_with_provider_unavailable(fake_provider: FakeProvider) -> None:
    fake_provider.script(*[Fail(503, "maintenance")] * 5)
    m = openai(fake_provider, max_retries=3)
    with pytest.raises(ProviderUnavailable, match="maintenance") as info:
        m.embed(["x"])
    assert info.value.status == 503
    assert len(fake_provider.requests) == 4
    assert m.meter.retries == 3 and m.meter.requests == 0


def test_retry_after_beyond_the_cap_fails_at_once(fake_provider: FakeProvider) -> None:
    fake_provider.script(Fail(429, "daily quota", headers={"Retry-After": "3600"}))
    m = openai(fake_provider, max_retry_wait=30)
    with pytest.raises(RateLimited, match="3600 s") as info:
        m.embed(["x"])
    assert info.value.retry_after == 3600
    assert len(fake_provider.requests) == 1


def test_unreachable_server_is_provider_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    m = OpenAIEmbedder("text-embedding-3-small", api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1",
                       max_retries=1, **FAST)
    with pytest.raises(ProviderUnavailable, match="reachable"):
        m.embed(["x"])


# --- errors that must not be retried -----------------------------------------------------------


def test_401_is_auth_error_at_once_and_never_shows_the_key(fake_provider: FakeProvider) -> None:
    fake_provider.api_key = "the-right-key"
    m = openai(fake_provider)
    with pytest.raises(AuthError) as info:
        m.embed(["x"])
    assert len(fake_provider.requests) == 1
    message = str(info.value)
    assert "Incorrect API key provided" in message  # the server's words reach the user...
    assert KEY not in message  # ...without the key it echoed back
    assert "OPENAI_API_KEY" in message
    assert KEY not in repr(m) and KEY not in str(vars(m))
    assert fake_provider.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_retry_logs_never_show_the_key(fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture) -> None:
    fake_provider.script(Fail(429, f"rate limit reached for key {KEY}", headers={"Retry-After": "0"}),
                         Fail(503, f"overloaded, key={KEY}"))
    with caplog.at_level("DEBUG", logger="semkit"):
        openai(fake_provider).embed(["x"])
    assert "rate limit reached for key ***" in caplog.text
    assert "overloaded" in caplog.text
    assert KEY not in caplog.text


def test_400_is_bad_request_with_the_server_message(fake_provider: FakeProvider) -> None:
    fake_provider.script(Fail(400, "Invalid 'input[0]': string too long."))
    m = openai(fake_provider)
    with pytest.raises(BadRequest, match=r"Invalid 'input\[0\]': string too long") as info:
        m.embed(["x"])
    assert info.value.status == 400 and not info.value.retryable
    assert len(fake_provider.requests) == 1


@pytest.mark.parametrize("status", [404, 422])
def test_other_client_errors_are_bad_requests(fake_provider: FakeProvider, status: int) -> None:
    fake_provider.script(Fail(status, "model `nope` does not exist"))
    with pytest.raises(BadRequest, match="does not exist"):
        openai(fake_provider).embed(["x"])
    assert len(fake_provider.requests) == 1


def test_one_failing_batch_fails_the_call_without_hanging(fake_provider: FakeProvider) -> None:
    fake_provider.latency = (0.0, 0.02)
    fake_provider.script(Fail(400, "bad batch"))
    m = openai(fake_provider, batch_size=5, concurrency=3)
    with pytest.raises(BadRequest, match="bad batch"):
        m.embed(texts_of(200))
    # Once a batch failed for good, the remaining ones were not all sent.
    assert len(fake_provider.requests) < 40


def test_missing_key_names_the_environment_variable(
    fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("CO_API_KEY", raising=False)
    m = OpenAIEmbedder("text-embedding-3-small", base_url=fake_provider.openai_url)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        m.embed(["x"])
    c = CohereEmbedder("embed-v4.0", base_url=fake_provider.url)
    with pytest.raises(ConfigError, match="COHERE_API_KEY"):
        c.embed(["x"])
    assert fake_provider.requests == []


def test_key_from_the_environment(fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.openai_url)
    m = OpenAIEmbedder("text-embedding-3-small", organization="org-1")
    m.embed(["x"])
    headers = fake_provider.requests[0].headers
    assert headers["authorization"] == "Bearer sk-from-env"
    assert headers["openai-organization"] == "org-1"


# --- adaptive batch size -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 413])
def test_a_server_batch_limit_halves_batches_and_is_remembered(
    fake_provider: FakeProvider, status: int
) -> None:
    fake_provider.max_inputs = 8
    fake_provider.max_inputs_status = status
    texts = texts_of(64)
    m = openai(fake_provider, batch_size=32, concurrency=1)
    np.testing.assert_allclose(m.embed(texts), expected(texts, 1536), atol=1e-6)
    assert [len(r.inputs) for r in fake_provider.requests[:3]] == [32, 16, 8]
    assert m.item_limit == 8
    before = len(fake_provider.requests)
    more = texts_of(40, "more")
    np.testing.assert_allclose(m.embed(more), expected(more, 1536), atol=1e-6)
    assert [len(r.inputs) for r in fake_provider.requests[before:]] == [8] * 5


def test_a_limit_even_one_text_breaks_is_a_bad_request(fake_provider: FakeProvider) -> None:
    fake_provider.max_inputs = 0
    with pytest.raises(BadRequest, match="too many inputs"):
        openai(fake_provider, batch_size=4).embed(texts_of(4))
    assert [len(r.inputs) for r in fake_provider.requests] == [4, 2, 1]


def test_one_over_long_text_does_not_shrink_later_batches(fake_provider: FakeProvider) -> None:
    fake_provider.too_long_marker = "HUGE"
    texts = texts_of(16)
    texts[5] = "HUGE " + texts[5]
    m = OpenAICompatibleEmbedder("m", base_url=fake_provider.openai_url, batch_size=16, **FAST)
    with pytest.raises(BadRequest, match=r"single text.*'HUGE text.*maximum context length"):
        m.embed(texts)
    # Halving isolates the culprit (texts 0-3 and 4 go through on the way)...
    assert [len(r.inputs) for r in fake_provider.requests] == [16, 8, 4, 4, 2, 1, 1]
    assert fake_provider.requests[-1].inputs == [texts[5]]
    # ...and the embedder keeps its batch size.
    assert m.item_limit == 16


# --- OpenAI wire details -----------------------------------------------------------------------


def test_openai_requests_base64_and_decodes_it(fake_provider: FakeProvider) -> None:
    texts = ["base64 please", "and another"]
    np.testing.assert_array_equal(openai(fake_provider).embed(texts), expected(texts, 1536))
    assert fake_provider.requests[0].body["encoding_format"] == "base64"
    np.testing.assert_allclose(openai(fake_provider, encoding_format="float").embed(texts),
                               expected(texts, 1536), atol=1e-7)
    assert fake_provider.requests[1].body["encoding_format"] == "float"


def test_openai_sends_dimensions_only_when_asked(fake_provider: FakeProvider) -> None:
    m = openai(fake_provider, dimensions=256)
    np.testing.assert_allclose(m.embed(["x"]), expected(["x"], 256), atol=1e-6)
    assert fake_provider.requests[0].body["dimensions"] == 256
    assert fake_provider.requests[0].body["model"] == "text-embedding-3-small"
    assert m.id == "openai:text-embedding-3-small@256"
    openai(fake_provider).embed(["x"])
    assert "dimensions" not in fake_provider.requests[1].body
    ada = openai(fake_provider, "text-embedding-ada-002", dimensions=1536)
    ada.embed(["x"])
    assert "dimensions" not in fake_provider.requests[2].body  # ada rejects the parameter


def test_openai_cuts_full_size_vectors_from_a_proxy_that_ignores_dimensions(
    fake_provider: FakeProvider,
) -> None:
    fake_provider.force_dimensions = 1536
    vectors = openai(fake_provider, dimensions=512).embed(["x", "y"])
    np.testing.assert_allclose(vectors, expected(["x", "y"], 512), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_openai_truncates_over_long_texts_client_side(fake_provider: FakeProvider) -> None:
    cl100k = counter_for("cl100k_base")
    long_text = "tokens " * 9000
    result = openai(fake_provider).embed_result(["short", long_text])
    assert result.truncated == 1
    sent_short, sent_long = fake_provider.requests[0].inputs
    assert sent_short == "short"
    assert cl100k.count([sent_long]) == [8191] and long_text.startswith(sent_long)


def test_cost_meter_uses_the_reported_usage(fake_provider: FakeProvider) -> None:
    cl100k = counter_for("cl100k_base")
    texts = texts_of(50)
    m = openai(fake_provider, "text-embedding-3-large", batch_size=20)
    result = m.embed_result(texts)
    true_tokens = sum(cl100k.count(texts))
    assert result.tokens == true_tokens
    assert m.meter.tokens == true_tokens
    assert (m.meter.requests, m.meter.items, m.meter.retries) == (3, 50, 0)
    assert m.meter.dollars == pytest.approx(true_tokens * 0.13 / 1_000_000)
    m.embed(["again"])
    assert m.meter.tokens == true_tokens + 1 and m.meter.requests == 4


def test_through_semkit_model(fake_provider: FakeProvider) -> None:
    m = semkit.model("openai:text-embedding-3-small", cache=False, dimensions=512,
                     api_key=KEY, base_url=fake_provider.openai_url)
    np.testing.assert_allclose(m.embed(["via the registry"], kind="query"),
                               expected(["via the registry"], 512), atol=1e-6)


# --- Cohere ------------------------------------------------------------------------------------


def test_cohere_wire_format(fake_provider: FakeProvider) -> None:
    m = cohere(fake_provider, dimensions=512)
    docs = m.embed(["doc one", "doc two"], kind="document")
    query = m.embed(["a query"], kind="query")
    np.testing.assert_allclose(docs, expected(["doc one", "doc two"], 512), atol=1e-6)
    np.testing.assert_allclose(query, expected(["a query"], 512), atol=1e-6)
    first, second = fake_provider.requests
    assert first.path == "/v2/embed"
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.body == {"model": "embed-v4.0", "texts": ["doc one", "doc two"],
                          "input_type": "search_document", "embedding_types": ["float"],
                          "truncate": "END", "output_dimension": 512}
    assert second.body["input_type"] == "search_query"
    assert m.id == "cohere:embed-v4.0@512"


def test_cohere_v3_sends_no_output_dimension_and_counts_overflows(fake_provider: FakeProvider) -> None:
    m = cohere(fake_provider, "embed-english-v3.0")
    result = m.embed_result(["fits", "overflow " * 2000])  # far past 512 tokens
    assert "output_dimension" not in fake_provider.requests[0].body
    assert result.truncated == 1
    assert fake_provider.requests[0].inputs[1] == "overflow " * 2000  # Cohere truncates itself
    assert result.vectors.shape == (2, 1024)


def test_cohere_batches_at_most_96_and_meters(fake_provider: FakeProvider) -> None:
    texts = texts_of(200)
    m = cohere(fake_provider, "embed-english-light-v3.0")
    np.testing.assert_allclose(m.embed(texts), expected(texts, 384), atol=1e-6)
    assert sorted(len(r.inputs) for r in fake_provider.requests) == [8, 96, 96]
    reported = sum(fake_provider.count_tokens(t) for t in texts)
    assert m.meter.tokens == reported
    assert m.meter.dollars == pytest.approx(reported * 0.10 / 1_000_000)


def test_cohere_errors_and_retries(fake_provider: FakeProvider) -> None:
    fake_provider.script(Fail(429, headers={"Retry-After": "0"}), Fail(500))
    m = cohere(fake_provider)
    m.embed(["x"])
    assert len(fake_provider.requests) == 3
    fake_provider.script(Fail(400, "invalid request: texts must not be empty"))
    with pytest.raises(BadRequest, match="texts must not be empty"):
        m.embed(["y"])
    fake_provider.api_key = "other"
    with pytest.raises(AuthError, match="COHERE_API_KEY") as info:
        m.embed(["z"])
    assert KEY not in str(info.value)


def test_cohere_adapts_to_a_smaller_limit(fake_provider: FakeProvider) -> None:
    fake_provider.max_inputs = 30  # Cohere words it "total number of texts must be at most"
    texts = texts_of(96)
    m = cohere(fake_provider, concurrency=1)
    np.testing.assert_allclose(m.embed(texts), expected(texts, 1536), atol=1e-6)
    assert m.item_limit <= 30


# --- http: (any OpenAI-compatible server) ------------------------------------------------------


def http(fake: FakeProvider, name: str = "my-model", **options: Any) -> OpenAICompatibleEmbedder:
    return OpenAICompatibleEmbedder(name, base_url=fake.openai_url, **FAST, **options)


def test_http_learns_dimensions_from_a_probe(fake_provider: FakeProvider) -> None:
    m = http(fake_provider)
    assert fake_provider.requests == []  # building it sends nothing
    assert "@?" in repr(m)
    assert m.dimensions == 384  # the fake's size for an unknown model
    assert len(fake_provider.requests) == 1
    assert m.id == "http:my-model@384"
    texts = ["a", "b"]
    np.testing.assert_allclose(m.embed(texts), expected(texts, 384), atol=1e-6)
    assert len(fake_provider.requests) == 2


def test_http_learns_dimensions_from_the_first_embed(fake_provider: FakeProvider) -> None:
    m = http(fake_provider)
    vectors = m.embed(["first"])
    assert vectors.shape == (1, 384) and m.dimensions == 384
    assert len(fake_provider.requests) == 1


def test_http_prefixes_no_key_and_float_by_default(fake_provider: FakeProvider) -> None:
    m = http(fake_provider, dimensions=384, query_prefix="query: ", document_prefix="passage: ")
    q = m.embed(["what is x"], kind="query")
    d = m.embed(["x is y"], kind="document")
    np.testing.assert_allclose(q, expected(["query: what is x"], 384), atol=1e-6)
    np.testing.assert_allclose(d, expected(["passage: x is y"], 384), atol=1e-6)
    first, second = fake_provider.requests
    assert first.inputs == ["query: what is x"] and second.inputs == ["passage: x is y"]
    assert "authorization" not in first.headers
    assert first.body["encoding_format"] == "float" and "dimensions" not in first.body
    assert first.body["model"] == "my-model"


def test_http_dimension_mismatch_says_what_to_do(fake_provider: FakeProvider) -> None:
    m = http(fake_provider, dimensions=768)
    with pytest.raises(ProviderError, match="pass dimensions=384"):
        m.embed(["x"])
    assert len(fake_provider.requests) == 1


def test_http_request_dimensions_and_key(fake_provider: FakeProvider) -> None:
    m = http(fake_provider, dimensions=64, request_dimensions=True, api_key="local-key")
    np.testing.assert_allclose(m.embed(["x"]), expected(["x"], 64), atol=1e-6)
    assert fake_provider.requests[0].body["dimensions"] == 64
    assert fake_provider.requests[0].headers["authorization"] == "Bearer local-key"


def test_http_meters_usage_or_estimates_it(fake_provider: FakeProvider) -> None:
    m = http(fake_provider, dimensions=384, price_per_million=1.0)
    result = m.embed_result(["one two three"])
    assert result.tokens == fake_provider.count_tokens("one two three")  # the server's count
    assert m.meter.dollars == pytest.approx(result.tokens / 1_000_000)
    fake_provider.report_usage = False
    result = m.embed_result(["one two three", "four"])
    assert result.tokens == estimate_tokens("one two three") + estimate_tokens("four")
    assert m.meter.requests == 2


def test_http_via_semkit_model(fake_provider: FakeProvider) -> None:
    m = semkit.model("http:served-model", cache=False, base_url=fake_provider.openai_url)
    assert m.embed(["x"]).shape == (1, 384)
