"""The remote layer's pure parts: batch planning, Retry-After, error bodies, decoding, options."""

from __future__ import annotations

import base64
import email.utils
import itertools
import random
import subprocess
import sys

import numpy as np
import pytest

from semkit.errors import ConfigError, InvalidInput, ModelNotAvailable
from semkit.models.remote import (
    MalformedReply,
    RemoteOptions,
    RetryPolicy,
    Secret,
    decode_embedding,
    error_message,
    parse_retry_after,
    plan_batches,
)


def test_plan_respects_item_and_token_limits() -> None:
    counts = [10, 20, 30, 40, 50, 5, 5, 5, 5, 5]
    spans = plan_batches(counts, max_items=3, max_tokens=60)
    assert spans[0][0] == 0 and spans[-1][1] == len(counts)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    for start, end in spans:
        assert end - start <= 3
        assert sum(counts[start:end]) <= 60
    assert spans == [(0, 3), (3, 4), (4, 7), (7, 10)]


def test_plan_gives_an_oversized_item_its_own_batch() -> None:
    assert plan_batches([5, 500, 5], max_items=10, max_tokens=100) == [(0, 1), (1, 2), (2, 3)]
    assert plan_batches([], max_items=10, max_tokens=100) == []


def test_retry_after_seconds_date_and_ms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 42, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(42, abs=1)
    past = email.utils.formatdate(now - 100, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(max_retries=6, base_delay=0.5, max_wait=4.0)
    rng = random.Random(0)
    for attempt in range(10):
        waits = [policy.backoff(attempt, rng) for _ in range(200)]
        ceiling = min(4.0, 0.5 * 2 ** attempt)
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # the whole range is used, not a fixed delay


def test_error_message_reads_every_provider_shape() -> None:
    assert error_message(b'{"error": {"message": "bad input", "type": "x"}}') == "bad input"
    assert error_message(b'{"message": "invalid request: texts too long"}') == "invalid request: texts too long"
    assert error_message(b'{"detail": "Not Found"}') == "Not Found"
    assert error_message(b'{"error": "model not loaded"}') == "model not loaded"
    assert error_message(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert error_message(b"") == "(empty reply)"


def test_decode_base64_and_float_lists() -> None:
    vec = np.array([0.25, -1.5, 3.0], dtype="<f4")
    assert np.array_equal(decode_embedding(base64.b64encode(vec.tobytes()).decode()), vec)
    assert np.array_equal(decode_embedding([0.25, -1.5, 3]), vec)
    with pytest.raises(MalformedReply):
        decode_embedding(base64.b64encode(b"abcde").decode())
    with pytest.raises(MalformedReply):
        decode_embedding({"oops": 1})


def test_secret_does_not_print() -> None:
    secret = Secret("sk-very-secret")
    assert "sk-very-secret" not in repr(secret) and "sk-very-secret" not in str(secret)
    assert secret.reveal() == "sk-very-secret"


def test_building_embedders_does_not_import_httpx() -> None:
    # Construction must stay cheap (``semkit models``, introspection): httpx loads at the first
    # request. A fresh interpreter, since other tests in this one may have imported httpx.
    code = (
        "import sys\n"
        "from semkit.models.registry import create\n"
        "create('openai:text-embedding-3-small', dimensions=256)\n"
        "create('cohere:embed-v4.0')\n"
        "create('http:m', base_url='http://127.0.0.1:9/v1', dimensions=4)\n"
        "assert 'httpx' not in sys.modules, 'httpx imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_construction_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.models.cohere import CohereEmbedder
    from semkit.models.openai import OpenAIEmbedder

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("CO_API_KEY", raising=False)
    m = OpenAIEmbedder("text-embedding-3-large", dimensions=1024)
    assert (m.id, m.dimensions, m.max_tokens) == ("openai:text-embedding-3-large@1024", 1024, 8191)
    assert m.meter.price_per_million == 0.13
    c = CohereEmbedder("embed-english-v3.0")
    assert (c.id, c.dimensions) == ("cohere:embed-english-v3.0@1024", 1024)


def test_option_validation() -> None:
    from semkit.models.cohere import CohereEmbedder
    from semkit.models.openai import OpenAIEmbedder

    with pytest.raises(InvalidInput, match="allowed: 1536"):
        OpenAIEmbedder("text-embedding-ada-002", dimensions=512)
    with pytest.raises(InvalidInput, match="1 to 1536"):
        OpenAIEmbedder("text-embedding-3-small", dimensions=4096)
    with pytest.raises(InvalidInput, match="allowed: 256, 512, 1024, 1536"):
        CohereEmbedder("embed-v4.0", dimensions=300)
    with pytest.raises(InvalidInput, match="allowed: 1024"):
        CohereEmbedder("embed-english-v3.0", dimensions=512)
    with pytest.raises(InvalidInput, match="limit of 2048"):
        OpenAIEmbedder("text-embedding-3-small", batch_size=5000)
    with pytest.raises(InvalidInput, match="limit of 96"):
        CohereEmbedder("embed-v4.0", batch_size=100)
    with pytest.raises(InvalidInput, match="concurrency"):
        OpenAIEmbedder("text-embedding-3-small", concurrency=0)
    with pytest.raises(ModelNotAvailable, match="openai:text-embedding-3-small"):
        OpenAIEmbedder("text-embedding-4-huge")
    with pytest.raises(ModelNotAvailable, match=r"cohere:embed-v4\.0"):
        CohereEmbedder("embed-v9")
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIEmbedder("text-embedding-3-small", base_url="api.openai.com/v1")


def test_http_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from semkit.models.openai import OpenAICompatibleEmbedder

    monkeypatch.delenv("SEMKIT_HTTP_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="base_url="):
        OpenAICompatibleEmbedder("bge-small")
    m = OpenAICompatibleEmbedder("any-model-name", base_url="http://127.0.0.1:9/v1", dimensions=8,
                                 query_prefix="q: ")
    assert m.id == "http:any-model-name@8"
    assert m.fingerprint.startswith("http:any-model-name@8;host=")
    assert "qp='q: '" in m.fingerprint
    other = OpenAICompatibleEmbedder("any-model-name", base_url="http://127.0.0.2:9/v1", dimensions=8,
                                     query_prefix="q: ")
    assert other.id == m.id and other.fingerprint != m.fingerprint


def test_remote_knobs_are_one_options_object() -> None:
    import semkit
    from semkit.models.cohere import CohereEmbedder
    from semkit.models.openai import OpenAICompatibleEmbedder, OpenAIEmbedder

    # Plain keyword arguments, as users pass them through semkit.model(), become RemoteOptions.
    m = semkit.model("openai:text-embedding-3-small", cache=False, max_retries=2, batch_size=8, timeout=5)
    assert isinstance(m, OpenAIEmbedder)
    assert m.options == RemoteOptions(max_retries=2, batch_size=8, timeout=5)
    assert (m.retry.max_retries, m.batch_size, m.timeout, m.concurrency) == (2, 8, 5.0, 4)
    # An options object, with single knobs on top of it.
    shared = RemoteOptions(concurrency=2, max_retry_wait=5.0)
    c = CohereEmbedder("embed-v4.0", options=shared, retry_base_delay=0.1)
    assert c.options == RemoteOptions(concurrency=2, max_retry_wait=5.0, retry_base_delay=0.1)
    assert (c.concurrency, c.retry.max_wait, c.retry.base_delay) == (2, 5.0, 0.1)
    # Batch sizes left out are each provider's own default.
    h = OpenAICompatibleEmbedder("m", base_url="http://127.0.0.1:9/v1", dimensions=4, options=shared)
    assert [(e.batch_size, e.max_batch_tokens) for e in (m, c, h)] == [(8, 300_000), (96, 500_000), (64, 100_000)]
    with pytest.raises(ConfigError, match=r"unknown option\(s\) for openai: max_retry.*accepted: .*dimensions"):
        semkit.model("openai:text-embedding-3-small", cache=False, max_retry=2)
    with pytest.raises(InvalidInput, match="max_retries"):
        OpenAIEmbedder("text-embedding-3-small", options=RemoteOptions(max_retries=-1))
