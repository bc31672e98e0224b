"""``/v1/embeddings`` and ``/v1/models`` answer like OpenAI's API: statuses, the error shape and
the ``openai`` SDK's error classes, short messages, the model context, opt-in truncation and
``--served-model-name`` aliases. A real server, the real bundled model, the real SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

import semkit
from semkit.server.limits import Limits
from tests.support.server import RunningServer, serve

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

MAX_INPUTS = 40
LONG = "word " * 600  # 602 MiniLM tokens, over its context of 256
ALIAS = "text-embedding-3-small"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    db = tmp_path_factory.mktemp("fidelity") / "kb"
    with serve(str(db), limits=Limits(max_embedding_inputs=MAX_INPUTS), served_model_names={ALIAS: "local"}) as s:
        yield s


@pytest.fixture(scope="module")
def key(server: RunningServer) -> str:
    return server.state.keys.create(name="fidelity")[0]


@pytest.fixture(scope="module")
def sdk(server: RunningServer, key: str) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def http(server: RunningServer, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        yield client


# Each body OpenAI's API answers 400, the parameter it names and words the message must hold.
BAD_BODIES: list[tuple[str, dict[str, Any], str | None, str]] = [
    ("empty string", {"input": ""}, "input", "empty string"),
    ("blank string", {"input": "   "}, "input", "blank"),
    ("empty array", {"input": []}, "input", "empty array"),
    ("empty string in a list", {"input": ["ok", ""]}, "input", "input[1]"),
    ("a number", {"input": 123}, "input", "must be a string, an array of strings"),
    ("an object in a list", {"input": ["ok", {"text": "x"}]}, "input", "input[1] is an object"),
    ("strings and tokens mixed", {"input": ["ok", [1, 2]]}, "input", "mixes strings and token arrays"),
    ("empty token array", {"input": [[1, 2], []]}, "input", "input[1] is an empty token array"),
    ("negative token", {"input": [[1, -2]]}, "input", "token ids"),
    ("too many inputs", {"input": ["x"] * (MAX_INPUTS + 1)}, "input", f"the limit is {MAX_INPUTS}"),
    ("dimensions the model cannot give", {"input": "x", "dimensions": 128}, "dimensions", "cannot give 128"),
    ("dimensions zero", {"input": "x", "dimensions": 0}, "dimensions", "greater than or equal to 1"),
    ("dimensions not a number", {"input": "x", "dimensions": "big"}, "dimensions", "valid integer"),
    ("bad encoding_format", {"input": "x", "encoding_format": "int8"}, "encoding_format", "'float' or 'base64'"),
    ("over the context", {"input": ["short", LONG]}, "input",
     "input[1] is 602 tokens, over the model's context of 256"),
]


@pytest.mark.parametrize(("body", "param", "words"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
def test_client_errors_are_400_in_openai_shape(http: httpx.Client, body: dict[str, Any], param: str | None,
                                               words: str) -> None:
    r = http.post("/v1/embeddings", json={"model": "local", **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert words in error["message"], error["message"]
    # One short sentence, never pydantic's dump of every member of a union.
    assert len(error["message"]) < 300 and "list[" not in error["message"] and "union" not in error["message"]


def test_a_body_that_is_not_an_embeddings_request_is_400(http: httpx.Client) -> None:
    r = http.post("/v1/embeddings", content=b'{"model": "local", "input": ',
                  headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = http.post("/v1/embeddings", json=["local", "x"])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]
    r = http.post("/v1/embeddings", json={"input": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    assert "provide the 'model' parameter" in r.json()["error"]["message"]


def test_the_sdk_raises_what_openai_would(server: RunningServer, sdk: Any) -> None:
    for body in (b[1] for b in BAD_BODIES):
        with pytest.raises(openai.BadRequestError):
            sdk.embeddings.create(model="local", **body)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        sdk.embeddings.create(model="text-embedding-3-large", input="x")
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("text-embedding-3-large")
    with pytest.raises(openai.AuthenticationError, match="invalid or revoked API key"):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-semkit-0123456789ab-wrong",
                      max_retries=0).embeddings.create(model="local", input="x")
    limited, _ = server.state.keys.create(name="slow", rate_limit=0.001)  # a burst of one request
    slow = openai.OpenAI(base_url=f"{server.url}/v1", api_key=limited, max_retries=0)
    slow.embeddings.create(model="local", input="x")
    with pytest.raises(openai.RateLimitError) as caught:
        slow.embeddings.create(model="local", input="x")
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_the_missing_key_hint_reaches_the_client_unscrubbed(server: RunningServer) -> None:
    r = httpx.post(f"{server.url}/v1/embeddings", json={"model": "local", "input": "x"}, timeout=30)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["message"] == (
        "missing API key: send 'Authorization: Bearer <key>' (or 'Api-Key: <key>') "
        "(create one with `semkit keys create`)")


def test_base64_is_the_float32_little_endian_of_the_float_answer(sdk: Any) -> None:
    texts = ["The cat sat on the mat", "机器学习", "short"]
    floats = sdk.embeddings.create(model="local", input=texts, encoding_format="float")
    raw = sdk.with_raw_response.embeddings.create(model="local", input=texts, encoding_format="base64")
    packed = [np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
              for item in raw.http_response.json()["data"]]
    expected = np.array([d.embedding for d in floats.data], dtype=np.float32)
    assert all(p.shape == (384,) for p in packed)
    np.testing.assert_array_equal(np.stack(packed), expected)  # bit for bit
    np.testing.assert_allclose(expected, semkit.embed(texts), atol=1e-5)


def test_over_long_input_is_cut_only_when_asked(server: RunningServer, key: str, sdk: Any) -> None:
    texts = ["short", LONG, LONG + "more"]
    with pytest.raises(openai.BadRequestError, match="over the model's context of 256"):
        sdk.embeddings.create(model="local", input=texts)
    # Asked in the body (extra_body) or by a header (for clients that only set headers).
    by_body = sdk.with_raw_response.embeddings.create(model="local", input=texts, encoding_format="float",
                                                      extra_body={"truncate": True}).http_response.json()
    header_client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0,
                                  default_headers={"X-Semkit-Truncate": "true"})
    by_header = header_client.with_raw_response.embeddings.create(
        model="local", input=texts, encoding_format="float").http_response.json()
    for answer in (by_body, by_header):
        assert answer["truncated"] == 2
        got = np.array([d["embedding"] for d in answer["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, semkit.embed(texts), atol=1e-5)  # the library cuts the same way
        assert answer["usage"]["prompt_tokens"] == semkit.cost.count_tokens(texts, "local")
    plain = sdk.with_raw_response.embeddings.create(model="local", input="short").http_response.json()
    assert plain["truncated"] == 0


def test_models_list_and_retrieve_with_context_length(sdk: Any) -> None:
    listed = {m.id: m for m in sdk.models.list().data}
    assert set(listed) == {"local", ALIAS}
    for name in ("local", ALIAS, "sentence-transformers/all-MiniLM-L6-v2"):
        card = sdk.models.retrieve(name)
        assert card.id == name and card.object == "model"
        assert card.model_extra["context_length"] == semkit.model("local").max_tokens == 256
        assert card.model_extra["dimensions"] == 384
    assert sdk.models.retrieve(ALIAS).model_extra["root"] == "local"


def test_an_alias_embeds_with_the_model_it_names(sdk: Any) -> None:
    resp = sdk.embeddings.create(model=ALIAS, input=["hello world", "cats"], encoding_format="float")
    assert resp.model == ALIAS
    np.testing.assert_allclose(np.array([d.embedding for d in resp.data]), semkit.embed(["hello world", "cats"]),
                               atol=1e-5)


def test_aliases_are_checked_when_the_server_starts(tmp_path: Any) -> None:
    from semkit.cli.server_cmds import parse_served_model_names
    from semkit.server import create_app

    assert parse_served_model_names(["a=local", " b = local "]) == {"a": "local", "b": "local"}
    for bad in ("nomodel", "=local", "alias="):
        with pytest.raises(semkit.errors.ConfigError, match="ALIAS=MODEL"):
            parse_served_model_names([bad])
    with pytest.raises(semkit.errors.ConfigError, match="already designates"):
        create_app(str(tmp_path / "kb"), served_model_names={"all-MiniLM-L6-v2": "local"}, preload=False)
    # An alias for a model not in --model serves that model too.
    app = create_app(str(tmp_path / "kb2"), models=["local"], preload=False,
                     served_model_names={"text-embedding-ada-002": "local:all-MiniLM-L6-v2"})
    assert app.state.semkit.served_spec("text-embedding-ada-002") == "local"
    app.state.semkit.close()
