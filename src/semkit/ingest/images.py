"""Index image files (.jpg .jpeg .png .webp .gif) into a collection with a CLIP model.

One record per file: id = the file's path, vector = its CLIP embedding, metadata = ``path``,
``width``, ``height``, ``format``, ``sha256``, ``bytes`` and a small JPEG ``thumbnail`` (a
data: URI, at most 128 px) for result lists. Re-running skips files whose content hash is
unchanged, and removes the records of images deleted from the folders indexed; unreadable
files are reported and the rest are indexed (a file that turns unreadable keeps its record).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..models.base import supports_images
from ..models.images import IMAGE_SUFFIXES

THUMBNAIL_PX = 128


@dataclass
class ImageIndexReport:
    collection: str
    seen: int = 0
    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of every file that could not be read."""
    removed: list[str] = field(default_factory=list)
    """Records of images that are no longer in the folders indexed."""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "seen": self.seen, "indexed": self.indexed,
                "unchanged": self.unchanged, "removed": self.removed,
                "failed": [{"source": s, "reason": r} for s, r in self.failed],
                "seconds": self.seconds}


def find_images(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files among ``paths``, folders walked recursively (hidden entries skipped)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [Path(root) / f for f in sorted(files)
                        if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            out.append(path)
    return list(dict.fromkeys(p.resolve() for p in out))


def thumbnail(img: Any, px: int = THUMBNAIL_PX) -> str:
    small = img.copy()
    small.thumbnail((px, px))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def index_images(collection: Any, paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
                 *, model: Any = None, batch_size: int = 32, remove_missing: bool = True,
                 progress: Callable[[int, int, str], None] | None = None) -> ImageIndexReport:
    """Embed the image files under ``paths`` into ``collection``.

    ``model``: the CLIP embedder (default: the collection's own model, which must embed images).
    ``remove_missing``: delete the records of images once indexed under a folder in ``paths``
    whose file is gone (texts in a mixed collection are never touched here).
    """
    from PIL import Image

    from ..models.images import load_image

    started = time.perf_counter()
    model = model if model is not None else collection.model
    if not supports_images(model):
        raise InvalidInput(f"collection {collection.name!r} needs a model that embeds images "
                           "(clip:...) to index images; create it with model='clip:/path'")
    if collection.dimensions != model.dimensions:
        raise InvalidInput(f"collection {collection.name!r} holds {collection.dimensions}-dimensional "
                           f"vectors, {model.id} makes {model.dimensions}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = find_images(paths)
    report = ImageIndexReport(collection.name, seen=len(files))
    known = {r.id: (r.metadata or {}).get("sha256") for r in collection.get([str(f) for f in files])}
    pending: list[tuple[str, Any, dict[str, Any]]] = []

    def flush() -> None:
        if not pending:
            return
        batch = model.embed_images([img for _, img, _ in pending])
        collection.upsert([i for i, _, _ in pending], vectors=batch.vectors,
                          metadata=[m for _, _, m in pending])
        report.indexed += [i for i, _, _ in pending]
        pending.clear()

    for done, f in enumerate(files, 1):
        source = str(f)
        try:
            data = f.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if known.get(source) == digest:
                report.unchanged += 1
                continue
            with Image.open(io.BytesIO(data)) as raw:
                fmt, (width, height) = raw.format, raw.size
            img = load_image(data)
        except (OSError, ValueError, SyntaxError) as exc:
            reason = "not an image file" if isinstance(exc, Image.UnidentifiedImageError) else str(exc)
            report.failed.append((source, reason or type(exc).__name__))
            continue
        finally:
            if progress is not None:
                progress(done, len(files), source)
        meta = {"path": source, "width": width, "height": height, "format": fmt, "sha256": digest,
                "bytes": len(data), "thumbnail": thumbnail(img)}
        pending.append((source, img, meta))
        if len(pending) >= batch_size:
            flush()
    flush()
    if remove_missing:
        report.removed = _remove_missing(collection, paths, {str(f) for f in files})
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _remove_missing(collection: Any, paths: Sequence[str | os.PathLike[str]], found: set[str]) -> list[str]:
    """Ids of image records under the folders in ``paths`` whose file no longer exists (deleted)."""
    roots = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    if not roots:
        return []
    gone = []
    for batch in collection.scan():
        for record in batch:
            meta = record.metadata or {}
            if record.id in found or "sha256" not in meta or "thumbnail" not in meta:
                continue  # present, or not an image record written here (a text chunk)
            path = Path(record.id)
            if (path.suffix.lower() in IMAGE_SUFFIXES and any(root in path.parents for root in roots)
                    and not path.exists()):
                gone.append(record.id)
    if gone:
        collection.delete(gone)
    return gone
