"""Index files and folders into a collection, incrementally: ``index_paths``.

Records: one per chunk, id ``<source>#<chunk index>`` where ``source`` is the file's path
relative to the folder given (for a file given directly: its name). Metadata:

- ``source``, ``path`` (absolute), ``root`` (absolute folder the source is relative to)
- ``title`` (first heading / HTML title / PDF or DOCX properties / file name), ``section``
  (heading path under the title, ``" > "``-joined; for CSV/JSONL the row's title), ``page``
  (PDF, 1-based), ``row`` (CSV/JSONL)
- ``chunk`` (0-based), ``chunks`` (per file), ``start``/``end`` (character offsets in the
  text read from the file), ``tokens``
- ``file_hash`` (SHA-256 of the bytes), ``mtime``, ``size``, ``format``, ``settings``
  (the chunking options asked for)

What is embedded is ``"<title> > <section>\\n\\n<chunk>"`` (the header cut to fit the model's
context); the record's text is the plain chunk. Short chunks out of context ("Preheat to 220
°C") retrieve far better with their document's title; snippets and keyword search stay
clean. ``Collection.reembed`` embeds the stored texts, so it drops the header: re-index
instead when changing model.

Incremental: the collection itself is the manifest. One metadata scan at the start gives each
indexed source's hash, settings and chunk count. A file whose bytes and settings are unchanged
(and whose chunks are all present) is skipped without reading it further or loading the model.
A changed file is re-chunked; chunks whose text, title and section are unchanged keep their
vector, the others are embedded; its records are upserted, then records past its new chunk
count are deleted (a crash in between leaves mixed hashes, which the next run sees as changed).
Files under an indexed folder that no longer exist lose their records.

Failures: a file that cannot be read (permission, corrupt PDF, binary data, over
``max_file_bytes``, unsupported) is reported in ``IndexReport.failed`` and keeps whatever it
had indexed before; the run goes on. A file read successfully but holding no text loses its
old records (and is reported). Errors of the model or the store (a provider outage, a full
disk) stop the run: they are not about one file. Everything written before stays, and a
re-run resumes where it stopped.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput
from .chunking import (
    Chunker,
    TokenCounter,
    counter_for_model,
    default_chunk_tokens,
    default_overlap,
    truncate_to_tokens,
)
from .readers import SUPPORTED_SUFFIXES, Document, UnreadableFile, is_supported, read_bytes

if TYPE_CHECKING:
    from ..collection import Collection

DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "__MACOSX"})
"""Folder names never descended into (besides hidden ``.name`` folders such as ``.git``)."""

SETTINGS_VERSION = 1
"""Bumped when chunking changes in a way that should re-chunk unchanged files."""

Progress = Callable[[int, int, str], None]
"""``progress(files_done, files_total, current_source)``."""


@dataclass(frozen=True)
class FileProblem:
    source: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class IndexReport:
    """What one ``index_paths`` run did."""

    collection: str
    roots: list[str] = field(default_factory=list)
    seen: int = 0
    """Files of a supported type found (or named)."""
    indexed: list[str] = field(default_factory=list)
    """Sources new or changed, and written."""
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    """Sources whose file is gone: their records were deleted."""
    failed: list[FileProblem] = field(default_factory=list)
    warnings: list[FileProblem] = field(default_factory=list)
    """Read, but with a caveat (replacement decoding, skipped rows or pages)."""
    ignored: int = 0
    """Files inside folders skipped for their type or by --include/--exclude."""
    chunks_written: int = 0
    chunks_deleted: int = 0
    embedded: int = 0
    """Chunk texts sent to the model (its cache may still have answered some)."""
    cached: int = 0
    """Of those, answered by the embedding cache (a re-run after a crash pays only the rest)."""
    reused: int = 0
    """Chunks of changed files whose vector was kept because their text did not change."""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SourceFile:
    path: Path
    """Absolute path (symlinks not resolved)."""
    root: Path
    source: str
    """Path relative to ``root``, with ``/``."""


@dataclass
class Discovery:
    files: list[SourceFile]
    folders: list[Path]
    problems: list[FileProblem]
    ignored: int


def discover(paths: Sequence[str | os.PathLike[str]], *, include: Sequence[str] = (),
             exclude: Sequence[str] = ()) -> Discovery:
    """Supported files under ``paths`` (folders recursively; hidden and ``SKIP_DIRS`` folders
    skipped; symlinked folders not followed, so link loops cannot hang the walk).

    ``include``/``exclude``: glob patterns matched against the path relative to its root and
    against the file name (``*.md``, ``drafts/*``); ``exclude`` also prunes folders.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InvalidInput("nothing to index: pass one or more files or folders")
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise InvalidInput(f"no such file or folder: {', '.join(missing)}; check the path(s)")
    found = Discovery([], [], [], 0)
    seen_real: set[str] = set()
    for p in paths:
        given = Path(p)
        if given.is_dir():
            root = given.resolve()
            found.folders.append(root)
            _walk(root, include, exclude, found, seen_real)
        else:
            absolute = Path(os.path.abspath(given))
            _add_file(absolute, absolute.parent, absolute.name, found, seen_real, explicit=True)
    return found


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str], found: Discovery,
          seen_real: set[str]) -> None:
    def on_error(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        rel = _rel(where, root)
        found.problems.append(FileProblem(rel, str(where), f"cannot list the folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info")
            and not _matches(_rel(here / d, root), exclude)
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            rel = _rel(path, root)
            if not is_supported(path) or _matches(rel, exclude) \
                    or (include and not _matches(rel, include)):
                found.ignored += 1
                continue
            _add_file(path, root, rel, found, seen_real, explicit=False)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _add_file(path: Path, root: Path, rel: str, found: Discovery, seen_real: set[str], *, explicit: bool) -> None:
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError) as exc:  # broken link, link loop
        reason = getattr(exc, "strerror", None) or str(exc)
        found.problems.append(FileProblem(rel, str(path),
                                          f"cannot resolve the path (broken or looping symlink?): {reason}"))
        return
    if real in seen_real:
        return  # the same file reached twice (a symlink to a file already listed)
    seen_real.add(real)
    if explicit and not is_supported(path):
        found.problems.append(FileProblem(rel, str(path), f"unsupported file type {path.suffix or '(none)'!r}; "
                                                          f"supported: {' '.join(SUPPORTED_SUFFIXES)} "
                                                          "(also gzip-compressed, e.g. .jsonl.gz)"))
        return
    found.files.append(SourceFile(path, root, rel))


# --- the manifest: what the collection already holds ----------------------------------------------


@dataclass
class _Indexed:
    path: str
    root: str
    hashes: set[str] = field(default_factory=set)
    settings: set[str] = field(default_factory=set)
    count: int = 0
    chunks: int = -1
    last_chunk: int = -1
    """Highest chunk index present: ids are ``source#0..last_chunk``, so per-file work goes by
    primary key instead of a metadata filter (a scan of the whole collection on most stores)."""

    foreign: bool = False
    """Some record of this source was not written by this pipeline (its id is not positional)."""

    def current(self, file_hash: str, settings: str) -> bool:
        return (not self.foreign and self.hashes == {file_hash} and self.settings == {settings}
                and self.count == self.chunks)

    def ids(self, source: str, start: int = 0) -> list[str]:
        return chunk_ids(source, start, self.last_chunk + 1)


def chunk_ids(source: str, start: int, stop: int) -> list[str]:
    return [f"{source}#{n}" for n in range(start, stop)]


def _manifest(collection: Collection) -> dict[str, _Indexed]:
    out: dict[str, _Indexed] = {}
    for batch in collection.scan(10_000, where={"file_hash": {"$exists": True}}):
        for record in batch:
            meta = record.metadata
            source = meta.get("source")
            if not isinstance(source, str):
                continue
            entry = out.get(source)
            if entry is None:
                entry = out[source] = _Indexed(str(meta.get("path", "")), str(meta.get("root", "")))
            entry.hashes.add(str(meta.get("file_hash")))
            entry.settings.add(str(meta.get("settings")))
            entry.count += 1
            chunks = meta.get("chunks")
            entry.chunks = chunks if isinstance(chunks, int) else -1
            chunk = meta.get("chunk")
            if isinstance(chunk, int) and record.id == f"{source}#{chunk}":
                entry.last_chunk = max(entry.last_chunk, chunk)
            else:
                entry.foreign = True
    return out


def settings_key(chunk_tokens: int | None, overlap: int | None, text_field: str | None) -> str:
    """The chunking options as asked (``auto`` for defaults), so checking whether a file is
    current never needs the model."""
    return (f"v{SETTINGS_VERSION}:{chunk_tokens or 'auto'}/{'auto' if overlap is None else overlap}"
            f"/{text_field or 'auto'}")


# --- writing ---------------------------------------------------------------------------------------


@dataclass
class _Row:
    id: str
    text: str
    header: str
    metadata: dict[str, Any]
    vector: np.ndarray | None = None

    @property
    def embedded_text(self) -> str:
        """What the model sees: the title/section header, then the chunk."""
        return f"{self.header}\n\n{self.text}" if self.header else self.text


@dataclass(frozen=True)
class ChunkPlan:
    """How a read document becomes records: chunk size and overlap in the model's tokens and
    the header that goes in front of each chunk. Small and picklable, so worker processes
    (the Ray engine) chunk exactly as a single-process run does; the tokenizer is loaded once
    per process on first use."""

    embedder: str
    """The collection's embedder id (its tokenizer counts the tokens)."""
    max_tokens: int
    chunk_tokens: int
    overlap: int

    @classmethod
    def for_collection(cls, collection: Collection, chunk_tokens: int | None, overlap: int | None) -> ChunkPlan:
        """Loads the collection's model (for its context size)."""
        model = collection.model
        assert model is not None  # index_paths rejects collections without a model
        max_tokens = int(model.max_tokens)
        size = chunk_tokens or default_chunk_tokens(max_tokens)
        if size > max_tokens:
            raise InvalidInput(f"chunk_tokens={size} exceeds the {max_tokens}-token context of "
                               f"{model.id}: the model would cut every chunk; use at most {max_tokens}")
        plan = cls(collection.spec.embedder or model.id, max_tokens, size,
                   default_overlap(size) if overlap is None else overlap)
        plan.chunker  # noqa: B018 - bad sizes fail here, before any file is read
        return plan

    @property
    def chunker(self) -> Chunker:
        chunker = _CHUNKERS.get(self)
        if chunker is None:
            counter: TokenCounter = counter_for_model(self.embedder)
            chunker = _CHUNKERS[self] = Chunker(counter, self.chunk_tokens, self.overlap)
        return chunker

    def rows_of(self, read: FileRead, settings: str) -> list[_Row]:
        """The records of a file read with a document to chunk (else none). A chunker error on
        one odd file becomes that file's ``problem``, reported as failed like a parser error,
        instead of stopping a long run; both engines chunk through here."""
        if read.doc is None or read.problem is not None or read.empty is not None:
            return []
        try:
            return self.rows(read.file, read.doc, read.file_hash, read.mtime, read.size, settings)
        except Exception as exc:
            read.problem = f"unexpected {type(exc).__name__} while chunking: {exc}"
            return []

    def rows(self, f: SourceFile, doc: Document, file_hash: str, mtime: float, size: int,
             settings: str) -> list[_Row]:
        """The file's records, ids ``<source>#<n>``, in order."""
        chunker = self.chunker
        rows: list[_Row] = []
        for section in doc.sections:
            headings = list(section.headings)
            if headings and headings[0] == doc.title:
                headings = headings[1:]
            section_name = " > ".join(headings)
            for chunk in chunker.split(section.text):
                meta: dict[str, Any] = {
                    "source": f.source, "path": str(f.path), "root": str(f.root), "title": doc.title,
                    "section": section_name, "start": section.offset + chunk.start,
                    "end": section.offset + chunk.end, "tokens": chunk.tokens, "file_hash": file_hash,
                    "mtime": round(mtime, 3), "size": size, "format": doc.format,
                    "settings": settings,
                }
                if section.page is not None:
                    meta["page"] = section.page
                meta.update(section.extra)
                rows.append(_Row("", chunk.text, self._header(doc.title, section_name, chunk.tokens), meta))
        for n, row in enumerate(rows):
            row.id = f"{f.source}#{n}"
            row.metadata["chunk"] = n
            row.metadata["chunks"] = len(rows)
        return rows

    def _header(self, title: str, section: str, chunk_tokens: int) -> str:
        header = " > ".join(p for p in (title, section) if p)
        if not header:
            return ""
        room = self.max_tokens - chunk_tokens - 2  # "\n\n" and slack for non-additive counts
        return _truncated_header(self, header, room)


_CHUNKERS: dict[ChunkPlan, Chunker] = {}


@functools.lru_cache(maxsize=4096)
def _truncated_header(plan: ChunkPlan, header: str, room: int) -> str:
    return truncate_to_tokens(plan.chunker.counter, header, room)


@dataclass
class _FileRows:
    source: str
    rows: list[_Row]
    previous: _Indexed | None


class _Writer:
    """Writes chunked files in batches across files (embedding one small file at a time
    would pay the model's per-call overhead for every file)."""

    def __init__(self, collection: Collection, report: IndexReport, chunk_tokens: int | None,
                 overlap: int | None, batch_size: int) -> None:
        self.collection = collection
        self.report = report
        self._chunk_tokens = chunk_tokens
        self._overlap = overlap
        self._batch_size = batch_size
        self._plan: ChunkPlan | None = None
        self._pending: list[_FileRows] = []
        self._pending_rows = 0

    @property
    def plan(self) -> ChunkPlan:
        """Built on first need: it loads the model (for its context size and tokenizer)."""
        if self._plan is None:
            self._plan = ChunkPlan.for_collection(self.collection, self._chunk_tokens, self._overlap)
        return self._plan

    def add(self, f: SourceFile, rows: list[_Row], previous: _Indexed | None) -> int:
        """Queue the file's chunks; returns how many."""
        if previous is not None and rows:
            self._reuse_vectors(previous.ids(f.source), rows)
        self._pending.append(_FileRows(f.source, rows, previous))
        self._pending_rows += len(rows)
        if self._pending_rows >= self._batch_size:
            self.flush()
        return len(rows)

    def _reuse_vectors(self, old_ids: list[str], rows: list[_Row]) -> None:
        """Keep the vectors of chunks whose embedded text is unchanged (an edit near the end of
        a long file re-embeds only the chunks it touched)."""
        if self.collection.spec.dtype != "float32":
            return  # quantised vectors would lose precision on every round trip
        wanted = {(r.text, r.metadata["title"], r.metadata["section"]) for r in rows}
        old: dict[tuple[str, str, str], np.ndarray] = {}
        for start in range(0, len(old_ids), 1_000):
            for record in self.collection.get(old_ids[start:start + 1_000], include_vectors=True):
                key = (record.text or "", record.metadata.get("title", ""), record.metadata.get("section", ""))
                if key in wanted and record.vector is not None:
                    old[key] = record.vector
        for row in rows:
            row.vector = old.get((row.text, row.metadata["title"], row.metadata["section"]))

    def remove(self, source: str, previous: _Indexed, start: int = 0) -> int:
        """Delete the file's records from chunk ``start`` on."""
        deleted = 0
        ids = previous.ids(source, start)
        for first in range(0, len(ids), 10_000):
            deleted += self.collection.delete(ids=ids[first:first + 10_000])
        self.report.chunks_deleted += deleted
        return deleted

    def flush(self) -> None:
        files, self._pending, self._pending_rows = self._pending, [], 0
        rows = [r for f in files for r in f.rows]
        for start in range(0, len(rows), max(self._batch_size, 1)):
            self._write(rows[start:start + self._batch_size])
        for f in files:
            if f.previous is not None:
                # Positional ids were overwritten above; anything past the new count is stale.
                self.remove(f.source, f.previous, start=len(f.rows))

    def _write(self, rows: list[_Row]) -> None:
        if not rows:
            return
        todo = [r for r in rows if r.vector is None]
        self.report.reused += len(rows) - len(todo)
        if todo:
            model = self.collection.model
            assert model is not None
            result = model.embed_result([r.embedded_text for r in todo], "document")
            for row, vector in zip(todo, result.vectors, strict=True):
                row.vector = vector
            self.report.embedded += len(todo)
            self.report.cached += result.cached
        self.collection.upsert(
            [r.id for r in rows], texts=[r.text for r in rows],
            vectors=np.stack([r.vector for r in rows]),  # type: ignore[misc]
            metadata=[r.metadata for r in rows],
        )
        self.report.chunks_written += len(rows)


# --- the run -----------------------------------------------------------------------------------------


def check_index_options(collection: Collection, chunk_tokens: int | None, overlap: int | None,
                        max_file_bytes: int, batch_size: int) -> None:
    if collection.spec.embedder is None:
        raise InvalidInput(f"collection {collection.name!r} stores your own vectors and has no model to embed "
                           "documents; index into a collection created with a model (e.g. model='local')")
    if isinstance(max_file_bytes, bool) or not isinstance(max_file_bytes, int) or max_file_bytes < 1:
        raise InvalidInput(f"max_file_bytes must be a positive integer, got {max_file_bytes!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive integer, got {batch_size!r}")
    if chunk_tokens is not None and (isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int)
                                     or chunk_tokens < 1):
        raise InvalidInput(f"chunk_tokens must be a positive integer, got {chunk_tokens!r}")
    if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0):
        raise InvalidInput(f"overlap must be a non-negative integer, got {overlap!r}")
    if chunk_tokens is not None and overlap is not None and overlap > chunk_tokens // 2:
        raise InvalidInput(f"overlap={overlap} is more than half of chunk_tokens={chunk_tokens}; use a smaller overlap")


@dataclass
class IndexRun:
    """What every indexing engine starts from: the files found, the report, the settings key,
    the manifest (what the collection already holds) and the writer."""

    found: Discovery
    report: IndexReport
    settings: str
    manifest: dict[str, _Indexed]
    writer: _Writer


def begin_run(collection: Collection, paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], *,
              chunk_tokens: int | None, overlap: int | None, text_field: str | None, include: Sequence[str],
              exclude: Sequence[str], max_file_bytes: int, batch_size: int) -> IndexRun:
    check_index_options(collection, chunk_tokens, overlap, max_file_bytes, batch_size)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = discover(paths, include=include, exclude=exclude)
    report = IndexReport(collection.name, roots=[str(p) for p in found.folders], seen=len(found.files),
                         failed=list(found.problems), ignored=found.ignored)
    return IndexRun(found, report, settings_key(chunk_tokens, overlap, text_field), _manifest(collection),
                    _Writer(collection, report, chunk_tokens, overlap, batch_size))


def index_paths(
    collection: Collection,
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
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
    """Index files and folders into ``collection`` (see the module docstring).

    ``chunk_tokens``: chunk size in the model's tokens, special tokens included (default: a bit
    under the model's context, 205 for all-MiniLM-L6-v2, at most 512). ``overlap``: tokens
    repeated between neighbouring chunks (default 15%). ``text_field``: the column/field of
    CSV and JSON-lines files to index (default: the first of ``text``, ``content``, ``body``...).
    ``remove_missing``: delete the records of files gone from an indexed folder.
    """
    started = time.perf_counter()
    run = begin_run(collection, paths, chunk_tokens=chunk_tokens, overlap=overlap, text_field=text_field,
                    include=include, exclude=exclude, max_file_bytes=max_file_bytes, batch_size=batch_size)
    found, report, settings, manifest, writer = run.found, run.report, run.settings, run.manifest, run.writer
    total = len(found.files)
    if progress is not None:
        progress(0, total, "")
    for done, f in enumerate(found.files, 1):
        _index_file(f, writer, manifest.get(f.source), settings, text_field, max_file_bytes, report)
        if progress is not None:
            progress(done, total, f.source)
    writer.flush()
    if remove_missing:
        _remove_missing(found, manifest, writer, report)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _fail(report: IndexReport, f: SourceFile, reason: str) -> None:
    report.failed.append(FileProblem(f.source, str(f.path), reason))


@dataclass
class FileRead:
    """One file read and parsed, or why not: the part of indexing a file that needs neither
    the model nor the store, so it can run in another process."""

    file: SourceFile
    problem: str | None = None
    """Could not be read (reported; the file keeps whatever it had indexed before)."""
    file_hash: str = ""
    mtime: float = 0.0
    size: int = 0
    unchanged: bool = False
    """Same bytes and settings as what is indexed: nothing to do."""
    empty: str | None = None
    """Read, but holds no text (``"empty file"`` / ``"no text found in it"``)."""
    warnings: list[str] = field(default_factory=list)
    """Read, with a caveat (replacement decoding, skipped rows or pages)."""
    doc: Document | None = None


def read_source(f: SourceFile, indexed_hash: str | None, text_field: str | None,
                max_file_bytes: int) -> FileRead:
    """Read, hash and parse ``f``; ``indexed_hash``: the hash under which it is fully
    indexed with the current settings (then it is not parsed at all)."""
    try:
        stat = f.path.stat()
        if not S_ISREG(stat.st_mode):
            # A FIFO or device would block or never end on read.
            return FileRead(f, problem="not a regular file (a pipe, socket or device); skipped")
        if stat.st_size > max_file_bytes:
            return FileRead(f, problem=f"{stat.st_size / 1e6:.1f} MB is over the {max_file_bytes / 1e6:.1f} MB "
                                       "limit; raise the limit (--max-file-mb) to index it")
        data = _read_limited(f.path, max_file_bytes)
    except OSError as exc:
        return FileRead(f, problem=f"cannot read: {exc.strerror or exc}")
    if data is None:
        return FileRead(f, problem=f"grew past the {max_file_bytes / 1e6:.1f} MB limit while being read; "
                                   "raise the limit (--max-file-mb) to index it")
    read = FileRead(f, file_hash=hashlib.sha256(data).hexdigest(), mtime=stat.st_mtime, size=stat.st_size)
    if read.file_hash == indexed_hash:
        read.unchanged = True
        return read
    try:
        read.doc = read_bytes(data, f.path, text_field=text_field)
    except UnreadableFile as exc:
        read.problem = str(exc)
    except Exception as exc:  # a parser bug on one odd file must not stop the run
        read.problem = f"unexpected {type(exc).__name__} while reading: {exc}"
    else:
        read.warnings = list(read.doc.warnings)
        if not read.doc.sections:
            read.empty = "empty file" if not data.strip() else "no text found in it"
    return read


def indexed_hash(entry: _Indexed | None, settings: str) -> str | None:
    """The file hash under which ``entry`` is complete and current, if it is."""
    if entry is None or len(entry.hashes) != 1:
        return None
    file_hash = next(iter(entry.hashes))
    return file_hash if entry.current(file_hash, settings) else None


def path_conflict(f: SourceFile, entry: _Indexed | None) -> str | None:
    """Another live file, under another root, is indexed under the same relative path."""
    if entry is not None and entry.root != str(f.root) and os.path.exists(entry.path) \
            and not _same_file(entry.path, f.path):
        return (f"another file with the same relative path is already indexed ({entry.path}); "
                "index their common parent folder, or use another --collection")
    return None


def settle_read(read: FileRead, writer: _Writer, entry: _Indexed | None, report: IndexReport) -> bool:
    """Report a file that yields no new chunks (failed, unchanged, empty); ``True`` when it
    does have chunks to write."""
    f = read.file
    if read.problem is not None:
        _fail(report, f, read.problem)
        return False
    if read.unchanged:
        report.unchanged += 1
        if entry is not None and (entry.path != str(f.path) or entry.root != str(f.root)):
            _relocate(writer.collection, f, entry)  # the folder moved: same content, new place
        return False
    for warning in read.warnings:
        report.warnings.append(FileProblem(f.source, str(f.path), warning))
    if read.empty is not None:
        removed = writer.remove(f.source, entry) if entry is not None else 0
        note = f"; removed its {removed} earlier chunk(s)" if removed else ""
        _fail(report, f, f"nothing to index: {read.empty}{note}")
        return False
    return True


def _index_file(f: SourceFile, writer: _Writer, entry: _Indexed | None, settings: str,
                text_field: str | None, max_file_bytes: int, report: IndexReport) -> None:
    conflict = path_conflict(f, entry)
    if conflict is not None:
        _fail(report, f, conflict)
        return
    read = read_source(f, indexed_hash(entry, settings), text_field, max_file_bytes)
    rows = writer.plan.rows_of(read, settings)
    if not settle_read(read, writer, entry, report):
        return
    if writer.add(f, rows, previous=entry):
        report.indexed.append(f.source)


def _read_limited(path: Path, limit: int) -> bytes | None:
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _relocate(collection: Collection, f: SourceFile, entry: _Indexed) -> None:
    ids = entry.ids(f.source)
    for start in range(0, len(ids), 1_000):
        records = collection.get(ids[start:start + 1_000])
        collection.upsert([r.id for r in records],
                          metadata=[{**r.metadata, "path": str(f.path), "root": str(f.root)} for r in records])


def _remove_missing(found: Discovery, manifest: dict[str, _Indexed], writer: _Writer, report: IndexReport) -> None:
    folders = {str(p) for p in found.folders}
    listed = {f.source for f in found.files}
    for source, entry in sorted(manifest.items()):
        # Only files that are really gone: one skipped by --exclude or unreadable this time keeps its chunks.
        if entry.root in folders and source not in listed and not os.path.lexists(entry.path):
            writer.remove(source, entry)
            report.removed.append(source)


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "SKIP_DIRS",
    "Discovery",
    "FileProblem",
    "IndexReport",
    "SourceFile",
    "discover",
    "index_paths",
    "settings_key",
]
