"""What the collection already holds, per source file: the collection itself is the manifest.

One metadata scan at the start of a run (``read_manifest``) gives each indexed source's file
hashes, settings and chunk count. A file whose bytes and settings are unchanged, and whose
chunks are all present, is current (``indexed_hash``): it is skipped without being parsed or
the model being loaded. Records are ``<source>#<n>`` for n in 0..chunks-1, so per-file work goes
by primary key instead of a metadata filter (a scan of the whole collection on most stores).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .options import IndexOptions
from .sources import SourceFile

if TYPE_CHECKING:
    from ..collection import Collection

SETTINGS_VERSION = 1
"""Bumped when chunking changes in a way that should re-chunk unchanged files."""


@dataclass
class IndexedSource:
    """One source file as the collection holds it."""

    path: str
    root: str
    hashes: set[str] = field(default_factory=set)
    settings: set[str] = field(default_factory=set)
    count: int = 0
    chunks: int = -1
    last_chunk: int = -1
    """Highest chunk index present: ids are ``source#0..last_chunk``."""

    foreign: bool = False
    """Some record of this source was not written by this pipeline (its id is not positional)."""

    def current(self, file_hash: str, settings: str) -> bool:
        return (not self.foreign and self.hashes == {file_hash} and self.settings == {settings}
                and self.count == self.chunks)

    def ids(self, source: str, start: int = 0) -> list[str]:
        return chunk_ids(source, start, self.last_chunk + 1)


Manifest = dict[str, IndexedSource]
"""Indexed sources by their ``source`` (path relative to the folder indexed)."""


def chunk_ids(source: str, start: int, stop: int) -> list[str]:
    return [f"{source}#{n}" for n in range(start, stop)]


def read_manifest(collection: Collection) -> Manifest:
    out: Manifest = {}
    for batch in collection.scan(10_000, where={"file_hash": {"$exists": True}}):
        for record in batch:
            meta = record.metadata
            source = meta.get("source")
            if not isinstance(source, str):
                continue
            entry = out.get(source)
            if entry is None:
                entry = out[source] = IndexedSource(str(meta.get("path", "")), str(meta.get("root", "")))
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


def settings_key(options: IndexOptions) -> str:
    """The chunking options as asked (``auto`` for defaults), stamped on every record, so
    checking whether a file is current never needs the model."""
    chunk_tokens, overlap, text_field = options.chunk_tokens, options.overlap, options.text_field
    return (f"v{SETTINGS_VERSION}:{chunk_tokens or 'auto'}/{'auto' if overlap is None else overlap}"
            f"/{text_field or 'auto'}")


def indexed_hash(entry: IndexedSource | None, settings: str) -> str | None:
    """The file hash under which ``entry`` is complete and current, if it is."""
    if entry is None or len(entry.hashes) != 1:
        return None
    file_hash = next(iter(entry.hashes))
    return file_hash if entry.current(file_hash, settings) else None


def path_conflict(f: SourceFile, entry: IndexedSource | None) -> str | None:
    """Another live file, under another root, is indexed under the same relative path."""
    if entry is not None and entry.root != str(f.root) and os.path.exists(entry.path) \
            and not _same_file(entry.path, f):
        return (f"another file with the same relative path is already indexed ({entry.path}); "
                "index their common parent folder, or use another --collection")
    return None


def _same_file(path: str, f: SourceFile) -> bool:
    try:
        return os.path.samefile(path, f.path)
    except OSError:
        return False


__all__ = [
    "SETTINGS_VERSION",
    "IndexedSource",
    "Manifest",
    "chunk_ids",
    "indexed_hash",
    "path_conflict",
    "read_manifest",
    "settings_key",
]
