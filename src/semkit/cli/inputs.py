"""Reading texts for CLI commands: arguments, a file of lines, or standard input."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InvalidInput


def read_lines(path: str) -> list[str]:
    """Non-blank lines of a UTF-8 file ('-' = stdin). Non-UTF-8 input is an error, not mojibake."""
    if path == "-":
        data = sys.stdin.buffer.read()
        where = "standard input"
    else:
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"no such file: {path}")
        data = p.read_bytes()
        where = path
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{where} is not UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); convert it, "
            f"e.g. `iconv -f latin1 -t utf-8 {path} > fixed.txt`"
        ) from None
    return [line for line in text.splitlines() if line.strip()]


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
