"""The models a server process holds, each loaded once and shared, behind a micro-batcher.

Embedding is CPU-bound and the model already uses every core it is given, so running many
model calls at once only makes them fight. Every text a request needs embedded (an
``/v1/embeddings`` input, a search query, an upsert) goes through one queue per model; a
small number of worker threads take what is waiting and run it as one model call (queries
first, then the oldest work), up to ``max_batch_texts`` texts. Concurrent small requests thus
become one batch, and the event loop never runs model code.

``BatchedEmbedder`` is an ``Embedder`` (same id, dimensions, fingerprint), so a
``Collection`` opened with it behaves exactly as with the model itself: it only changes
*when* the model runs, not what it computes. That is why requests are merged only for models
whose vectors do not depend on their batch-mates (``batch_invariant``, the one place that
decides: a model says so with a ``batch_invariant`` attribute; without one, an int8 model is
assumed to quantise with one activation scale per batch, as onnxruntime's dynamic int8 does,
so the same text would get a slightly different vector next to other texts). For those, each
request is one model call, exactly as the library would make it, and the queue only bounds
and orders the calls. Waiting work is grouped by length before it reaches the model (the
oldest request with the waiting ones nearest its length, up to ``max_call_tokens``; the rest
is the next call), and a merged call is one stream to the model, which sorts its texts by
token length and cuts them into batches of a padded-token budget, also cutting where padding
would cost more than a batch of its own (``models/local.py``, ``PAD_SLACK_TOKENS``), so
throughput rises with the number of waiting requests instead of falling with their padding.
Queries (a search's text) run one model call at a time, each taking every query waiting:
a second query call beside the first would only take a core from the event loop and the
store threads a search also waits for (``_embed_queries``). Worker threads run at a lower
priority than the event loop (``Limits.model_nice``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SemkitError
from ..models import registry
from ..models.base import Embedder, EmbedderWrapper, EmbeddingResult, check_kind
from ..models.build import build_model, model_from_id
from ..types import Kind
from ..vectors import check_texts
from .metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(order=True)
class _Work:
    priority: int
    seq: int
    texts: list[str] = field(compare=False)
    kind: Kind = field(compare=False)
    future: Future[EmbeddingResult] = field(compare=False)
    waiter: asyncio.Future[EmbeddingResult] | None = field(default=None, compare=False)
    """Set by ``submit_async``: the event loop's own future, settled from the loop (one wake-up
    per model call for all its waiters, rather than one ``wrap_future`` hand-off each)."""


_STOP = _Work(priority=99, seq=-1, texts=[], kind="document", future=Future())


class BatchedEmbedder(EmbedderWrapper):
    """An embedder whose calls are queued and merged with other callers' (thread-safe)."""

    def __init__(self, inner: Embedder, *, workers: int = 1, max_batch_texts: int = 256,
                 max_call_tokens: int = 16384, metrics: Metrics | None = None,
                 merge: bool | None = None, nice: int = 0) -> None:
        super().__init__(inner)
        self.max_batch_texts = max_batch_texts
        self.nice = nice
        """Niceness the worker threads add to their own (Linux; see ``Limits.model_nice``)."""
        self.max_call_tokens = max_call_tokens
        """Estimated padded tokens merged into one model call (16 of the model's 1,024-token
        batches: in-process, 2,000 SciFact sentences cost 3.1 ms CPU per text in one call, 4.0
        in calls of 128, 6.5 in calls of 16 before small calls were cut by length, ~3.7 after,
        so calls should be large); the longer rest of what is waiting becomes the next call."""
        self.merge = batch_invariant(inner) if merge is None else merge
        self._metrics = metrics
        self._queue: queue.PriorityQueue[_Work] = queue.PriorityQueue()
        self._query_calls = threading.Lock()
        """Held by the worker embedding queries: one query call at a time (``_embed_queries``)."""
        self._parked_queries: list[_Work] = []
        self._parked_lock = threading.Lock()
        self._seq = itertools.count()
        self._threads = [
            threading.Thread(target=self._run, name=f"semkit-model-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        for t in self._threads:
            t.start()

    # --- the Embedder surface (the rest comes from EmbedderWrapper) ---------------------------

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        return self.submit(items, kind).result()

    # --- queueing --------------------------------------------------------------------------

    def submit(self, items: Sequence[Any], kind: Kind = "document") -> Future[EmbeddingResult]:
        """Queue ``items``; the future gives their vectors (await it with asyncio.wrap_future)."""
        check_kind(kind)
        texts = check_texts(items)
        future: Future[EmbeddingResult] = Future()
        self._queue.put(self._work(texts, kind, future))
        return future

    def submit_async(self, items: Sequence[Any], kind: Kind = "document") -> asyncio.Future[EmbeddingResult]:
        """``submit`` for a caller on an event loop: the returned future belongs to the running
        loop, and a model call settles all its waiters on a loop with one ``call_soon_threadsafe``
        (measured under 16 single-text clients: each thread hand-off costs the loop far more than
        the bookkeeping, as the woken thread contends for the GIL)."""
        check_kind(kind)
        texts = check_texts(items)
        waiter: asyncio.Future[EmbeddingResult] = asyncio.get_running_loop().create_future()
        self._queue.put(self._work(texts, kind, Future(), waiter))
        return waiter

    def _work(self, texts: list[str], kind: Kind, future: Future[EmbeddingResult],
              waiter: asyncio.Future[EmbeddingResult] | None = None) -> _Work:
        # Queries are small and someone is waiting on each: they go ahead of bulk documents.
        return _Work(0 if kind == "query" else 1, next(self._seq), texts, kind, future, waiter)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for t in self._threads:
            t.join(timeout=30)

    def _run(self) -> None:
        lower_thread_priority(self.nice)
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            if not self.merge:
                self._embed([first])
            elif first.kind == "query" and len(self._threads) > 1:
                self._embed_queries(first)
            else:
                self._embed(self._merge(first))

    def _embed_queries(self, first: _Work) -> None:
        """Queries run one model call at a time. A query is a few milliseconds of one thread, so
        a second query call beside the first only takes a core from the event loop and the store
        threads, which are what a search waits for (measured at 16 search clients: 218-219 q/s
        against 201-204 with two query calls at once). A worker that finds a query while another
        is embedding queries parks it and goes back to the queue (document work still gets both
        workers); the worker in the call takes the parked ones next, with whatever queued."""
        with self._parked_lock:
            self._parked_queries.append(first)
        # Park first, then try: whoever holds the lock checks again after letting go, so a
        # query parked while it was held is never left behind.
        while self._parked_queries and self._query_calls.acquire(blocking=False):
            try:
                with self._parked_lock:
                    parked, self._parked_queries = self._parked_queries, []
                if parked:
                    self._embed(self._merge(parked[0], parked[1:]))
            finally:
                self._query_calls.release()

    def _merge(self, first: _Work, also: Sequence[_Work] = ()) -> list[_Work]:
        """``first`` (the oldest waiting work) and the waiting work of its kind nearest to it in
        length: everything waiting (up to ``max_batch_texts``) is taken, sorted by how far its
        longest text is from ``first``'s, and the nearest go in until ``max_call_tokens``
        estimated padded tokens; the rest goes back to the queue in its place (same priority and
        age), where the next free worker takes it as its own group. Each model call thus holds
        texts of similar lengths, the oldest work is never passed over, and the model's own
        token-budget batching (``models/local.py``) pads little within the call."""
        taken: list[_Work] = list(also)
        size = len(first.texts) + sum(len(w.texts) for w in also)
        other: list[_Work] = []
        while size < self.max_batch_texts:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP or nxt.kind != first.kind or size + len(nxt.texts) > self.max_batch_texts:
                other.append(nxt)
                break
            taken.append(nxt)
            size += len(nxt.texts)
        anchor = _longest_chars(first)
        taken.sort(key=lambda w: abs(_longest_chars(w) - anchor))
        batch = [first]
        tokens = _estimated_tokens(first)
        for n, work in enumerate(taken):
            cost = _estimated_tokens(work)
            if tokens + cost > self.max_call_tokens:
                other.extend(taken[n:])
                break
            batch.append(work)
            tokens += cost
        for work in other:
            self._queue.put(work)
        return batch

    def _embed(self, batch: list[_Work]) -> None:
        live = [w for w in batch if (w.waiter is None or not w.waiter.cancelled())
                and w.future.set_running_or_notify_cancel()]
        if not live:
            return
        texts = [t for w in live for t in w.texts]
        try:
            result = self.inner.embed_result(texts, live[0].kind)
        except BaseException as exc:  # handed to every waiting caller, who raises it
            if len(live) > 1:
                # One bad input must not fail its neighbours: run each request on its own.
                outcomes: list[tuple[_Work, EmbeddingResult | None, BaseException | None]] = []
                for w in live:
                    try:
                        outcomes.append((w, self.inner.embed_result(w.texts, w.kind), None))
                    except BaseException as own:
                        outcomes.append((w, None, own))
                _deliver(outcomes)
                return
            _deliver([(live[0], None, exc)])
            return
        if self._metrics is not None:
            model = self.inner.id
            self._metrics.model_batches.labels(model).inc()
            self._metrics.embeddings.labels(model).inc(len(texts) - result.cached)
            if result.cached:
                self._metrics.cache_hits.labels(model).inc(result.cached)
        start = 0
        done: list[tuple[_Work, EmbeddingResult | None, BaseException | None]] = []
        for w in live:
            n = len(w.texts)
            part = np.ascontiguousarray(result.vectors[start:start + n])
            # Tokens and cache hits belong to the merged call; callers count their own usage,
            # from their texts' own counts where the model reports them.
            text_tokens = None if result.text_tokens is None else result.text_tokens[start:start + n]
            text_truncated = None if result.text_truncated is None else result.text_truncated[start:start + n]
            done.append((w, EmbeddingResult(part, text_tokens=text_tokens, text_truncated=text_truncated), None))
            start += n
        _deliver(done)


def _deliver(outcomes: list[tuple[_Work, EmbeddingResult | None, BaseException | None]]) -> None:
    """Hand each work its result or error: thread callers through their ``Future``, event-loop
    callers with one ``call_soon_threadsafe`` per loop for the whole model call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[EmbeddingResult], Any, Any]]] = {}
    for work, result, exc in outcomes:
        if work.waiter is None:
            if exc is not None:
                work.future.set_exception(exc)
            else:
                work.future.set_result(result)  # type: ignore[arg-type]
        else:
            by_loop.setdefault(work.waiter.get_loop(), []).append((work.waiter, result, exc))
    for loop, waiters in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed (server shutting down): nobody waits
            loop.call_soon_threadsafe(_settle, waiters)


def _settle(waiters: list[tuple[asyncio.Future[EmbeddingResult], Any, Any]]) -> None:
    """On the loop: settle the waiters a model call finished (skipping those cancelled meanwhile,
    e.g. a client that hung up)."""
    for waiter, result, exc in waiters:
        if waiter.done():
            continue
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(result)


_CHARS_PER_TOKEN = 4
"""Characters per token for grouping (a cheap estimate: the model tokenises exactly later)."""


def _longest_chars(work: _Work) -> int:
    return max((len(t) for t in work.texts), default=0)


def _estimated_tokens(work: _Work) -> int:
    """Padded tokens ``work`` costs in a call: its texts at its longest text's length."""
    return len(work.texts) * (2 + _longest_chars(work) // _CHARS_PER_TOKEN)


def lower_thread_priority(nice: int) -> None:
    """Add ``nice`` to the calling thread's niceness (Linux, where niceness is per thread; a
    no-op elsewhere, where it would be the whole process's, and when ``nice`` <= 0)."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # a sandbox that forbids it: run at the usual priority
        log.debug("could not lower the priority of model thread %d: %s", tid, exc)


def batch_invariant(model: Embedder) -> bool:
    """Whether a text's vector is the same whatever it is batched with (up to float noise): the
    one place the server decides whether to merge requests. A model says so itself with a
    ``batch_invariant`` attribute; without one, any int8 model is assumed to quantise per batch
    (onnxruntime's dynamic int8 does), everything else to be invariant."""
    declared = getattr(model, "batch_invariant", None)
    if declared is not None:
        return bool(declared)
    return getattr(model, "precision", None) != "int8"


class ModelPool:
    """Models by spec or embedder id, loaded once per process, each behind its batcher."""

    def __init__(self, *, cache: bool = True, cache_dir: str | None = None, workers: int = 1,
                 max_batch_texts: int = 256, metrics: Metrics | None = None, threads: int = 0,
                 nice: int = 0) -> None:
        self._cache = cache
        self._nice = nice
        self._threads = threads
        """Intra-op threads of each local model call (0: the model's default); see ``Limits.model_threads``."""
        self._cache_dir = cache_dir
        self._workers = workers
        self._max_batch = max_batch_texts
        self._metrics = metrics
        self._by_id: dict[str, BatchedEmbedder] = {}
        self._by_spec: dict[str, BatchedEmbedder] = {}
        self._lock = threading.Lock()

    @property
    def threads(self) -> int:
        """Intra-op threads each local model call is built with (0: the model's default)."""
        return self._threads

    @property
    def workers(self) -> int:
        """Model calls each model runs at once."""
        return self._workers

    def for_spec(self, spec: str) -> BatchedEmbedder:
        """The model ``spec`` names (``local``, ``local:all-MiniLM-L6-v2``...)."""
        with self._lock:
            found = self._by_spec.get(spec)
        if found is not None:
            return found
        model = build_model(spec, cache=self._cache, cache_dir=self._cache_dir, **self._options(spec))
        return self._register(model, spec)

    def peek(self, spec: str) -> BatchedEmbedder | None:
        """The model ``spec`` names if it is loaded already (never loads)."""
        with self._lock:
            return self._by_spec.get(spec)

    def for_sized_spec(self, spec: str, dimensions: int) -> BatchedEmbedder:
        """``spec`` asked for ``dimensions`` (a Matryoshka or API-sized variant)."""
        key = f"{spec}#dimensions={dimensions}"
        with self._lock:
            found = self._by_spec.get(key)
        if found is not None:
            return found
        model = build_model(spec, cache=self._cache, cache_dir=self._cache_dir, dimensions=dimensions,
                            **self._options(spec))
        return self._register(model, key)

    def _options(self, spec: str) -> dict[str, Any]:
        """Build options of ``spec``: the thread count for a local model (unless the operator
        set ``SEMKIT_LOCAL_THREADS``); other providers take none."""
        if not self._threads or os.environ.get("SEMKIT_LOCAL_THREADS"):
            return {}
        try:
            scheme, _ = registry.parse_spec(spec)
        except SemkitError:
            return {}  # building it will say what is wrong with the spec
        return {"threads": self._threads} if scheme == "local" else {}

    def for_id(self, embedder_id: str) -> BatchedEmbedder:
        """The model a collection recorded (``local:all-MiniLM-L6-v2@384``): the served model
        when it is the same (the usual case, so it shares its queue and thread setting), else
        built with the model's own defaults."""
        with self._lock:
            found = self._by_id.get(embedder_id)
        if found is not None:
            return found
        model = model_from_id(embedder_id, cache=self._cache, cache_dir=self._cache_dir)
        return self._register(model, None)

    def loaded(self) -> list[BatchedEmbedder]:
        with self._lock:
            return list(self._by_id.values())

    def _register(self, model: Embedder, spec: str | None) -> BatchedEmbedder:
        with self._lock:
            batched = self._by_id.get(model.id)
            if batched is None:
                batched = BatchedEmbedder(model, workers=self._workers, max_batch_texts=self._max_batch,
                                          metrics=self._metrics, nice=self._nice)
                self._by_id[model.id] = batched
            if spec is not None:
                self._by_spec[spec] = batched
            return batched

    def close(self) -> None:
        with self._lock:
            models = list(self._by_id.values())
            self._by_id.clear()
            self._by_spec.clear()
        for m in models:
            m.close()
