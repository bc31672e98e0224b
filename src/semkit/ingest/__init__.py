"""Documents in, searchable chunks out: ``index_paths(collection, paths)``.

- ``readers``: one reader per format (.txt .md .html .pdf .docx .csv .tsv .jsonl), returning
  titled sections;
- ``chunking``: token-aware chunks in the embedding model's own tokens, with overlap;
- ``pipeline``: the incremental run (unchanged files skipped by content hash, changed files
  replace their chunks, deleted files lose theirs) and its ``IndexReport``.

Importing this package is cheap: pypdf, python-docx and trafilatura load only when a file of
their format is read.
"""

from __future__ import annotations

from .chunking import Chunk, Chunker, counter_for_model, default_chunk_tokens, default_overlap
from .pipeline import FileProblem, IndexReport, discover, index_paths
from .readers import SUPPORTED_SUFFIXES, Document, Section, UnreadableFile, read_file

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Chunker",
    "Document",
    "FileProblem",
    "IndexReport",
    "Section",
    "UnreadableFile",
    "counter_for_model",
    "default_chunk_tokens",
    "default_overlap",
    "discover",
    "index_paths",
    "read_file",
]
