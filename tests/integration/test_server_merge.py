"""The server's request merger groups waiting work by length, never passes over the oldest, and
gives every caller the vectors the model gives alone (real bundled model, real sentences)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from benchmarks._data import real_sentences

from semkit.models.base import EmbedderWrapper, EmbeddingResult
from semkit.models.local import PAD_SLACK_RATIO, PAD_SLACK_TOKENS, budget_batches, load_local
from semkit.server.models import BatchedEmbedder, ModelPool
from semkit.types import Kind


class Recording(EmbedderWrapper):
    """The real model, recording the texts of each call; the first call waits for ``release``
    so the test can fill the queue behind it."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        if not self.calls:
            self.entered.set()
            self.release.wait(60)
        self.calls.append(list(items))
        return self.inner.embed_result(items, kind)


def test_waiting_requests_are_grouped_by_length_and_vectors_are_unchanged() -> None:
    model = load_local("all-MiniLM-L6-v2")
    sentences = [s for s in real_sentences(200) if 40 <= len(s) <= 120][:12]
    short = sentences[:8]
    long = [" ".join(sentences[i:i + 6]) for i in range(4)]  # ~6x longer each
    recorder = Recording(model)
    # 150 estimated tokens per call: the 8 short ones (~103) fit together, the long ones (~70 each) two at a time
    batched = BatchedEmbedder(recorder, workers=1, max_call_tokens=150, merge=True)
    try:
        blocker = batched.submit(["the first request, embedded alone while the others queue"])
        assert recorder.entered.wait(60)
        interleaved = [t for pair in zip(short, long + [None] * 4, strict=True) for t in pair if t is not None]
        futures = [batched.submit([t]) for t in interleaved]
        recorder.release.set()
        blocker.result(60)
        results = [f.result(60).vectors[0] for f in futures]
    finally:
        batched.close()
    alone = model.embed(interleaved)
    assert np.array_equal(np.stack(results), alone)  # bit-identical to the model's own vectors
    later = recorder.calls[1:]
    assert sorted(t for call in later for t in call) == sorted(interleaved)
    assert later[0][0] == interleaved[0]  # the oldest waiting request goes first
    for call in later:  # no call mixes a short text with a long one
        assert all(t in short for t in call) or all(t in long for t in call), call
    assert any(len(call) > 1 for call in later)  # and requests were merged


def test_callers_on_an_event_loop_get_the_vectors_of_one_merged_call() -> None:
    model = load_local("all-MiniLM-L6-v2")
    texts = [s for s in real_sentences(100) if 40 <= len(s) <= 120][:6]
    recorder = Recording(model)
    batched = BatchedEmbedder(recorder, workers=1, merge=True)

    async def main() -> list[np.ndarray]:
        blocker = batched.submit_async(["the first request, embedded alone while the others queue"])
        await asyncio.to_thread(recorder.entered.wait, 60)
        waiters = [batched.submit_async([t]) for t in texts]
        hung_up = batched.submit_async([texts[0]])
        hung_up.cancel()  # a client that went away: skipped, its neighbours still answered
        recorder.release.set()
        await blocker
        return [(await w).vectors[0] for w in waiters]

    try:
        got = asyncio.run(asyncio.wait_for(main(), 120))
    finally:
        batched.close()
    assert np.array_equal(np.stack(got), model.embed(texts))
    assert sorted(recorder.calls[1]) == sorted(texts)  # the waiting requests went in one call


