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

What is embedded is the chunk under its title and section (``plan``); ``Collection.reembed``
embeds the stored texts, so it drops that header: re-index instead when changing model.

A run, on either engine: find the files (``sources.discover``), read what the collection
already holds (``manifest``), then per file: skip it if its bytes and settings are unchanged
(without reading it further or loading the model), else read, chunk (``plan``) and write it
(``writer``); finally delete the records of files gone from an indexed folder. The local
engine does the per-file work in this process; ``engine="ray"`` spreads reading, chunking and
embedding over the workers of a Ray cluster (``distributed``).

Failures: a file that cannot be read (permission, corrupt PDF, binary data, over
``max_file_bytes``, unsupported) is reported in ``IndexReport.failed`` and keeps whatever it
had indexed before; the run goes on. A file read successfully but holding no text loses its
old records (and is reported). Errors of the model or the store (a provider outage, a full
disk) stop the run: they are not about one file. Everything written before stays, and a
re-run resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from .manifest import Manifest, indexed_hash, path_conflict, read_manifest
from .options import Engine, IndexOptions
from .report import IndexReport, Progress
from .sources import SourceFile, discover, read_source
from .writer import IndexWriter

if TYPE_CHECKING:
    from ..collection import Collection


def index_paths(
    collection: Collection,
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    options: IndexOptions | None = None,
    *,
    engine: Engine = "local",
    progress: Progress | None = None,
    **option_values: Any,
) -> IndexReport:
    """Index files and folders into ``collection`` (see the module docstring).

    ``options``: an ``IndexOptions``; its fields may also be given as keywords
    (``chunk_tokens=200``), which override it. ``engine``: ``"local"`` (this process) or
    ``"ray"`` (a Ray cluster, ``pip install 'semkit[ray]'``; the options ``address`` and ``workers``
    choose the cluster and the number of embedding actors). Both engines write the same records
    and return the same report. ``progress(files_done, files_total, current_source)`` is called
    as files finish.
    """
    options = IndexOptions.of(options, option_values)
    options.check_engine(engine)
    if collection.spec.embedder is None:
        raise InvalidInput(f"collection {collection.name!r} stores your own vectors and has no model to embed "
                           "documents; index into a collection created with a model (e.g. model='local')")
    started = time.perf_counter()
    found = discover(paths, include=options.include, exclude=options.exclude, allowed_roots=options.allowed_roots)
    report = IndexReport(collection.name, roots=[str(p) for p in found.folders], seen=len(found.files),
                         failed=list(found.problems), ignored=found.ignored)
    manifest = read_manifest(collection)
    writer = IndexWriter(collection, report, options)
    if engine == "ray":
        from .distributed import index_on_ray

        index_on_ray(found.files, manifest, writer, progress)
    else:
        _index_here(found.files, manifest, writer, progress)
    if options.remove_missing:
        writer.remove_missing(found, manifest)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def index_paths_ray(
    collection: Collection,
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    options: IndexOptions | None = None,
    *,
    progress: Progress | None = None,
    **option_values: Any,
) -> IndexReport:
    """``index_paths(..., engine="ray")``: kept as the name the Ray engine was first published under."""
    return index_paths(collection, paths, options, engine="ray", progress=progress, **option_values)


def _index_here(files: Sequence[SourceFile], manifest: Manifest, writer: IndexWriter,
                progress: Progress | None) -> None:
    """The local engine: read, chunk and queue one file after the other; the writer embeds and
    writes in batches across files."""
    total = len(files)
    if progress is not None:
        progress(0, total, "")
    for done, f in enumerate(files, 1):
        _index_file(f, manifest, writer)
        if progress is not None:
            progress(done, total, f.source)
    writer.flush()


def _index_file(f: SourceFile, manifest: Manifest, writer: IndexWriter) -> None:
    entry = manifest.get(f.source)
    conflict = path_conflict(f, entry)
    if conflict is not None:
        writer.report.fail(f, conflict)
        return
    options = writer.options
    read = read_source(f, indexed_hash(entry, writer.settings), options.text_field, options.max_file_bytes,
                       options.allowed_roots)
    # The plan loads the model: a run where every file is unchanged (or unreadable) never needs it.
    rows = writer.plan.rows_of(read, writer.settings) if read.doc is not None else []
    if not writer.settle(read, entry):
        return
    if writer.add(f, rows, previous=entry):
        writer.report.indexed.append(f.source)


__all__ = ["index_paths", "index_paths_ray"]
