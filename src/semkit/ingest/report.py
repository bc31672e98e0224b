"""What an indexing run tells its caller: ``IndexReport`` at the end, ``Progress`` as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .sources import FileProblem, SourceFile

Progress = Callable[[int, int, str], None]
"""``progress(files_done, files_total, current_source)``."""


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
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Ray engine: per node (``ip/node-id-prefix``), the ``batches`` and ``chunks`` it returned,
    its worker processes (``workers``) and their ``model_loads`` (one per worker: the model is
    loaded once per actor, not per batch). Empty for the local engine."""
    batches_resent: int = 0
    """Ray engine: batches sent again because the worker holding them was lost (each lost worker
    costs at most the batches it held; the embedding cache may still answer part of them)."""
    workers_lost: list[str] = field(default_factory=list)
    """Ray engine: the node of each worker lost during the run, in order."""

    def fail(self, f: SourceFile, reason: str) -> None:
        self.failed.append(FileProblem(f.source, str(f.path), reason))

    def warn(self, f: SourceFile, reason: str) -> None:
        self.warnings.append(FileProblem(f.source, str(f.path), reason))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["IndexReport", "Progress"]
