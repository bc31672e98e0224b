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
from .readers import SUPPORTED_SUFFIXES, Document, UnreadableFile, read_bytes

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
            if path.suffix.lower() not in SUPPORTED_SUFFIXES or _matches(rel, exclude) \
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
    if explicit and path.suffix.lower() not in SUPPORTED_SUFFIXES:
        found.problems.append(FileProblem(rel, str(path), f"unsupported file type {path.suffix or '(none)'!r}; "
                                                          f"supported: {' '.join(SUPPORTED_SUFFIXES)}"))
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


@dataclass
class _FileRows:
    source: str
    rows: list[_Row]
    previous: _Indexed | None


class _Writer:
    """Chunks files and writes them in batches across files (embedding one small file at a
    time would pay the model's per-call overhead for every file)."""

    def __init__(self, collection: Collection, report: IndexReport, chunk_tokens: int | None,
                 overlap: int | None, batch_size: int) -> None:
        self.collection = collection
        self.report = report
        self._chunk_tokens = chunk_tokens
        self._overlap = overlap
        self._batch_size = batch_size
        self._chunker: Chunker | None = None
        self._max_tokens = 0
        self._headers: dict[tuple[str, int], str] = {}
        self._pending: list[_FileRows] = []
        self._pending_rows = 0

    @property
    def chunker(self) -> Chunker:
        """Built on first need: it loads the model (for its context size and tokenizer)."""
        if self._chunker is None:
            model = self.collection.model
            assert model is not None  # index_paths rejects collections without a model
            self._max_tokens = int(model.max_tokens)
            counter: TokenCounter = counter_for_model(self.collection.spec.embedder or model.id)
            size = self._chunk_tokens or default_chunk_tokens(self._max_tokens)
            if size > self._max_tokens:
                raise InvalidInput(f"chunk_tokens={size} exceeds the {self._max_tokens}-token context of "
                                   f"{model.id}: the model would cut every chunk; use at most {self._max_tokens}")
            overlap = default_overlap(size) if self._overlap is None else self._overlap
            self._chunker = Chunker(counter, size, overlap)
        return self._chunker

    def add(self, f: SourceFile, doc: Document, file_hash: str, stat: os.stat_result, settings: str,
            previous: _Indexed | None) -> int:
        """Queue the file's chunks; returns how many."""
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
                    "mtime": round(stat.st_mtime, 3), "size": stat.st_size, "format": doc.format,
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
        if previous is not None and rows:
            self._reuse_vectors(previous.ids(f.source), rows)
        self._pending.append(_FileRows(f.source, rows, previous))
        self._pending_rows += len(rows)
        if self._pending_rows >= self._batch_size:
            self.flush()
        return len(rows)

    def _header(self, title: str, section: str, chunk_tokens: int) -> str:
        header = " > ".join(p for p in (title, section) if p)
        if not header:
            return ""
        room = self._max_tokens - chunk_tokens - 2  # "\n\n" and slack for non-additive counts
        key = (header, room)
        if key not in self._headers:
            self._headers[key] = truncate_to_tokens(self.chunker.counter, header, room)
        return self._headers[key]

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
            texts = [f"{r.header}\n\n{r.text}" if r.header else r.text for r in todo]
            vectors = model.embed(texts, "document")
            for row, vector in zip(todo, vectors, strict=True):
                row.vector = vector
            self.report.embedded += len(todo)
        self.collection.upsert(
            [r.id for r in rows], texts=[r.text for r in rows],
            vectors=np.stack([r.vector for r in rows]),  # type: ignore[misc]
            metadata=[r.metadata for r in rows],
        )
        self.report.chunks_written += len(rows)


# --- the run -----------------------------------------------------------------------------------------


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
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = discover(paths, include=include, exclude=exclude)
    report = IndexReport(collection.name, roots=[str(p) for p in found.folders], seen=len(found.files),
                         failed=list(found.problems), ignored=found.ignored)
    settings = settings_key(chunk_tokens, overlap, text_field)
    manifest = _manifest(collection)
    writer = _Writer(collection, report, chunk_tokens, overlap, batch_size)
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


def _index_file(f: SourceFile, writer: _Writer, entry: _Indexed | None, settings: str,
                text_field: str | None, max_file_bytes: int, report: IndexReport) -> None:
    try:
        stat = f.path.stat()
        if not S_ISREG(stat.st_mode):
            # A FIFO or device would block or never end on read.
            _fail(report, f, "not a regular file (a pipe, socket or device); skipped")
            return
        if stat.st_size > max_file_bytes:
            _fail(report, f, f"{stat.st_size / 1e6:.1f} MB is over the {max_file_bytes / 1e6:.1f} MB limit; "
                             "raise the limit (--max-file-mb) to index it")
            return
        data = _read_limited(f.path, max_file_bytes)
    except OSError as exc:
        _fail(report, f, f"cannot read: {exc.strerror or exc}")
        return
    if data is None:
        _fail(report, f, f"grew past the {max_file_bytes / 1e6:.1f} MB limit while being read; "
                         "raise the limit (--max-file-mb) to index it")
        return
    file_hash = hashlib.sha256(data).hexdigest()
    if entry is not None and entry.root != str(f.root) and os.path.exists(entry.path) \
            and not _same_file(entry.path, f.path):
        _fail(report, f, f"another file with the same relative path is already indexed ({entry.path}); "
                         "index their common parent folder, or use another --collection")
        return
    if entry is not None and entry.current(file_hash, settings):
        report.unchanged += 1
        if entry.path != str(f.path) or entry.root != str(f.root):
            _relocate(writer.collection, f, entry)  # the folder moved: same content, new place
        return
    try:
        doc = read_bytes(data, f.path, text_field=text_field)
    except UnreadableFile as exc:
        _fail(report, f, str(exc))
        return
    except Exception as exc:  # a parser bug on one odd file must not stop the run
        _fail(report, f, f"unexpected {type(exc).__name__} while reading: {exc}")
        return
    for warning in doc.warnings:
        report.warnings.append(FileProblem(f.source, str(f.path), warning))
    if not doc.sections:
        removed = writer.remove(f.source, entry) if entry is not None else 0
        what = "empty file" if not data.strip() else "no text found in it"
        note = f"; removed its {removed} earlier chunk(s)" if removed else ""
        _fail(report, f, f"nothing to index: {what}{note}")
        return
    if writer.add(f, doc, file_hash, stat, settings, previous=entry):
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
