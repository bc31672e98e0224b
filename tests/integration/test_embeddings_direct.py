"""``POST /v1/embeddings`` is answered by a direct route (``server/embeddings_direct.py``) ahead of
the FastAPI one: it must answer every request exactly as the FastAPI route does, and hand the
FastAPI route only what does not validate. Two apps over the same store, one with the direct
route and one without it, get the same requests; the real bundled model embeds."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from semkit.server import create_app
from semkit.server.embeddings_direct import DirectEmbeddings
from semkit.server.routes_openai import TRUNCATE_HEADER

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LONG = "word " * 600  # over the bundled model's 256-token context

REQUESTS: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]] = [
    ("one text", {"input": "a cat sat on the mat", "model": "local"}, {}),
    ("several texts, base64", {"input": ["first text", "second, longer text here"], "model": "local",
                               "encoding_format": "base64"}, {}),
    ("extra fields a client may send", {"input": "hello", "model": "local", "user": "u1", "x": 1}, {}),
    ("charset in the content type", {"input": "hello", "model": "local"},
     {"content-type": "application/json; charset=utf-8"}),
    ("over the context", {"input": LONG, "model": "local"}, {}),
    ("over the context, truncate in the body", {"input": LONG, "model": "local", "truncate": True}, {}),
    ("over the context, truncate header", {"input": LONG, "model": "local"}, {TRUNCATE_HEADER: "true"}),
    ("a size the model cannot give", {"input": "hello", "model": "local", "dimensions": 1000}, {}),
    ("unknown model", {"input": "hello", "model": "no-such-model"}, {}),
    ("too many inputs", {"input": ["x"] * 3000, "model": "local"}, {}),
    ("empty string", {"input": "", "model": "local"}, {}),
    ("missing model", {"input": "hello"}, {}),
    ("wrong type", {"input": {"a": 1}, "model": "local"}, {}),
    ("not JSON", b"{not json", {}),
    ("JSON that is not an object", b"[1, 2]", {}),
    ("a content type that is not JSON", b'{"input": "hello", "model": "local"}', {"content-type": "text/plain"}),
]


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120) as client:
            yield client


def _apps(tmp_path: Path) -> tuple[FastAPI, FastAPI]:
    direct = create_app(str(tmp_path / "kb"), auth=False)
    plain = create_app(str(tmp_path / "kb"), auth=False)
    assert isinstance(plain.router.routes[0].app, DirectEmbeddings)  # type: ignore[attr-defined]
    del plain.router.routes[0]  # the FastAPI route alone, as before the direct one
    return direct, plain


async def _post(client: httpx.AsyncClient, body: dict[str, Any] | bytes, headers: dict[str, str]) -> httpx.Response:
    if isinstance(body, bytes):
        return await client.post("/v1/embeddings", content=body,
                                 headers={"content-type": "application/json", **headers})
    return await client.post("/v1/embeddings", json=body, headers=headers)


def test_the_direct_route_answers_every_request_as_the_fastapi_route_does(tmp_path: Path) -> None:
    asyncio.run(_compare(*_apps(tmp_path)))


async def _compare(direct: FastAPI, plain: FastAPI) -> None:
    async with _client(direct) as fast, _client(plain) as slow:
        for name, body, headers in REQUESTS:
            got, want = await _post(fast, body, headers), await _post(slow, body, headers)
            assert got.status_code == want.status_code, (name, got.text, want.text)
            assert got.content == want.content, name
            for header in ("content-type", "retry-after"):
                assert got.headers.get(header) == want.headers.get(header), (name, header)
        got, want = await fast.get("/v1/embeddings"), await slow.get("/v1/embeddings")
        assert (got.status_code, got.content, got.headers.get("allow")) == (
            want.status_code, want.content, want.headers.get("allow")) and got.status_code == 405
        # The error cases really are errors, and the valid ones embed (so the comparison above means something).
        statuses = {name: (await _post(fast, body, headers)).status_code for name, body, headers in REQUESTS}
        assert statuses["one text"] == statuses["over the context, truncate header"] == 200
        assert statuses["over the context"] == statuses["not JSON"] == statuses["too many inputs"] == 400
        assert statuses["unknown model"] == 404


def test_only_what_does_not_validate_reaches_the_fastapi_route(tmp_path: Path) -> None:
    asyncio.run(_count_fallbacks(create_app(str(tmp_path / "kb"), auth=False)))


async def _count_fallbacks(app: FastAPI) -> None:
    route = app.router.routes[0].app  # type: ignore[attr-defined]
    assert isinstance(route, DirectEmbeddings)
    handed: list[str] = []
    fallback = route.fallback

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await fallback(scope, receive, send)

    route.fallback = counting
    async with _client(app) as client:
        assert (await _post(client, {"input": "hello", "model": "local"}, {})).status_code == 200
        assert (await _post(client, {"input": LONG, "model": "local"}, {})).status_code == 400  # after the model ran
        assert handed == []
        assert (await _post(client, b"{not json", {})).status_code == 400
        assert (await _post(client, {"input": "", "model": "local"}, {})).status_code == 400
        assert handed == ["/v1/embeddings", "/v1/embeddings"]
        # The metrics name the route as before, whichever answered.
        metrics = (await client.get("/metrics")).text
        assert 'semkit_http_requests_total{method="POST",route="/v1/embeddings",status="200"} 1.0' in metrics
        assert 'semkit_http_requests_total{method="POST",route="/v1/embeddings",status="400"} 3.0' in metrics
