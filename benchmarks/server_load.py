"""``semkit serve`` under load, as an operator runs it: throughput per concurrency level, an
overload phase, and a mixed soak. Everything on 127.0.0.1, with bounded duration.

Data: 2,000 distinct real SciFact sentences (the shared data, split as ``_vectors.py`` does)
and the SciFact queries. The server is ``semkit serve --no-auth`` on a fresh embedded store,
started here as its own process; clients are async (aiohttp on uvloop) tasks spread over ``--procs``
client processes. Clients honour ``Retry-After-Ms`` (else ``Retry-After``) on 503/429 as OpenAI's client does
(``--no-backoff`` makes them retry at once).

Phases (``--phases``, default all five):

- ``embed1`` / ``embed16``: ``POST /v1/embeddings`` with 1 or 16 texts per request at each
  ``--levels`` concurrency; texts/s, p50/p99 of answered requests, 503/429s and errors, and the
  ratio to in-process ``semkit.embed`` on the same texts (all in one call, and in calls of the
  request's size; for single texts also in calls of 16, the most 16 single-text clients can
  merge into one model call). Cache off on both sides (``--no-cache``), so every text is computed.
- ``search``: ``POST /v1/collections/load/search`` with a SciFact query and the server's
  default mode (hybrid) at each level; q/s, p50/p99. Cache off.
- ``overload``: ``--overload-clients`` (256) clients sending 16-text embedding requests and
  hybrid searches (half each), while one probe asks ``/healthz`` every 50 ms: p99 of accepted
  requests, p99 of the 503/429 answers, connection errors, ``/healthz`` p99.
- ``soak`` (``--soak-minutes``, default 10): ``--soak-clients`` clients doing 80% hybrid search,
  15% embeddings, 5% upserts, with the embedding cache on (the default) and
  ``semkit collections --db DIR`` run by a separate process every 30 s. Counts server crashes,
  5xx (503 sheds separately), failed operator commands, checks every acknowledged upsert is
  present at the end, and the server's RSS growth over the last 5 minutes (last half of a
  shorter run). Each client process upserts over ``--soak-upsert-ids`` ids (1,000): new records
  first, then overwrites, as a service keeps its records current. The collection reaches its
  size (4,000 records) within ~3 minutes, so the last 5 minutes show the server's own memory,
  which the target is about. With ``--soak-upsert-ids 0`` every upsert is a new record and the
  data grows by ~1.5 kB a record (its vector is held in memory for search): the soak then also
  counts the records added in that window, measures the server's memory per record afterwards
  (``measure_record_kb``), and prints the growth net of them beside the raw figure the verdict
  is judged on.

    python benchmarks/server_load.py --short                 # every phase, ~6 min: does it work?
    python benchmarks/server_load.py --rounds 3              # the issue's targets, ~35 min, quiet machine
    python benchmarks/server_load.py --phases overload --seconds 10
    python benchmarks/server_load.py --soak --soak-minutes 10

Every issue-18 target measured is printed as PASS/FAIL with its figures, and again at the end,
with the CPU model and load average.

The client processes share the machine's cores with the server: on a 2-vCPU machine that cost
is in every figure (the load average is printed with them).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import itertools
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

COLLECTION = "load"
CLIENT_LIBRARY = "aiohttp"
CLIENT_LOOP = "uvloop"
"""What the load clients use (``--client``)."""
N_TEXTS = 2000


# --- data --------------------------------------------------------------------------------------

def scifact_sentences(n: int = N_TEXTS) -> list[str]:
    """``n`` distinct SciFact sentences, in a fixed shuffled order (lengths mixed as in real use)."""
    from _vectors import _scifact_abstracts

    seen = dict.fromkeys(s for _, sentences in _scifact_abstracts() for s in sentences if len(s) > 20)
    texts = list(seen)
    random.Random(0).shuffle(texts)
    return texts[:n]


def scifact_queries() -> list[str]:
    from _data import data_dir

    with open(data_dir() / "scifact" / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"].strip() for line in fh if line.strip()]


# --- the server --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    db: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_server(tmp: Path, extra: Sequence[str]) -> Server:
    import httpx

    db = tmp / "kb"
    port = free_port()
    log = tmp / f"server-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "semkit", "serve", "--db", str(db), "--port", str(port),
                                 "--no-auth", "--log-level", "warning", *extra], stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return Server(url, db, proc, log)
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def fill(url: str, texts: list[str]) -> None:
    """Create the searched collection and upsert ``texts`` into it (embedded by the server)."""
    import httpx

    with httpx.Client(base_url=url, timeout=600) as client:
        r = client.post("/v1/collections", json={"name": COLLECTION, "model": "local"})
        if r.status_code not in (201, 409):
            raise SystemExit(f"create collection: HTTP {r.status_code}: {r.text[:300]}")
        for start in range(0, len(texts), 250):
            part = texts[start:start + 250]
            records = [{"id": f"t{start + i}", "text": t} for i, t in enumerate(part)]
            r = client.post(f"/v1/collections/{COLLECTION}/upsert", json={"records": records})
            if r.status_code != 200:
                raise SystemExit(f"upsert: HTTP {r.status_code}: {r.text[:300]}")


# --- clients -----------------------------------------------------------------------------------

@dataclass
class Workload:
    """What each client does: ``kind`` is embed, search, overload (half each) or soak (mixed)."""

    kind: str
    batch: int = 1
    backoff: bool = True
    read_retry_after_ms: bool = True
    """Wait what ``Retry-After-Ms`` says when present (as OpenAI's client does); False: whole
    seconds from ``Retry-After`` only (``--seconds-only-clients``)."""
    client: str = field(default_factory=lambda: CLIENT_LIBRARY)
    """The client library: aiohttp (lighter on the shared CPUs) or httpx (``--client``)."""
    loop: str = field(default_factory=lambda: CLIENT_LOOP)
    """The client processes' event loop: uvloop (less CPU per request) or asyncio (``--client-loop``)."""
    upsert_ids: int = 0
    """Soak upserts: 0 = each a new record; N = each client process cycles over N ids (new, then overwrites),
    so the collection stops growing and RSS shows the server's own memory (``--soak-upsert-ids``)."""
    ramp_s: float = 0.0
    """Seconds over which the clients start, evenly spread (load tools' spawn rate). With all of
    them starting at once, each client process must connect and send for 128 clients before
    it reads a single answer, and that client-side queue is in every first-request latency."""


@dataclass
class Outcome:
    kind: str
    status: int  # 0: connection error
    seconds: float
    units: int  # texts embedded, or 1
    finished: float = 0.0
    retry_after: bool = False  # a 503/429 carried Retry-After


@dataclass
class ClientReport:
    outcomes: list[Outcome] = field(default_factory=list)
    acked_ids: list[str] = field(default_factory=list)
    loop_lag: list[float] = field(default_factory=list)
    """How late the client process's own event loop ran a 10 ms timer: client-side queueing that is
    in every latency the clients measure."""


def _client_process(url: str, work: Workload, clients: int, seconds: float, texts: list[str],
                    queries: list[str], seed: int, phase: float, out: Any) -> None:
    if work.loop == "uvloop":
        import uvloop

        report = uvloop.run(_clients(url, work, clients, seconds, texts, queries, seed, phase))
    else:
        report = asyncio.run(_clients(url, work, clients, seconds, texts, queries, seed, phase))
    out.put(report)


async def _clients(url: str, work: Workload, clients: int, seconds: float, texts: list[str],
                   queries: list[str], seed: int, phase: float = 0.0) -> ClientReport:
    """``phase`` in [0, 1): where this process's clients fall among the other processes' in the
    ramp (``work.ramp_s``)."""
    import httpx

    report = ClientReport()
    rng = random.Random(seed)
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    upserts = iter(range(10**9))

    async def sample_loop_lag() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            report.loop_lag.append(max(0.0, time.perf_counter() - t0 - 0.01))

    lag_probe = asyncio.ensure_future(sample_loop_lag())

    async def start(index: int) -> None:
        if work.ramp_s > 0:
            await asyncio.sleep(work.ramp_s * (index + phase) / clients)

    def request() -> tuple[str, str, dict[str, Any], int]:
        kind = work.kind
        if kind == "overload":
            kind = "embed" if rng.random() < 0.5 else "search"
        elif kind == "soak":
            roll = rng.random()
            kind = "search" if roll < 0.80 else "embed" if roll < 0.95 else "upsert"
        if kind == "embed":
            n = work.batch if work.kind != "soak" else rng.choice((1, 4, 16))
            start = rng.randrange(len(texts))
            batch = [texts[(start + i) % len(texts)] for i in range(n)]
            return kind, "/v1/embeddings", {"model": "local", "input": batch}, n
        if kind == "search":
            return kind, f"/v1/collections/{COLLECTION}/search", {"query": rng.choice(queries), "k": 10}, 1
        serial = next(upserts)
        record_id = f"u{seed}-{serial % work.upsert_ids if work.upsert_ids else serial}"
        record = {"id": record_id, "text": rng.choice(texts), "metadata": {"client": seed}}
        return kind, f"/v1/collections/{COLLECTION}/upsert", {"records": [record]}, 1

    async def record(kind: str, body: dict[str, Any], units: int, status: int, took: float,
                     retry_after: str | None, retry_after_ms: str | None) -> None:
        report.outcomes.append(Outcome(kind, status, took, units, time.perf_counter(), retry_after is not None))
        if status == 200 and kind == "upsert":
            report.acked_ids.append(body["records"][0]["id"])
        if status in (429, 503) and work.backoff:
            # As OpenAI's Python client does: Retry-After-Ms first, else Retry-After.
            if retry_after_ms is not None and work.read_retry_after_ms:
                wait = float(retry_after_ms) / 1000
            else:
                wait = float(retry_after or 1)
            await asyncio.sleep(min(wait, max(0.0, stop - time.perf_counter())))

    if work.client == "aiohttp":
        # aiohttp costs the client processes less CPU per request than httpx: on 2 vCPUs shared
        # with the server, client-side queueing would otherwise show up as server latency.
        import aiohttp

        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(url, connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=120)) as session:

            async def aio_worker(index: int) -> None:
                await start(index)
                while time.perf_counter() < stop:
                    kind, path, body, units = request()
                    t0 = time.perf_counter()
                    retry_after = retry_after_ms = None
                    try:
                        async with session.post(path, json=body) as r:
                            await r.read()
                            status, retry_after = r.status, r.headers.get("Retry-After")
                            retry_after_ms = r.headers.get("Retry-After-Ms")
                    except (TimeoutError, aiohttp.ClientError, OSError):
                        status = 0
                    await record(kind, body, units, status, time.perf_counter() - t0, retry_after, retry_after_ms)

            await asyncio.gather(*(aio_worker(i) for i in range(clients)))
        await lag_probe
        return report

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker(index: int) -> None:
            await start(index)
            while time.perf_counter() < stop:
                kind, path, body, units = request()
                t0 = time.perf_counter()
                retry_after = retry_after_ms = None
                try:
                    r = await client.post(path, json=body)
                    status, retry_after = r.status_code, r.headers.get("retry-after")
                    retry_after_ms = r.headers.get("retry-after-ms")
                except httpx.TransportError:
                    status = 0
                await record(kind, body, units, status, time.perf_counter() - t0, retry_after, retry_after_ms)

        await asyncio.gather(*(worker(i) for i in range(clients)))
    await lag_probe
    return report


