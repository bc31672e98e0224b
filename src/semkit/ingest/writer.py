"""Everything an indexing run changes in the collection, and its account in the report:
``IndexWriter``. Both engines write through it (the local loop with ``add``, which embeds; the
Ray driver with ``store``, its chunks embedded by the workers).

A changed file's records are upserted, then records past its new chunk count are deleted (a
crash in between leaves mixed hashes, which the next run sees as changed). Chunks of a changed
file whose text, title and section are unchanged keep their vector. A file whose content is
unchanged but whose folder moved gets its ``path``/``root`` updated in place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .manifest import IndexedSource, Manifest, settings_key
from .options import IndexOptions
from .plan import ChunkPlan, ChunkRow
from .report import IndexReport
from .sources import Discovery, FileRead, SourceFile

if TYPE_CHECKING:
    from ..collection import Collection


@dataclass
class _FileRows:
    source: str
    rows: list[ChunkRow]
    previous: IndexedSource | None


class IndexWriter:
    """Writes chunked files in batches across files (embedding one small file at a time
    would pay the model's per-call overhead for every file), deletes what is stale, and
    records all of it in ``report``."""

    def __init__(self, collection: Collection, report: IndexReport, options: IndexOptions) -> None:
        self.collection = collection
        self.report = report
        self.options = options
        self.settings = settings_key(options)
        """Stamped on every record: a file indexed with other settings is re-chunked."""
        self._plan: ChunkPlan | None = None
        self._pending: list[_FileRows] = []
        self._pending_rows = 0

    @property
    def plan(self) -> ChunkPlan:
        """Built on first need: it loads the model (for its context size and tokenizer)."""
        if self._plan is None:
            self._plan = ChunkPlan.for_collection(self.collection, self.options.chunk_tokens, self.options.overlap)
        return self._plan

    # --- a file's outcome ----------------------------------------------------------------------

    def settle(self, read: FileRead, entry: IndexedSource | None) -> bool:
        """Report a file that yields no new chunks (failed, unchanged, empty); ``True`` when it
        does have chunks to write."""
        f = read.file
        if read.problem is not None:
            self.report.fail(f, read.problem)
            return False
        if read.unchanged:
            self.report.unchanged += 1
            if entry is not None and (entry.path != str(f.path) or entry.root != str(f.root)):
                self._relocate(f, entry)  # the folder moved: same content, new place
            return False
        for warning in read.warnings:
            self.report.warn(f, warning)
        if read.empty is not None:
            removed = self.remove(f.source, entry) if entry is not None else 0
            note = f"; removed its {removed} earlier chunk(s)" if removed else ""
            self.report.fail(f, f"nothing to index: {read.empty}{note}")
            return False
        return True

    def add(self, f: SourceFile, rows: list[ChunkRow], previous: IndexedSource | None) -> int:
        """Queue the file's chunks (embedded when the batch is written); returns how many."""
        if previous is not None and rows:
            self._reuse_vectors(previous.ids(f.source), rows)
        self._pending.append(_FileRows(f.source, rows, previous))
        self._pending_rows += len(rows)
        if self._pending_rows >= self.options.batch_size:
            self.flush()
        return len(rows)

    def flush(self) -> None:
        """Write what ``add`` queued, then delete each file's chunks past its new count."""
        files, self._pending, self._pending_rows = self._pending, [], 0
        rows = [r for f in files for r in f.rows]
        batch_size = self.options.batch_size
        for start in range(0, len(rows), batch_size):
            self._embed_and_store(rows[start:start + batch_size])
        for f in files:
            if f.previous is not None:
                # Positional ids were overwritten above; anything past the new count is stale.
                self.remove(f.source, f.previous, start=len(f.rows))

    def store(self, rows: list[ChunkRow]) -> None:
        """Upsert rows that all have their vector."""
        if not rows:
            return
        self.collection.upsert(
            [r.id for r in rows], texts=[r.text for r in rows],
            vectors=np.stack([r.vector for r in rows]),  # type: ignore[misc]
            metadata=[r.metadata for r in rows],
        )
        self.report.chunks_written += len(rows)

    def remove(self, source: str, previous: IndexedSource, start: int = 0) -> int:
        """Delete the file's records from chunk ``start`` on."""
        deleted = 0
        ids = previous.ids(source, start)
        for first in range(0, len(ids), 10_000):
            deleted += self.collection.delete(ids=ids[first:first + 10_000])
        self.report.chunks_deleted += deleted
        return deleted

    def remove_missing(self, found: Discovery, manifest: Manifest) -> None:
        """Delete the records of files gone from the folders indexed."""
        folders = {str(p) for p in found.folders}
        listed = {f.source for f in found.files}
        for source, entry in sorted(manifest.items()):
            # Only files that are really gone: one skipped by --exclude or unreadable this time keeps its chunks.
            if entry.root in folders and source not in listed and not os.path.lexists(entry.path):
                self.remove(source, entry)
                self.report.removed.append(source)

    # --- internals -----------------------------------------------------------------------------

    def _reuse_vectors(self, old_ids: list[str], rows: list[ChunkRow]) -> None:
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

    def _embed_and_store(self, rows: list[ChunkRow]) -> None:
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
        self.store(rows)

    def _relocate(self, f: SourceFile, entry: IndexedSource) -> None:
        ids = entry.ids(f.source)
        for start in range(0, len(ids), 1_000):
            records = self.collection.get(ids[start:start + 1_000])
            self.collection.upsert([r.id for r in records],
                                   metadata=[{**r.metadata, "path": str(f.path), "root": str(f.root)}
                                             for r in records])


__all__ = ["IndexWriter"]
