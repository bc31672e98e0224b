"""Reading texts for CLI commands: arguments, a file of lines, or standard input."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from ..errors import InvalidInput
from ..ingest.readers import UnreadableFile
from ..ingest.readers import read_lines as read_text_lines


def read_lines(path: str) -> list[str]:
    """Non-blank lines of a UTF-8 file ('-' = stdin), split as ``semkit cost -`` splits them
    (``ingest.readers.read_lines``). Non-UTF-8 input is an error, not mojibake: these texts
    are embedded and stored as they are."""
    opened: Any  # a file we open and close, or stdin, which stays open
    if path == "-":
        opened, where = nullcontext(sys.stdin.buffer), "standard input"
    else:
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"no such file: {path}")
        opened, where = p.open("rb"), path
    try:
        with opened as stream:
            lines: IO[bytes] = stream
            return [line for _, line in read_text_lines(lines, [], strict=True)]
    except UnreadableFile as exc:
        raise InvalidInput(f"{where}: {exc}; convert it, e.g. `iconv -f latin1 -t utf-8 {path} > fixed.txt`") from None


def gather_texts(args: list[str] | None, file: str | None) -> list[str]:
    texts = list(args or [])
    if texts == ["-"]:
        texts = []
        file = file or "-"
    if file:
        texts.extend(read_lines(file))
    elif not texts and not sys.stdin.isatty():
        texts = read_lines("-")
    if not texts:
        raise InvalidInput("no texts given: pass them as arguments, with --file PATH, or on stdin")
    return texts