def run_clients(url: str, work: Workload, clients: int, seconds: float, texts: list[str],
                queries: list[str], procs: int) -> tuple[ClientReport, float]:
    """``clients`` async clients over ``min(procs, clients)`` processes; their merged report."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    n_procs = max(1, min(procs, clients))
    shares = [clients // n_procs + (1 if i < clients % n_procs else 0) for i in range(n_procs)]
    began = time.perf_counter()
    workers = [ctx.Process(target=_client_process,
                           args=(url, work, share, seconds, texts, queries, 1000 + i, i / n_procs, out))
               for i, share in enumerate(shares)]
    for p in workers:
        p.start()
    merged = ClientReport()
    for _ in workers:
        part = out.get(timeout=seconds + 300)
        merged.outcomes += part.outcomes
        merged.acked_ids += part.acked_ids
        merged.loop_lag += part.loop_lag
    for p in workers:
        p.join()
    return merged, time.perf_counter() - began


# --- figures -----------------------------------------------------------------------------------

def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


VERDICTS: list[tuple[str, bool, str]] = []
"""(target, met, figures) of every issue-18 target measured in this run; printed at the end."""


def verdict(target: str, met: bool, figures: str) -> None:
    VERDICTS.append((target, met, figures))
    print(f"  [{'PASS' if met else 'FAIL'}] {target}: {figures}", flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def scaling_verdicts(label: str, unit: str, rows: list[Row], baseline: dict[str, float] | None) -> None:
    """The issue's targets for a scaling phase: non-decreasing from 1 to 64 clients, and (embeddings)
    at 16+ clients >= 0.9x in-process ``semkit.embed`` in one call on the same texts; (search)
    q/s at 16 clients >= 1.5x at 1 client."""
    upto64 = [r for r in rows if r.level <= 64]
    if len(upto64) >= 2:
        # 3% slack for run-to-run noise: a level "decreases" when it is more than 3% below the best before it
        drops = [f"{b.level}<{a.level}" for a, b in itertools.pairwise(upto64)
                 if b.rate < 0.97 * max(r.rate for r in upto64 if r.level <= a.level)]
        figures = " -> ".join(f"{r.level}: {r.rate:.0f}" for r in upto64)
        verdict(f"{label}: {unit} non-decreasing 1->64 clients", not drops,
                figures + (f" (drops: {', '.join(drops)})" if drops else ""))
    if baseline:
        ceiling = baseline["one call"]
        high = [r for r in rows if r.level >= 16]
        if high:
            worst = min(high, key=lambda r: r.rate)
            verdict(f"{label}: at 16+ clients >= 0.9x in-process semkit.embed (one call, {ceiling:.0f} texts/s)",
                    worst.rate >= 0.9 * ceiling,
                    ", ".join(f"{r.level}: {r.rate / ceiling:.2f}x" for r in high))
    if label == "search":
        one = next((r for r in rows if r.level == 1), None)
        sixteen = next((r for r in rows if r.level == 16), None)
        if one and sixteen:
            verdict("search: q/s at 16 clients >= 1.5x at 1 client", sixteen.rate >= 1.5 * one.rate,
                    f"{sixteen.rate:.0f} / {one.rate:.0f} = {sixteen.rate / one.rate:.2f}x")


@dataclass
class Row:
    level: int
    rate: float
    p50: float
    p99: float
    shed: int
    shed_p99: float
    conn_errors: int
    other_errors: int


def summarise(report: ClientReport, elapsed: float, level: int, kinds: Sequence[str]) -> Row:
    mine = [o for o in report.outcomes if o.kind in kinds]
    ok = [o for o in mine if o.status == 200]
    shed = [o for o in mine if o.status in (429, 503)]
    return Row(level, sum(o.units for o in ok) / elapsed, pct([o.seconds for o in ok], 50),
               pct([o.seconds for o in ok], 99), len(shed), pct([o.seconds for o in shed], 99),
               sum(o.status == 0 for o in mine), sum(o.status not in (0, 200, 429, 503) for o in mine))


def print_rows(title: str, unit: str, rows: list[Row], baseline: dict[str, float] | None = None) -> None:
    print(f"\n{title}")
    head = f"{'clients':>7s} {unit:>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'503/429':>8s} {'conn err':>8s} {'other':>6s}"
    if baseline:
        head += "".join(f" {'vs ' + name:>14s}" for name in baseline)
    print(head)
    for r in rows:
        line = (f"{r.level:7d} {r.rate:9.1f} {r.p50:8.1f} {r.p99:8.1f} {r.shed:8d} {r.conn_errors:8d} "
                f"{r.other_errors:6d}")
        if baseline:
            line += "".join(f" {r.rate / v:13.2f}x" for v in baseline.values())
        print(line, flush=True)


def in_process(texts: list[str], batch: int, seconds: float, rounds: int = 1) -> dict[str, float]:
    """texts/s of in-process ``semkit.embed`` (cache off): all texts in one call, and in calls of
    ``batch``; for single texts also in calls of 16 random texts, the most 16 single-text
    clients can merge into one model call (the server cannot beat the model at that call size:
    small calls of mixed lengths pad more and use the cores less well); medians over ``rounds``."""
    import semkit

    model = semkit.model("local", cache=False)
    model.embed(texts[:64])  # warm-up
    sizes = [batch] if batch != 1 else [1, 16]
    one_calls: list[float] = []
    small_calls: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        t0 = time.perf_counter()
        model.embed(texts)
        one_calls.append(len(texts) / (time.perf_counter() - t0))
        for size in sizes:
            done = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                start = (done * 7919) % len(texts)
                model.embed([texts[(start + i) % len(texts)] for i in range(size)])
                done += size
            small_calls[size].append(done / (time.perf_counter() - t0))
    return {"one call": float(np.median(one_calls)),
            **{f"calls of {size}": float(np.median(rates)) for size, rates in small_calls.items()}}


# --- phases ------------------------------------------------------------------------------------

def scaling(url: str, work: Workload, levels: Sequence[int], seconds: float, texts: list[str],
            queries: list[str], procs: int, rounds: int = 1) -> list[Row]:
    """One row per level: the median over ``rounds`` interleaved rounds (levels in turn)."""
    kinds = ("embed",) if work.kind == "embed" else ("search",)
    run_clients(url, work, min(levels), min(2.0, seconds), texts, queries, procs)  # warm-up
    measured: dict[int, list[Row]] = {level: [] for level in levels}
    for _ in range(rounds):
        for level in levels:
            report, elapsed = run_clients(url, work, level, seconds, texts, queries, procs)
            measured[level].append(summarise(report, elapsed, level, kinds))
    return [median_row(rows) for rows in measured.values()]


def median_row(rows: list[Row]) -> Row:
    def med(name: str) -> float:
        return float(np.median([getattr(r, name) for r in rows]))

    return Row(rows[0].level, med("rate"), med("p50"), med("p99"), sum(r.shed for r in rows), med("shed_p99"),
               sum(r.conn_errors for r in rows), sum(r.other_errors for r in rows))


async def _probe_healthz(url: str, seconds: float) -> list[float]:
    import httpx

    latencies = []
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                await client.get("/healthz")
                latencies.append(time.perf_counter() - t0)
            except httpx.TransportError:
                latencies.append(float("inf"))
            await asyncio.sleep(0.05)
    return latencies


def overload(url: str, clients: int, seconds: float, texts: list[str], queries: list[str], procs: int,
             backoff: bool, read_ms: bool = True, warmup: float = 1.0, ramp: float = 0.0) -> None:
    import threading

    health: list[float] = []
    probe = threading.Thread(target=lambda: health.extend(asyncio.run(_probe_healthz(url, seconds + 1))))
    probe.start()
    work = Workload("overload", batch=16, backoff=backoff, read_retry_after_ms=read_ms, ramp_s=ramp)
    report, elapsed = run_clients(url, work, clients, seconds, texts, queries, procs)
    probe.join()
    honour = "clients honour Retry-After-Ms, else Retry-After" if read_ms else "clients honour Retry-After (whole s)"
    started = f"starting over {ramp:g} s" if ramp > 0 else "all starting at once"
    print(f"\noverload: {clients} clients ({started}) for {seconds:g} s, half 16-text /v1/embeddings, "
          f"half hybrid search ({honour if backoff else 'no backoff'})")
    print(f"{'requests':>9s} {'answered':>9s} {'acc p50':>8s} {'acc p99':>8s} {'503/429':>8s} {'shed p99':>9s} "
          f"{'conn err':>8s} {'other':>6s} {'healthz p99':>12s}")
    for kinds, label in ((("embed",), "embed16"), (("search",), "search"), (("embed", "search"), "all")):
        r = summarise(report, elapsed, clients, kinds)
        n = sum(o.kind in kinds for o in report.outcomes)
        answered = sum(o.kind in kinds and o.status == 200 for o in report.outcomes)
        print(f"{label:>9s} {answered:9d} {r.p50:8.1f} {r.p99:8.1f} {r.shed:8d} {r.shed_p99:9.1f} "
              f"{r.conn_errors:8d} {r.other_errors:6d} {pct(health, 99):12.1f}   ({n} requests)")
    # The first second holds the start: 256 clients connecting and sending within the ramp, the
    # hardest moment for refusals (the verdict counts it). Shown apart from the steady state.
    began = min((o.finished - o.seconds for o in report.outcomes), default=0.0)
    steady = ClientReport([o for o in report.outcomes if o.finished - o.seconds >= began + warmup])
    start = ClientReport([o for o in report.outcomes if o.finished - o.seconds < began + warmup])
    for part, label in ((start, f"first {warmup:g} s"), (steady, "after it")):
        r = summarise(part, elapsed, clients, ("embed", "search"))
        print(f"{label:>9s} {sum(o.status == 200 for o in part.outcomes):9d} {r.p50:8.1f} {r.p99:8.1f} {r.shed:8d} "
              f"{r.shed_p99:9.1f} {r.conn_errors:8d} {r.other_errors:6d} {'':>12s}   ({len(part.outcomes)} requests)")
    print(f"client processes' own event-loop lag (in every latency above): p50 {pct(report.loop_lag, 50):.1f} ms, "
          f"p99 {pct(report.loop_lag, 99):.1f} ms")
    every = summarise(report, elapsed, clients, ("embed", "search"))
    settled = summarise(steady, elapsed, clients, ("embed", "search"))
    shed = [o for o in report.outcomes if o.status in (429, 503)]
    verdict(f"overload ({clients} clients): p99 of accepted <= 2 s", every.p99 <= 2000, f"{every.p99:.0f} ms")
    verdict("overload: rejects are 503/429 + Retry-After within 50 ms (p99, whole run)",
            not shed or (every.shed_p99 <= 50 and all(o.retry_after for o in shed)),
            f"{len(shed)} rejected, p99 {every.shed_p99:.1f} ms over the whole run, "
            f"{settled.shed_p99:.1f} ms after the first {warmup:g} s, "
            f"{sum(not o.retry_after for o in shed)} without Retry-After" if shed else "none rejected")
    verdict("overload: zero connection errors", every.conn_errors == 0, str(every.conn_errors))
    verdict("overload: /healthz p99 <= 50 ms", pct(health, 99) <= 50,
            f"{pct(health, 99):.1f} ms ({len(health)} probes)")


def count_records(client: Any, into: list[tuple[float, int]], at: float) -> None:
    """Append (``at``, the soak collection's record count); a failed read is skipped (the soak
    reports the server's failures from its clients)."""
    import httpx

    try:
        r = client.get(f"/v1/collections/{COLLECTION}")
    except httpx.TransportError:
        return
    if r.status_code == 200:
        into.append((at, int(r.json()["count"])))


CALIBRATION_RECORDS = 10_000
"""New records upserted after the soak to measure what one costs the server in memory (~15 MB
at the ~1.5 kB measured each: well above the few MB by which the heap trimmer's timing moves RSS)."""


def measure_record_kb(server: Server, texts: list[str]) -> float:
    """The server's resident memory per new record (kB), measured in a collection of its own
    (so the figure does not depend on how large the soak left its collection): RSS before and
    after upserting ``CALIBRATION_RECORDS`` records of the soak's texts (cached embeddings, so
    the model allocates nothing new), each read after a search (the store mirrors new records
    in memory at its next search) and after the heap trimmer's period (freed request memory has
    gone back). The collection stays under the store's exact-search threshold (20,000 records),
    as the soak's does, so no graph is built that the soak did not have. A record's vector, id
    and keyword postings are the data itself: the soak subtracts them from its RSS growth."""
    import httpx

    settle = 6.0  # > heap.TRIM_CHECK_S: the trimmer has looked at least once
    name = "calibration"

    def upsert(client: httpx.Client, first: int, count: int) -> bool:
        for start in range(first, first + count, 500):
            end = min(start + 500, first + count)
            batch = [{"id": f"c{n}", "text": texts[n % len(texts)]} for n in range(start, end)]
            if client.post(f"/v1/collections/{name}/upsert", json={"records": batch}).status_code != 200:
                return False
        search = client.post(f"/v1/collections/{name}/search", json={"query": texts[0], "k": 10})
        return search.status_code == 200

    with httpx.Client(base_url=server.url, timeout=600) as client:
        if client.post("/v1/collections", json={"name": name, "model": "local"}).status_code != 201:
            return float("nan")
        if not upsert(client, 0, 1000):  # the collection's fixed costs, before the measurement
            return float("nan")
        time.sleep(settle)
        before = server.rss_mb()
        if not upsert(client, 1000, CALIBRATION_RECORDS):
            return float("nan")
        time.sleep(settle)
        return (server.rss_mb() - before) * 1024 / CALIBRATION_RECORDS


def soak(tmp: Path, duration: float, clients: int, texts: list[str], queries: list[str], procs: int,
         upsert_ids: int = 0) -> None:
    import threading

    import httpx

    server = start_server(tmp, [])  # as an operator runs it: embedding cache on
    try:
        fill(server.url, texts)
        rss: list[tuple[float, float]] = []
        records: list[tuple[float, int]] = []
        """(seconds into the soak, records in the collection): what the data itself grew by."""
        operator: list[int] = []
        done = threading.Event()
        t_start = time.perf_counter()

        def watch() -> None:
            next_command = time.perf_counter() + 30
            with httpx.Client(base_url=server.url, timeout=30) as probe:
                while not done.wait(2.0):
                    if server.proc.poll() is not None:
                        return
                    rss.append((time.perf_counter() - t_start, server.rss_mb()))
                    count_records(probe, records, time.perf_counter() - t_start)
                    if time.perf_counter() >= next_command:
                        next_command += 30
                        run = subprocess.run([sys.executable, "-m", "semkit", "collections", "--db",
                                              str(server.db)], capture_output=True, timeout=120)
                        operator.append(run.returncode)

        watcher = threading.Thread(target=watch)
        watcher.start()
        report, elapsed = run_clients(server.url, Workload("soak", upsert_ids=upsert_ids), clients, duration,
                                      texts, queries, procs)
        done.set()
        watcher.join()
        crashed = server.proc.poll() is not None
        missing = -1
        heap: dict[str, Any] | None = None
        record_kb = float("nan")
        if not crashed:
            record_kb = measure_record_kb(server, texts)
            with httpx.Client(base_url=server.url, timeout=300) as client:
                found: set[str] = set()
                for start in range(0, len(report.acked_ids), 5000):
                    part = report.acked_ids[start:start + 5000]
                    r = client.post(f"/v1/collections/{COLLECTION}/get", json={"ids": part})
                    found |= {rec["id"] for rec in r.json()} if r.status_code == 200 else set()
                missing = len(set(report.acked_ids) - found)
                heap = client.get("/healthz").json().get("heap")
    finally:
        server.stop()
    statuses = [o.status for o in report.outcomes]
    # RSS growth over the last 5 minutes (the last half of a shorter run): flat after warm-up
    window = min(300.0, elapsed / 2)
    late = [mb for t, mb in rss if t >= elapsed - window]
    growth = (late[-1] - late[0]) / late[0] * 100 if len(late) >= 2 else float("nan")
    counted = [n for t, n in records if t >= elapsed - window]
    added = counted[-1] - counted[0] if len(counted) >= 2 else 0
    data_mb = added * record_kb / 1024
    net = (late[-1] - late[0] - data_mb) / late[0] * 100 if len(late) >= 2 else float("nan")
    upserted = f"over {upsert_ids} ids per client process" if upsert_ids else "of new records"
    print(f"\nsoak: {clients} clients for {elapsed:.0f} s (80% hybrid search, 15% embeddings, 5% upserts "
          f"{upserted}; `semkit collections` every 30 s)")
    for kind in ("search", "embed", "upsert"):
        ok = [o.seconds for o in report.outcomes if o.kind == kind and o.status == 200]
        print(f"  {kind:7s} {len(ok):7d} ok  {len(ok) / elapsed:7.1f}/s  p50 {pct(ok, 50):7.1f} ms  "
              f"p99 {pct(ok, 99):7.1f} ms")
    print(f"  server crashed: {crashed}; 5xx other than 503: {sum(s >= 500 and s != 503 for s in statuses)}; "
          f"503 shed: {statuses.count(503)}; 429: {statuses.count(429)}; connection errors: {statuses.count(0)}; "
          f"other 4xx: {sum(400 <= s < 500 and s != 429 for s in statuses)}")
    shed_by_kind = {k: sum(o.kind == k and o.status == 503 for o in report.outcomes)
                    for k in ("search", "embed", "upsert")}
    if any(shed_by_kind.values()):
        print("  503 by request kind: " + ", ".join(f"{k} {n}" for k, n in shed_by_kind.items()))
    print(f"  operator commands: {len(operator)} run, {sum(rc != 0 for rc in operator)} failed")
    print(f"  acknowledged upserts: {len(report.acked_ids)}, missing at the end: {missing}")
    if rss:
        print(f"  server RSS: {rss[0][1]:.0f} MB at start, {rss[-1][1]:.0f} MB at the end; growth over the last "
              f"{window / 60:.1f} min: {growth:+.1f}%")
        minute_ends = [mb for i, (t, mb) in enumerate(rss)
                       if i == len(rss) - 1 or int(t // 60) != int(rss[i + 1][0] // 60)]
        per_minute = [f"{mb:.0f}" for mb in minute_ends]
        print(f"  server RSS at the end of each minute (MB): {' '.join(per_minute)}")
        print(f"  records added over the last {window / 60:.1f} min: {added}; the server holds "
              f"{record_kb:.2f} kB per record (measured after the soak)")
    if heap:
        print(f"  heap trimmer: {heap.get('trims')} trims gave back {heap.get('released_mb')} MB "
              f"in {heap.get('trim_ms')} ms all told")
    five_xx = sum(s >= 500 for s in statuses)
    verdict(f"soak ({elapsed / 60:.1f} min): 0 crashes", not crashed, f"crashed: {crashed}")
    verdict("soak: 0 5xx", five_xx == 0, f"{five_xx} (503 sheds among them: {statuses.count(503)})")
    verdict("soak: operator commands all succeed", bool(operator) and not any(operator),
            f"{len(operator)} run, {sum(rc != 0 for rc in operator)} failed")
    verdict("soak: every acknowledged upsert present", missing == 0,
            f"{len(report.acked_ids)} acknowledged, {missing} missing")
    verdict(f"soak: RSS growth over the last {window / 60:.1f} min <= 2%", growth <= 2.0,
            f"{growth:+.2f}% ({late[0]:.0f} -> {late[-1]:.0f} MB)" if len(late) >= 2 else "too few samples")
    if added:
        # Not a target of its own: with a new record on every upsert the data grows, and its
        # size is no leak; this line shows how much of the growth it is.
        print(f"  (growth net of the {added} records added, {data_mb:.1f} MB at {record_kb:.2f} kB each: {net:+.2f}%)")


PHASES = ["embed1", "embed16", "search", "overload", "soak"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", nargs="+", default=PHASES, choices=PHASES)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    ap.add_argument("--seconds", type=float, default=10.0, help="Duration of each level (and of the overload)")
    ap.add_argument("--rounds", type=int, default=1, help="Rounds of each scaling phase; medians are reported")
    ap.add_argument("--procs", type=int, default=2, help="Client processes")
    ap.add_argument("--overload-clients", type=int, default=256)
    ap.add_argument("--no-backoff", action="store_true", help="Clients retry 503/429 at once")
    ap.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp",
                    help="Client library of the load processes (aiohttp costs less CPU per request)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="Overload: seconds at the start (the clients connecting) shown apart from the rest")
    ap.add_argument("--ramp", type=float, default=0.5, metavar="SECONDS",
                    help="Overload: the clients start evenly over this many seconds (0: all at once, so the "
                         "first requests also wait for their own process to send everyone else's)")
    ap.add_argument("--seconds-only-clients", action="store_true",
                    help="Clients ignore Retry-After-Ms and wait the whole seconds of Retry-After")
    ap.add_argument("--client-loop", choices=["uvloop", "asyncio"], default="uvloop",
                    help="Event loop of the load processes (uvloop costs less CPU per request)")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="An extra argument for `semkit serve` (repeat; e.g. --serve-arg=--store-threads=1)")
    ap.add_argument("--queue", action="append", default=[], metavar="CLASS=N", help="semkit serve --queue")
    ap.add_argument("--soak", action="store_true", help="Run only the mixed soak (same as --phases soak)")
    ap.add_argument("--soak-minutes", type=float, default=10.0, help="Soak duration, minutes (the issue asks 10)")
    ap.add_argument("--soak-clients", type=int, default=16)
    ap.add_argument("--soak-upsert-ids", type=int, default=1000, metavar="N",
                    help="Each soak client process upserts over N ids, new then overwrites, so the collection "
                         "stops growing and RSS growth is the server's own; 0: a new record every time (the data "
                         "grows, and the growth net of it is printed too)")
    ap.add_argument("--short", action="store_true",
                    help="A quick check that every phase works: levels 1 4 16 64, 3 s each, 5 s overload, "
                         "1-minute soak (figures indicative only)")
    args = ap.parse_args()
    global CLIENT_LIBRARY, CLIENT_LOOP
    CLIENT_LIBRARY, CLIENT_LOOP = args.client, args.client_loop
    if CLIENT_LOOP == "uvloop" and importlib.util.find_spec("uvloop") is None:
        print("uvloop is not installed: the load clients run on asyncio's own loop")
        CLIENT_LOOP = "asyncio"
    if CLIENT_LIBRARY == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
        print("aiohttp is not installed: the load clients use httpx, whose own CPU cost inflates "
              "latencies on a 2-vCPU machine (pip install aiohttp)")
        CLIENT_LIBRARY = "httpx"
    if args.short:
        args.levels, args.seconds, args.soak_minutes, args.rounds = [1, 4, 16, 64], 3.0, 1.0, 1
    phases = ["soak"] if args.soak else args.phases
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    texts = scifact_sentences()
    queries = scifact_queries()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); load average at start: {load_average()}")
    print(f"{len(texts)} SciFact sentences, {len(queries)} queries; phases: {' '.join(phases)}; "
          f"levels {args.levels}, {args.seconds:g} s each, {args.rounds} round(s) (medians); "
          f"clients: {CLIENT_LIBRARY} on {CLIENT_LOOP} in {args.procs} processes"
          + ("; SHORT run: figures indicative only" if args.short else ""), flush=True)
    crashed = False
    with tempfile.TemporaryDirectory(prefix="semkit-bench-load-") as tmpdir:
        tmp = Path(tmpdir)
        served = [p for p in phases if p != "soak"]
        if served:
            queue_args = [a for q in args.queue for a in ("--queue", q)]
            server = start_server(tmp, ["--no-cache", *queue_args, *args.serve_arg])
            try:
                if {"search", "overload"} & set(served):
                    fill(server.url, texts)
                for phase in served:
                    if phase.startswith("embed"):
                        batch = int(phase.removeprefix("embed"))
                        rows = scaling(server.url, Workload("embed", batch=batch, backoff=not args.no_backoff),
                                       args.levels, args.seconds, texts, queries, args.procs, args.rounds)
                        base = in_process(texts, batch, min(args.seconds, 5.0), args.rounds)
                        print_rows(f"/v1/embeddings, {batch} text(s) per request (in-process semkit.embed: "
                                   + ", ".join(f"{k} {v:.0f} texts/s" for k, v in base.items())
                                   + f"); load {load_average()}", "texts/s", rows, base)
                        scaling_verdicts(f"embeddings x{batch}", "texts/s", rows, base)
                    elif phase == "search":
                        rows = scaling(server.url, Workload("search", backoff=not args.no_backoff), args.levels,
                                       args.seconds, texts, queries, args.procs, args.rounds)
                        print_rows(f"/search, default mode (hybrid), k=10; load {load_average()}", "q/s", rows)
                        scaling_verdicts("search", "q/s", rows, None)
                    else:
                        overload(server.url, args.overload_clients, args.seconds, texts, queries, args.procs,
                                 not args.no_backoff, not args.seconds_only_clients, args.warmup, args.ramp)
                crashed = server.proc.poll() is not None
            finally:
                server.stop()
            print(f"\nserver crashed: {crashed}; load average: {load_average()}")
        if "soak" in phases:
            soak(tmp, args.soak_minutes * 60, args.soak_clients, texts, queries, args.procs,
                 args.soak_upsert_ids)
    print(f"\nCPU: {cpu_model()}; load average at the end: {load_average()}"
          + (" (SHORT run: indicative only)" if args.short else ""))
    print(f"targets met: {sum(ok for _, ok, _ in VERDICTS)} of {len(VERDICTS)}")
    for target, ok, figures in VERDICTS:
        print(f"  [{'PASS' if ok else 'FAIL'}] {target}: {figures}")


if __name__ == "__main__":
    main()
