"""The files to index: found under the paths given (``discover``), then each read within the
size limit, hashed and parsed (``read_source``). Neither step needs the model or the store, so
worker processes (the Ray engine) and ``semkit cost`` read files exactly as an index run does.

Folders are walked recursively; hidden folders, ``SKIP_DIRS`` and folders matched by
``exclude`` are not entered, and symlinked folders are not followed (a link loop cannot hang
the walk). Supported files are those of ``readers`` (gzip-compressed ones too, e.g.
``.jsonl.gz``: ``readers`` reads the file inside).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from ..errors import InvalidInput
from .readers import SUPPORTED_SUFFIXES, Document, UnreadableFile, is_supported, read_bytes

DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "__MACOSX"})
"""Folder names never descended into (besides hidden ``.name`` folders such as ``.git``)."""


@dataclass(frozen=True)
class FileProblem:
    """One file that could not be indexed, or was read with a caveat, and why."""

    source: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


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
    """The folders given, resolved: files gone from them lose their records."""
    problems: list[FileProblem]
    ignored: int
    """Files inside the folders skipped for their type or by ``include``/``exclude``."""


def discover(paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], *, include: Sequence[str] = (),
             exclude: Sequence[str] = (), allowed_roots: Sequence[Path] = ()) -> Discovery:
    """Supported files under ``paths`` (folders recursively; hidden and ``SKIP_DIRS`` folders
    skipped; symlinked folders not followed, so link loops cannot hang the walk).

    ``include``/``exclude``: glob patterns matched against the path relative to its root and
    against the file name (``*.md``, ``drafts/*``); ``exclude`` also prunes folders.
    ``allowed_roots``: real (symlink-free) folders; a file whose real path is outside all of
    them is reported, not listed — a symlink inside a root cannot reach out of it.
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
            _walk(root, include, exclude, found, seen_real, allowed_roots)
        else:
            absolute = Path(os.path.abspath(given))
            _add_file(absolute, absolute.parent, absolute.name, found, seen_real, allowed_roots, explicit=True)
    return found


def is_inside(real_path: str | Path, roots: Sequence[Path]) -> bool:
    """Whether ``real_path`` (already resolved) is one of ``roots`` or below one."""
    path = Path(real_path)
    return any(path == root or root in path.parents for root in roots)


_OUTSIDE = "resolves to a file outside the folders this run may read (a symlink?); skipped"


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str], found: Discovery,
          seen_real: set[str], allowed_roots: Sequence[Path]) -> None:
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
            if not is_supported(path) or _matches(rel, exclude) \
                    or (include and not _matches(rel, include)):
                found.ignored += 1
                continue
            _add_file(path, root, rel, found, seen_real, allowed_roots, explicit=False)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _add_file(path: Path, root: Path, rel: str, found: Discovery, seen_real: set[str],
              allowed_roots: Sequence[Path], *, explicit: bool) -> None:
    try:
        real = os.path.realpath(path, strict=True)
    except (OSError, RuntimeError) as exc:  # broken link, link loop
        reason = getattr(exc, "strerror", None) or str(exc)
        found.problems.append(FileProblem(rel, str(path),
                                          f"cannot resolve the path (broken or looping symlink?): {reason}"))
        return
    if allowed_roots and not is_inside(real, allowed_roots):
        found.problems.append(FileProblem(rel, str(path), _OUTSIDE))
        return
    if real in seen_real:
        return  # the same file reached twice (a symlink to a file already listed)
    seen_real.add(real)
    if explicit and not is_supported(path):
        found.problems.append(FileProblem(rel, str(path), f"unsupported file type {path.suffix or '(none)'!r}; "
                                                          f"supported: {' '.join(SUPPORTED_SUFFIXES)} "
                                                          "(also gzip-compressed, e.g. .jsonl.gz)"))
        return
    found.files.append(SourceFile(path, root, rel))


# --- reading one file ----------------------------------------------------------------------------


@dataclass
class FileRead:
    """One file read and parsed, or why not: the part of indexing a file that needs neither
    the model nor the store, so it can run in another process."""

    file: SourceFile
    problem: str | None = None
    """Could not be read (reported; the file keeps whatever it had indexed before)."""
    file_hash: str = ""
    mtime: float = 0.0
    size: int = 0
    unchanged: bool = False
    """Same bytes and settings as what is indexed: nothing to do."""
    empty: str | None = None
    """Read, but holds no text (``"empty file"`` / ``"no text found in it"``)."""
    warnings: list[str] = field(default_factory=list)
    """Read, with a caveat (replacement decoding, skipped rows or pages)."""
    doc: Document | None = None


def read_source(f: SourceFile, indexed_hash: str | None, text_field: str | None,
                max_file_bytes: int, allowed_roots: Sequence[Path] = ()) -> FileRead:
    """Read, hash and parse ``f``; ``indexed_hash``: the hash under which it is fully
    indexed with the current settings (then it is not parsed at all). With ``allowed_roots``
    the real path is checked again here, just before reading (a link may have changed since
    discovery), and the resolved path is what is opened."""
    try:
        path = f.path
        if allowed_roots:
            real = os.path.realpath(f.path, strict=True)
            if not is_inside(real, allowed_roots):
                return FileRead(f, problem=_OUTSIDE)
            path = Path(real)
        stat = path.stat()
        if not S_ISREG(stat.st_mode):
            # A FIFO or device would block or never end on read.
            return FileRead(f, problem="not a regular file (a pipe, socket or device); skipped")
        if stat.st_size > max_file_bytes:
            return FileRead(f, problem=f"{stat.st_size / 1e6:.1f} MB is over the {max_file_bytes / 1e6:.1f} MB "
                                       "limit; raise the limit (--max-file-mb) to index it")
        data = _read_limited(path, max_file_bytes, no_follow=bool(allowed_roots))
    except OSError as exc:
        return FileRead(f, problem=f"cannot read: {exc.strerror or exc}")
    if data is None:
        return FileRead(f, problem=f"grew past the {max_file_bytes / 1e6:.1f} MB limit while being read; "
                                   "raise the limit (--max-file-mb) to index it")
    read = FileRead(f, file_hash=hashlib.sha256(data).hexdigest(), mtime=stat.st_mtime, size=stat.st_size)
    if read.file_hash == indexed_hash:
        read.unchanged = True
        return read
    try:
        read.doc = read_bytes(data, f.path, text_field=text_field)
    except UnreadableFile as exc:
        read.problem = str(exc)
    except Exception as exc:  # a parser bug on one odd file must not stop the run
        read.problem = f"unexpected {type(exc).__name__} while reading: {exc}"
    else:
        read.warnings = list(read.doc.warnings)
        if not read.doc.sections:
            read.empty = "empty file" if not data.strip() else "no text found in it"
    return read


def _read_limited(path: Path, limit: int, *, no_follow: bool = False) -> bytes | None:
    # O_NOFOLLOW: a resolved path whose last part became a symlink since is refused, not followed.
    fd = os.open(path, os.O_RDONLY | (os.O_NOFOLLOW if no_follow else 0))
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "SKIP_DIRS",
    "Discovery",
    "FileProblem",
    "FileRead",
    "SourceFile",
    "discover",
    "is_inside",
    "read_source",
]
