"""Documents in, searchable chunks out: ``index_paths(collection, paths)``.

- ``readers``: one reader per format (.txt .md .html .pdf .docx .csv .tsv .jsonl), returning
  titled sections;
- ``chunking``: token-aware chunks in the embedding model's own tokens, with overlap;
- ``options``: ``IndexOptions``, the knobs of a run (chunk size, globs, size limit, engine's);
- ``sources``: which files (``discover``) and each one read, hashed and parsed (``read_source``);
- ``manifest``: what the collection already holds per file, so unchanged files are skipped;
- ``plan``: how a read document becomes records (``ChunkPlan``: chunks under their title);
- ``writer``: ``IndexWriter``, every change a run makes to the collection, and its report;
- ``pipeline``: ``index_paths``, the incremental run (unchanged files skipped by content hash,
  changed files replace their chunks, deleted files lose theirs) on the local engine, or on
  Ray (``distributed``) with ``engine="ray"``; ``report``: its ``IndexReport``;
- ``images``: image files embedded with a CLIP model (``semkit index --clip``).

Importing this package is cheap: pypdf, trafilatura and Ray load only when used.
"""

from __future__ import annotations

from .chunking import Chunk, Chunker, counter_for_model, default_chunk_tokens, default_overlap
from .options import Engine, IndexOptions
from .pipeline import index_paths, index_paths_ray
from .readers import SUPPORTED_SUFFIXES, Document, Section, UnreadableFile, read_file
from .report import IndexReport
from .sources import FileProblem, discover

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "Chunker",
    "Document",
    "Engine",
    "FileProblem",
    "IndexOptions",
    "IndexReport",
    "Section",
    "UnreadableFile",
    "counter_for_model",
    "default_chunk_tokens",
    "default_overlap",
    "discover",
    "index_paths",
    "index_paths_ray",
    "read_file",
]
