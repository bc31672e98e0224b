"""The one batching, retry and cost layer every remote embedding provider shares.

A provider (``openai.py``, ``cohere.py``) only describes its wire format: the endpoint, the
request body, how to read vectors and usage from a reply. Everything else lives here:

- texts are packed into requests bounded by item count AND token count;
- at most ``concurrency`` requests are in flight per embedder (a bounded thread pool and a
  semaphore, so it works the same when called from inside a running event loop);
- 429, 5xx, 408, timeouts, dropped connections and malformed replies are retried with
  exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP date);
  a 429 pauses every worker of the embedder, not just the one that saw it;
- a server that says a batch is too big (413, or 400/422 naming a count or size limit) gets
  the batch in halves, and the embedder remembers the smaller size;
- 401/403 → ``AuthError`` and other 4xx → ``BadRequest`` at once, without retrying;
- usage is added to ``meter``; output rows are always in input order.

The knobs of all of this (batch sizes, concurrency, timeout, retries) are one value object,
``RemoteOptions``, the same for every provider. API keys live in a ``Secret`` and are scrubbed
from every message that leaves this module.
"""

from __future__ import annotations

import email.utils
import inspect
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from ..errors import (
    AuthError,
    BadRequest,
    ConfigError,
    InvalidInput,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from ..types import Kind, Matrix
from ..vectors import normalize
from .base import BaseEmbedder, EmbeddingResult
from .counters import TokenCounter

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""``progress(done, total)``: items embedded so far out of the items in this call."""

Truncation = Literal["client", "server"]

_TOO_BIG = re.compile(
    r"too many|too large|batch size|at most|maximum (number|batch|allowed)|max(imum)? "
    r"(number of )?(inputs|texts|items|batch)|per request|exceed",
    re.IGNORECASE,
)
"""How servers word 'this batch is too big' (OpenAI, Cohere, TEI, vLLM, infinity)."""

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


class Secret:
    """An API key that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class RemoteOptions:
    """How a remote embedder batches, waits and retries; the same knobs for every provider.

    Pass one as ``options=``, or the fields as plain keyword arguments
    (``semkit.model("openai:text-embedding-3-small", max_retries=2)``); ``from_kwargs`` is the
    one place that turns keyword arguments into options.
    """

    batch_size: int | None = None
    """Texts per request; ``None``: the provider's default (under its hard limit)."""
    max_batch_tokens: int | None = None
    """Tokens per request; ``None``: the provider's default."""
    concurrency: int = 4
    """Requests in flight at once, per embedder."""
    timeout: float = 60.0
    """Seconds to wait for one reply."""
    max_retries: int = 6
    retry_base_delay: float = 0.5
    """Seconds: backoff is ``uniform(0, min(max_retry_wait, retry_base_delay * 2**attempt))``."""
    max_retry_wait: float = 60.0
    """The longest single wait; a ``Retry-After`` longer than this fails at once."""
    progress: Progress | None = None
    """``progress(done, total)`` after every request of a call."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_kwargs(cls, options: RemoteOptions | None, knobs: Mapping[str, Any], *,
                    where: str = "remote models", also: Iterable[str] = ()) -> RemoteOptions:
        """``options`` (default: all defaults) with the fields named in ``knobs`` replaced.
        A name that is not a field is a ``ConfigError`` listing what ``where`` accepts: these
        fields and ``also`` (the provider's own options)."""
        unknown = sorted(set(knobs) - set(cls.names()))
        if unknown:
            accepted = ", ".join(sorted({*cls.names(), *also}))
            raise ConfigError(f"unknown option(s) for {where}: {', '.join(unknown)}; accepted: {accepted}")
        return replace(options or cls(), **knobs)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: wait ``uniform(0, min(cap, base * 2**attempt))``.

    A ``Retry-After`` longer than ``max_wait`` ends the retries at once with ``RateLimited``
    (its ``retry_after`` says how long the provider asked for): waiting less would only earn
    another 429, and blocking a caller for minutes without telling it is worse.
    """

    max_retries: int = 6
    base_delay: float = 0.5
    max_wait: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_wait, self.base_delay * (2 ** attempt)))


def parse_retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def plan_batches(counts: Sequence[int], max_items: int, max_tokens: int) -> list[tuple[int, int]]:
    """Split ``range(len(counts))`` into consecutive ``(start, end)`` spans of at most
    ``max_items`` items and ``max_tokens`` tokens (a single longer item gets a span alone)."""
    spans: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for i, count in enumerate(counts):
        if i > start and (i - start >= max_items or tokens + count > max_tokens):
            spans.append((start, i))
            start, tokens = i, 0
        tokens += count
    if start < len(counts):
        spans.append((start, len(counts)))
    return spans


def error_message(body: bytes, limit: int = 500) -> str:
    """The human message in an error reply, whatever the provider's shape."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()[:limit] or "(empty reply)"
    found: Any = data
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            found = err["message"]
        elif isinstance(err, str) and err:
            found = err
        elif data.get("message"):
            found = data["message"]
        elif data.get("detail"):
            found = data["detail"]
    text = found if isinstance(found, str) else json.dumps(found)
    return text.strip()[:limit]


class MalformedReply(Exception):
    """A 2xx reply whose body is not what the wire format promises (retried)."""


class _TooBig(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Cancelled(Exception):
    """Another batch of the same call failed for good: stop this one quietly."""


@dataclass
class _Call:
    """The state one ``embed`` call's workers share."""

    kind: Kind
    total: int
    progress: Progress | None
    failed: threading.Event
    done: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        if self.failed.wait(seconds):
            raise _Cancelled

    def advance(self, items: int) -> None:
        if self.progress is None:
            return
        with self.lock:
            self.done += items
            self.progress(self.done, self.total)


class RemoteEmbedder(BaseEmbedder):
    """Base of embedders that call an HTTP API. Subclasses describe the wire format.

    Subclasses set ``provider``, ``key_variables``, ``truncation`` and their default batch
    sizes, and implement ``_endpoint``, ``_payload``, ``_parse`` (and ``_auth_headers`` when the
    key is not a Bearer token). Their constructors take ``options: RemoteOptions`` and pass any
    other keyword arguments on: they are ``RemoteOptions`` fields given one by one.
    ``meter.requests`` counts successful requests; failed attempts count in ``meter.retries``.
    """

    provider: ClassVar[str] = "remote"
    key_variables: ClassVar[tuple[str, ...]] = ()
    """Environment variables holding the API key, the first one set wins; empty for servers
    without one."""
    key_required: ClassVar[bool] = True
    truncation: ClassVar[Truncation] = "server"
    """``client``: cut over-long texts here (exact tokenizer); ``server``: let the API truncate
    and only count the estimated overflows."""
    max_batch_size: ClassVar[int | None] = None
    """The provider's hard limit on items per request."""
    max_request_tokens: ClassVar[int | None] = None
    default_batch_size: ClassVar[int] = 64
    default_batch_tokens: ClassVar[int] = 100_000

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        counter: TokenCounter,
        options: RemoteOptions | None = None,
        count_overflows: bool = True,
        **knobs: Any,
    ) -> None:
        super().__init__()
        # The provider's own options, for the message naming what is accepted.
        own = [n for n in inspect.signature(type(self).__init__).parameters
               if n not in ("self", "name", "options", "knobs")]
        opts = RemoteOptions.from_kwargs(options, knobs, where=self.provider, also=own)
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/]", base_url):
            raise ConfigError(
                f"base_url must be an http(s) URL such as 'https://api.example.com/v1', got "
                f"{base_url!r}"
            )
        self.options = opts
        self.base_url = base_url.rstrip("/")
        self._key = Secret(api_key) if api_key else None
        self._counter = counter
        batch_size = self.default_batch_size if opts.batch_size is None else opts.batch_size
        batch_tokens = self.default_batch_tokens if opts.max_batch_tokens is None else opts.max_batch_tokens
        self.batch_size = _positive_int("batch_size", batch_size, self.max_batch_size)
        self.max_batch_tokens = _positive_int("max_batch_tokens", batch_tokens, self.max_request_tokens)
        self.concurrency = _positive_int("concurrency", opts.concurrency, 64)
        timeout = opts.timeout
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        max_retries = opts.max_retries
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise InvalidInput(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not (opts.retry_base_delay >= 0 and opts.max_retry_wait >= 0):
            raise InvalidInput("retry_base_delay and max_retry_wait must be >= 0 seconds")
        self.retry = RetryPolicy(max_retries, float(opts.retry_base_delay), float(opts.max_retry_wait))
        self.progress = opts.progress
        self._count_overflows = count_overflows
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._state_lock = threading.Lock()
        self._item_limit = self.batch_size
        self._pause_until = 0.0
        self._client: httpx.Client | None = None
        self._rng = random.Random()

    # --- what a provider describes -------------------------------------------------------

    def _endpoint(self) -> str:
        raise NotImplementedError

    def _payload(self, texts: list[str], kind: Kind) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, data: Any, n: int) -> tuple[Matrix, int | None]:
        """Vectors (in request order) and provider-reported tokens (``None`` if unreported).
        Raise ``MalformedReply`` when the reply does not have the promised shape."""
        raise NotImplementedError

    def _prefix(self, kind: Kind) -> str:
        return ""

    def _accept(self, vectors: Matrix) -> Matrix:
        """Check (and where the model allows, cut) one reply's vectors; the default insists on
        ``self.dimensions`` exactly."""
        if vectors.shape[1] != self.dimensions:
            raise ProviderError(
                f"{self.provider} returned {vectors.shape[1]}-dimensional vectors, expected "
                f"{self.dimensions} for {self.id}; check the model name and dimensions option",
                provider=self.provider,
            )
        return vectors

    def _finish(self, vectors: Matrix) -> Matrix:
        """The whole call's vectors, in input order; unit length unless a provider says not."""
        return normalize(vectors)

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def _extra_headers(self) -> dict[str, str]:
        return {}

    # --- plumbing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections; the embedder reopens them if used again."""
        with self._state_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> RemoteEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        with self._state_lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                    limits=httpx.Limits(max_connections=self.concurrency,
                                        max_keepalive_connections=self.concurrency),
                    follow_redirects=False,
                )
            return self._client

    def _api_key(self) -> str | None:
        if self._key is None:
            value = next((os.environ[v] for v in self.key_variables if os.environ.get(v)), None)
            if value:
                self._key = Secret(value)
        if self._key is None and self.key_required:
            where = " or ".join(self.key_variables) or "api_key"
            first = self.key_variables[0] if self.key_variables else "KEY"
            raise ConfigError(
                f"no API key for {self.provider}: set the environment variable {where} "
                f"(export {first}=...) or pass api_key=... to semkit.model()"
            )
        return self._key.reveal() if self._key else None

    def _scrub(self, text: str) -> str:
        if self._key is not None:
            key = self._key.reveal()
            if key:
                text = text.replace(key, "***")
        return text

    @property
    def item_limit(self) -> int:
        """Items per request now: ``batch_size``, or less once a server refused a batch."""
        return self._item_limit

    def _prepare(self, texts: list[str], kind: Kind) -> tuple[list[str], list[int], int]:
        prefix = self._prefix(kind)
        if prefix:
            texts = [prefix + t for t in texts]
        counts = self._counter.count(texts)
        limit = self.max_tokens
        truncated = 0
        if self.truncation == "client":
            for i, count in enumerate(counts):
                if count > limit:
                    texts[i] = self._counter.truncate(texts[i], limit)
                    counts[i] = self._counter.count([texts[i]])[0]
                    truncated += 1
        else:
            if self._count_overflows:
                truncated = sum(1 for c in counts if c > limit)
            counts = [min(c, limit) for c in counts]
        return texts, counts, truncated

    def _embed_texts(self, texts: list[str], kind: Kind) -> EmbeddingResult:
        self._api_key()  # a missing key fails before anything is sent
        prepared, counts, truncated = self._prepare(texts, kind)
        spans = plan_batches(counts, self._item_limit, self.max_batch_tokens)
        call = _Call(kind, len(prepared), self.progress, threading.Event())
        parts: dict[int, tuple[Matrix, int]] = {}

        def run(span: tuple[int, int]) -> None:
            start, end = span
            parts[start] = self._run_batch(prepared[start:end], counts[start:end], call)

        self._run_spans(spans, run, call)
        vectors = np.concatenate([parts[start][0] for start, _ in spans], axis=0)
        tokens = sum(parts[start][1] for start, _ in spans)
        return EmbeddingResult(vectors=self._finish(vectors), truncated=truncated, tokens=tokens)

    def _run_spans(self, spans: list[tuple[int, int]], run: Callable[[tuple[int, int]], None],
                   call: _Call) -> None:
        if len(spans) == 1 or self.concurrency == 1:
            for span in spans:
                run(span)
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(spans)),
                                    thread_name_prefix=f"semkit-{self.provider}") as pool:
                futures: list[Future[None]] = [pool.submit(run, span) for span in spans]
                try:
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    errors = [e for e in (f.exception() for f in done) if e is not None]
                    if errors:
                        real = [e for e in errors if not isinstance(e, _Cancelled)]
                        raise (real or errors)[0]
                except BaseException:
                    # One batch failed for good (or Ctrl-C): queued batches are dropped and
                    # workers stop at their next attempt or sleep, so the pool closes quickly.
                    call.failed.set()
                    for f in futures:
                        f.cancel()
                    raise

    def _run_batch(self, texts: list[str], counts: list[int], call: _Call) -> tuple[Matrix, int]:
        """Embed one planned batch, halving it while the server says it is too big."""
        limit = self._item_limit
        if len(texts) > limit:
            pieces = [self._run_batch(texts[i:i + limit], counts[i:i + limit], call)
                      for i in range(0, len(texts), limit)]
            return np.concatenate([p[0] for p in pieces]), sum(p[1] for p in pieces)
        try:
            vectors, tokens = self._request(texts, counts, call)
        except _TooBig as exc:
            if len(texts) == 1:
                raise BadRequest(
                    f"{self.provider} rejected a single text as too large (HTTP {exc.status}), "
                    f"the one starting {texts[0][:40]!r}: {exc.message}. Shorten or split it",
                    status=exc.status, provider=self.provider,
                ) from None
            half = (len(texts) + 1) // 2
            self.meter.add(retries=1)
            left = self._run_batch(texts[:half], counts[:half], call)
            right = self._run_batch(texts[half:], counts[half:], call)
            # Remembered only once the halves went through: a single over-long text makes
            # some servers word their 400 like a batch limit, and must not shrink every batch.
            with self._state_lock:
                lowered = half < self._item_limit
                self._item_limit = min(self._item_limit, half)
            if lowered:
                log.warning("%s refused a batch of %d texts (HTTP %d: %s); sending at most %d "
                            "per request from now on", self.provider, len(texts), exc.status,
                            exc.message[:200], half)
            return np.concatenate([left[0], right[0]]), left[1] + right[1]
        call.advance(len(texts))
        return vectors, tokens

    def _request(self, texts: list[str], counts: list[int], call: _Call) -> tuple[Matrix, int]:
        """One batch, retried until it succeeds, fails for good, or retries run out."""
        url = self.base_url + self._endpoint()
        body = self._payload(texts, call.kind)
        attempt = 0
        while True:
            if call.failed.is_set():
                raise _Cancelled
            self._wait_for_pause(call)
            key = self._api_key()
            headers = {**self._extra_headers(), **(self._auth_headers(key) if key else {})}
            try:
                with self._slots:
                    response = self._send(url, body, headers)
                vectors, reported = self._read(response, len(texts))
                vectors = self._accept(vectors)
            except (RateLimited, ProviderUnavailable) as exc:
                wait_s = self._retry_wait(exc, attempt)
                if wait_s is None:
                    raise
                attempt += 1
                self.meter.add(retries=1)
                log.warning("%s; retry %d/%d in %.2f s", exc, attempt,
                            self.retry.max_retries, wait_s)
                call.sleep(wait_s)
                continue
            tokens = reported if reported is not None else sum(counts)
            self.meter.add(requests=1, items=len(texts), tokens=tokens)
            return vectors, tokens

    def _retry_wait(self, exc: ProviderError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up (the caller raises
        ``exc``, whose message then says how many retries were made)."""
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        if retry_after is not None and retry_after > self.retry.max_wait:
            exc.args = (f"{exc.args[0]}; the provider asked to wait {retry_after:.0f} s, more "
                        f"than max_retry_wait={self.retry.max_wait:.0f} s: try again later",)
            return None
        if attempt >= self.retry.max_retries:
            exc.args = (f"{exc.args[0]} (gave up after {attempt} retries; raise max_retries or "
                        "try again later)",)
            return None
        if retry_after is not None:
            with self._state_lock:
                # Every worker of this embedder holds off, not just the one that was told.
                self._pause_until = max(self._pause_until, time.monotonic() + retry_after)
            return retry_after
        return self.retry.backoff(attempt, self._rng)

    def _wait_for_pause(self, call: _Call) -> None:
        while True:
            with self._state_lock:
                remaining = self._pause_until - time.monotonic()
            if remaining <= 0:
                return
            call.sleep(remaining)

    def _send(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        import httpx

        try:
            return self._http().post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(
                f"{self.provider} did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}); raise timeout= if requests are large",
                provider=self.provider,
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ConfigError(f"cannot call {url}: {self._scrub(str(exc))}; check base_url") from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"{self.provider} connection failed ({type(exc).__name__}: "
                f"{self._scrub(str(exc))[:200]}); is {self.base_url} reachable?",
                provider=self.provider,
            ) from None

    def _read(self, response: httpx.Response, n: int) -> tuple[Matrix, int | None]:
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = json.loads(response.content)
                return self._parse(data, n)
            except (ValueError, MalformedReply, KeyError, TypeError, IndexError) as exc:
                raise ProviderUnavailable(
                    f"{self.provider} sent a malformed reply (HTTP {status}: "
                    f"{self._scrub(str(exc))[:200]})", status=status, provider=self.provider,
                ) from None
        message = self._scrub(error_message(response.content))
        where = f"{self.provider} (HTTP {status})"
        if status == 429:
            raise RateLimited(f"{where} rate limit: {message}",
                              retry_after=parse_retry_after(response.headers),
                              provider=self.provider)
        if status in RETRYABLE_STATUS or status >= 500:
            raise ProviderUnavailable(f"{where} is unavailable: {message}", status=status,
                                      provider=self.provider)
        if status in (401, 403):
            env = f" (environment variable {' or '.join(self.key_variables)})" if self.key_variables else ""
            raise AuthError(f"{where} rejected the API key{env}: {message}", status=status,
                            provider=self.provider)
        if status == 413 or (status in (400, 422) and _TOO_BIG.search(message)):
            raise _TooBig(status, message)
        hint = "; check base_url and the model name" if status == 404 else ""
        raise BadRequest(f"{where} rejected the request: {message}{hint}", status=status,
                         provider=self.provider)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} base_url={self.base_url}>"


def decode_embedding(value: Any) -> np.ndarray:
    """A float list, or base64 of little-endian float32 (``encoding_format="base64"``)."""
    if isinstance(value, str):
        import base64

        raw = base64.b64decode(value, validate=True)
        if len(raw) % 4:
            raise MalformedReply(f"base64 embedding of {len(raw)} bytes is not float32 data")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(value, list) and value and all(isinstance(x, int | float) for x in value):
        return np.asarray(value, dtype=np.float32)
    raise MalformedReply(f"embedding is neither a list of numbers nor base64: {str(value)[:60]!r}")


def stack(rows: list[np.ndarray]) -> Matrix:
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise MalformedReply(f"embeddings of different lengths in one reply: {sorted(widths)}")
    out = np.stack(rows).astype(np.float32, copy=False)
    if not np.all(np.isfinite(out)):
        raise MalformedReply("reply contains NaN or infinite values")
    return out


def _positive_int(name: str, value: Any, limit: int | None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
    if limit is not None and value > limit:
        raise InvalidInput(f"{name}={value} is over the provider's limit of {limit}; use at most {limit}")
    return value
