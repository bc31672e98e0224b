"""How to index: ``IndexOptions``, one frozen value shared by both engines, the CLI and the server.

``index_paths(collection, paths, IndexOptions(chunk_tokens=200))`` and
``index_paths(collection, paths, chunk_tokens=200)`` are the same call: keywords are mapped onto
the options in one place (``IndexOptions.of``). Options are checked when they are made, so a bad
value fails before any file is read or the model is loaded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import InvalidInput
from .sources import DEFAULT_MAX_FILE_BYTES

Engine = Literal["local", "ray"]
"""``local``: this process; ``ray``: read, chunk and embed on Ray actors across a cluster (``semkit[ray]``)."""

ENGINES: tuple[Engine, ...] = get_args(Engine)


@dataclass(frozen=True)
class IndexOptions:
    """The knobs of an indexing run (all optional)."""

    chunk_tokens: int | None = None
    """Chunk size in the model's tokens, special tokens included (default: a bit under the
    model's context, 205 for all-MiniLM-L6-v2, at most 512)."""
    overlap: int | None = None
    """Tokens repeated between neighbouring chunks (default: 15% of ``chunk_tokens``)."""
    text_field: str | None = None
    """The column/field of CSV and JSON-lines files to index (default: the first of ``text``,
    ``content``, ``body``...)."""
    include: Sequence[str] = ()
    """Only files matching one of these globs (relative path or file name, ``*.md``)."""
    exclude: Sequence[str] = ()
    """Skip files and folders matching one of these globs (``drafts/*``)."""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    """Larger files are reported as failed, not read."""
    remove_missing: bool = True
    """Delete the records of files gone from an indexed folder."""
    batch_size: int = 64
    """Chunks per embedding call and per store write."""
    allowed_roots: Sequence[str | os.PathLike[str]] = ()
    """When set, only files whose real path (every symlink followed) lies inside one of these
    folders are read; others are reported as failed. The server confines clients to its
    ``--index-root`` folders with it."""
    address: str | None = None
    """Ray engine: the cluster (``ray://HEAD:10001``, ``auto``); default: start a local instance."""
    workers: int | None = None
    """Ray engine: embedding actors, each with its own copy of the model (default: one per two
    CPUs of the cluster, at least one)."""

    def __post_init__(self) -> None:
        # Stored as tuples so the options stay hashable and cannot change under a run; a lone
        # pattern given as a string is one pattern, not one per character.
        for name in ("include", "exclude"):
            patterns = getattr(self, name)
            if isinstance(patterns, str):
                patterns = (patterns,)
            if not all(isinstance(p, str) for p in patterns):
                raise InvalidInput(f"{name} must be glob patterns (strings), got {patterns!r}")
            object.__setattr__(self, name, tuple(patterns))
        if isinstance(self.allowed_roots, (str, os.PathLike)):
            raise InvalidInput("allowed_roots must be a list of folders, not one path")
        object.__setattr__(self, "allowed_roots", tuple(Path(os.path.realpath(r)) for r in self.allowed_roots))
        _check_count("max_file_bytes", self.max_file_bytes, minimum=1)
        _check_count("batch_size", self.batch_size, minimum=1)
        if self.chunk_tokens is not None:
            _check_count("chunk_tokens", self.chunk_tokens, minimum=1)
        if self.overlap is not None:
            _check_count("overlap", self.overlap, minimum=0)
        if self.chunk_tokens is not None and self.overlap is not None and self.overlap > self.chunk_tokens // 2:
            raise InvalidInput(f"overlap={self.overlap} is more than half of chunk_tokens={self.chunk_tokens}; "
                               "use a smaller overlap")
        if self.workers is not None:
            _check_count("workers", self.workers, minimum=1)

    @classmethod
    def of(cls, options: IndexOptions | None = None, overrides: Mapping[str, Any] | None = None) -> IndexOptions:
        """``options`` (default: all defaults) with the keyword ``overrides`` applied: the one
        place where ``index_paths``' keywords become options."""
        base = options if options is not None else cls()
        if not overrides:
            return base
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"unknown indexing option(s) {', '.join(unknown)}; the options are {', '.join(names)}")
        return dataclasses.replace(base, **overrides)

    def check_engine(self, engine: str) -> None:
        """Fail on an unknown engine, or on Ray's options given to the local one (they would be
        silently ignored)."""
        if engine not in ENGINES:
            raise InvalidInput(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
        if engine != "ray" and (self.address is not None or self.workers is not None):
            raise InvalidInput("address and workers apply to the Ray engine: add engine='ray' (--engine ray)")


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise InvalidInput(f"{name} must be {kind} integer, got {value!r}")


__all__ = ["ENGINES", "Engine", "IndexOptions"]