def test_a_small_call_of_mixed_lengths_is_cut_where_padding_would_cost_more_than_a_call() -> None:
    slack = (PAD_SLACK_TOKENS, PAD_SLACK_RATIO)
    lengths = np.array([40, 40, 35, 34, 33, 20, 15, 14])  # sorted longest first, as the model sorts them
    # 34 is 6 under the width 40 (within the slack), 33 is 7 under; 15 and 14 within 6 of 20
    assert budget_batches(lengths, 1024, 256, pad_slack=slack) == [(0, 4), (4, 5), (5, 8)]
    assert budget_batches(lengths, 1024, 256) == [(0, 8)]  # the budget alone pads all to 40
    assert budget_batches(np.array([200, 190, 181, 179]), 1024, 256, pad_slack=slack) == [(0, 3), (3, 4)]  # 10%
    assert budget_batches(lengths, 80, 256, pad_slack=slack)[0] == (0, 2)  # the budget still caps a batch
    assert budget_batches(np.array([], dtype=np.int64), 1024, 256, pad_slack=slack) == []


def test_merged_single_text_requests_get_the_vectors_each_text_gets_alone() -> None:
    model = load_local("all-MiniLM-L6-v2")
    texts = real_sentences(400)[::25]  # 16 sentences of mixed lengths, as 16 single-text clients send
    batched = BatchedEmbedder(model, workers=2, merge=True)
    try:
        futures = [batched.submit([t]) for t in texts]
        merged = np.stack([f.result(60).vectors[0] for f in futures])
    finally:
        batched.close()
    alone = np.stack([model.embed([t])[0] for t in texts])
    assert np.array_equal(merged, alone)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_pool_builds_local_models_with_its_threads_and_runs_them_at_lower_priority() -> None:
    pool = ModelPool(cache=False, workers=1, threads=3, nice=5)
    before = set(threading.enumerate())
    try:
        batched = pool.for_spec("local")
        session = batched.inner._runner.session  # the onnxruntime session the model was built with
        assert session.get_session_options().intra_op_num_threads == 3
        batched.embed(["the worker thread has started"])
        (worker,) = [t for t in set(threading.enumerate()) - before if t.name.startswith("semkit-model")]
        assert _niceness(worker.native_id) == _niceness(threading.get_native_id()) + 5
    finally:
        pool.close()


def _niceness(tid: int | None) -> int:
    with open(f"/proc/{os.getpid()}/task/{tid}/stat", encoding="ascii") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[16])



class Overlap(EmbedderWrapper):
    """The real model, counting how many of its calls run at once, per kind."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()
        self.running: dict[str, int] = {"query": 0, "document": 0}
        self.most: dict[str, int] = {"query": 0, "document": 0}
        self.calls: dict[str, int] = {"query": 0, "document": 0}

    def embed_result(self, items: Sequence[Any], kind: Kind = "document") -> EmbeddingResult:
        with self._lock:
            self.running[kind] += 1
            self.calls[kind] += 1
            self.most[kind] = max(self.most[kind], self.running[kind])
        try:
            return self.inner.embed_result(items, kind)
        finally:
            with self._lock:
                self.running[kind] -= 1


def test_queries_run_one_call_at_a_time_and_documents_use_every_worker() -> None:
    model = load_local("all-MiniLM-L6-v2")
    queries = [s for s in real_sentences(400) if 20 <= len(s) <= 120][:120]
    documents = [" ".join(queries[i:i + 8]) for i in range(0, 96, 8)]
    overlap = Overlap(model)
    batched = BatchedEmbedder(overlap, workers=2, merge=True)
    try:
        with ThreadPoolExecutor(32) as pool:
            query_futures = list(pool.map(lambda q: batched.submit([q], "query"), queries))
            document_futures = list(pool.map(lambda d: batched.submit([d], "document"), documents))
            got_queries = [f.result(120).vectors[0] for f in query_futures]
            got_documents = [f.result(120).vectors[0] for f in document_futures]
    finally:
        batched.close()
    assert overlap.most["query"] == 1  # never two query calls at once
    assert overlap.calls["query"] < len(queries)  # the waiting ones were merged
    assert overlap.most["document"] <= 2
    assert np.allclose(np.stack(got_queries), model.embed(queries, "query"), atol=1e-6)
    assert np.allclose(np.stack(got_documents), model.embed(documents), atol=1e-6)
