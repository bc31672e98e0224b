"""How a read document becomes records: ``ChunkPlan`` (chunk size, overlap, header) and the
``ChunkRow`` it makes for each chunk.

What is embedded is ``"<title> > <section>\\n\\n<chunk>"`` (the header cut to fit the model's
context); the record's text is the plain chunk. Short chunks out of context ("Preheat to 220
°C") retrieve far better with their document's title; snippets and keyword search stay clean.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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
from .readers import Document
from .sources import FileRead, SourceFile

if TYPE_CHECKING:
    from ..collection import Collection


@dataclass
class ChunkRow:
    """One chunk on its way into the collection: record id, text and metadata, and the vector
    once known (embedded, or kept from the unchanged chunk it replaces)."""

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

    def rows_of(self, read: FileRead, settings: str) -> list[ChunkRow]:
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
             settings: str) -> list[ChunkRow]:
        """The file's records, ids ``<source>#<n>``, in order."""
        chunker = self.chunker
        rows: list[ChunkRow] = []
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
                rows.append(ChunkRow("", chunk.text, self._header(doc.title, section_name, chunk.tokens), meta))
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
"""One chunker (and tokenizer) per plan and process."""


@functools.lru_cache(maxsize=4096)
def _truncated_header(plan: ChunkPlan, header: str, room: int) -> str:
    return truncate_to_tokens(plan.chunker.counter, header, room)


__all__ = ["ChunkPlan", "ChunkRow"]
