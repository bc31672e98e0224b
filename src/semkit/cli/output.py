"""How the CLI speaks: aligned tables for people, JSON for scripts, errors on stderr.

Plain text built here (no terminal toolkit: the base install stays small). Colours only on a
terminal and only without NO_COLOR; pipes get the same text without escape sequences.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from click.exceptions import Exit

from ..errors import SemkitError
from ..terminal import (
    ANSI_ESCAPE,
    RESET,
    LineProgress,
    colors_enabled,
    is_terminal,
    progress,
    styled,
    terminal_width,
    visible_width,
)

__all__ = ["LineProgress", "echo", "emit_json", "fail", "note", "progress_bar", "style", "table"]

NOT_A_TERMINAL_WIDTH = 140
"""Tables written to a pipe or a file are laid out for this width (COLUMNS overrides it)."""


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=_default) + "\n")


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return str(value)


def echo(text: str = "", style_name: str | None = None) -> None:
    """A line on stdout, in ``style_name`` (e.g. ``"dim"``) when stdout is a colour terminal."""
    _write(sys.stdout, text, style_name)


def note(text: str, style_name: str | None = None) -> None:
    """A line on stderr (warnings, summaries): stdout stays the command's result."""
    _write(sys.stderr, text, style_name)


def _write(stream: TextIO, text: str, style_name: str | None) -> None:
    if style_name and colors_enabled(stream):
        text = styled(text, style_name)
    stream.write(text + "\n")
    stream.flush()


def style(text: str, style_name: str | None) -> str:
    """``text`` styled for stdout: escape sequences on a colour terminal, unchanged elsewhere."""
    return styled(text, style_name) if style_name and colors_enabled(sys.stdout) else text


def printable(text: str) -> str:
    """``text`` without control characters (a document's escape sequences or carriage returns
    would move the cursor); line breaks stay, tabs become spaces."""
    return _CONTROL.sub("", text.replace("\t", " "))


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def stdout_colors() -> bool:
    return colors_enabled(sys.stdout)


def fail(error: SemkitError | str, code: int = 1) -> Exit:
    """Print ``Name: message`` on stderr; the caller raises the returned exit."""
    message = str(error)
    name = type(error).__name__ if isinstance(error, SemkitError) else "error"
    prefix = styled(f"{name}:", "bold red") if colors_enabled(sys.stderr) else f"{name}:"
    sys.stderr.write(f"{prefix} {message}\n")
    sys.stderr.flush()
    return Exit(code)


def output_width() -> int:
    """Columns available on stdout: COLUMNS when set, the terminal's width, else 140."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return terminal_width(sys.stdout, NOT_A_TERMINAL_WIDTH)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          justify_right: Iterable[str] = (), show_lines: bool = False) -> None:
    """Print a boxed table; cells may hold several lines and escape sequences (see ``style``)."""
    sys.stdout.write(render_table(title, columns, rows, justify_right, show_lines, output_width(),
                                  colors_enabled(sys.stdout)))
    sys.stdout.flush()


def render_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                 justify_right: Iterable[str] = (), show_lines: bool = False, width: int = NOT_A_TERMINAL_WIDTH,
                 colors: bool = False) -> str:
    """The table as text at most ``width`` columns wide (unless even one column per cell
    cannot fit): the widest columns give up room first, their cells wrap at spaces and
    fold long words."""
    right = set(justify_right)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max([visible_width(line) for row in cells for line in row[i].split("\n")] + [visible_width(name)])
              for i, name in enumerate(columns)]
    room = width - (3 * len(columns) + 1)
    # First wrap at spaces only (no column narrower than its longest word), then fold words if
    # that is still too wide; a column keeps at least 6 characters (a table is then too wide,
    # and the terminal wraps it, rather than every cell becoming a letter per line).
    longest_words = [max([visible_width(word) for row in cells for word in row[i].replace("\n", " ").split(" ")]
                         + [visible_width(word) for word in name.split(" ")])
                     for i, name in enumerate(columns)]
    _shrink(widths, room, [min(w, max(6, words)) for w, words in zip(widths, longest_words, strict=True)])
    _shrink(widths, room, [min(w, 6) for w in widths])

    def line(left: str, fill: str, cross: str, end: str) -> str:
        return left + cross.join(fill * (w + 2) for w in widths) + end

    def row_lines(row: Sequence[str], bar: str, header: bool = False) -> list[str]:
        wrapped = [_wrap_cell(cell, w) for cell, w in zip(row, widths, strict=True)]
        out = []
        for n in range(max(len(c) for c in wrapped)):
            parts = []
            for i, cell_lines in enumerate(wrapped):
                text = cell_lines[n] if n < len(cell_lines) else ""
                pad = " " * (widths[i] - visible_width(text))
                if header and colors:
                    text = styled(text, "bold")
                parts.append(pad + text if columns[i] in right else text + pad)
            out.append(bar + " " + f" {bar} ".join(parts) + " " + bar)
        return out

    total_width = sum(widths) + 3 * len(widths) + 1
    out: list[str] = []
    if title:
        for title_line in _wrap_cell(title, total_width):
            indent = max(0, (total_width - visible_width(title_line)) // 2)
            out.append(" " * indent + (styled(title_line, "italic") if colors else title_line))
    out.append(line("┏", "━", "┳", "┓"))
    out += row_lines(list(columns), "┃", header=True)
    out.append(line("┡", "━", "╇", "┩"))
    for n, row in enumerate(cells):
        if show_lines and n:
            out.append(line("├", "─", "┼", "┤"))
        out += row_lines(row, "│")
    out.append(line("└", "─", "┴", "┘"))
    return "\n".join(out) + "\n"


def _shrink(widths: list[int], room: int, floors: Sequence[int]) -> None:
    """Narrow the widest columns, one at a time and none below its floor, until they fit in ``room``."""
    excess = sum(widths) - room
    while excess > 0:
        narrowable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not narrowable:
            return
        widest = max(narrowable, key=lambda i: widths[i])
        next_widest = max((widths[i] for i in narrowable if i != widest), default=0)
        target = max(floors[widest], next_widest, widths[widest] - excess)
        if target >= widths[widest]:
            target = widths[widest] - 1
        excess -= widths[widest] - target
        widths[widest] = target


def _wrap_cell(text: str, width: int) -> list[str]:
    """``text``'s lines wrapped to ``width`` columns; styles stay on across the breaks."""
    lines = [piece for paragraph in text.split("\n") for piece in _wrap_line(paragraph, max(1, width))]
    return _carry_styles(lines)


def _wrap_line(line: str, width: int) -> list[str]:
    if visible_width(line) <= width:
        return [line]
    lines, current, used = [], "", 0
    for word in line.split(" "):
        size = visible_width(word)
        if used and used + 1 + size > width:
            lines.append(current)
            current, used = "", 0
        if used:
            current, used = current + " ", used + 1
        while size > width - used:  # a word longer than a line: fold it
            head, word = _split_visible(word, width - used)
            lines.append(current + head)
            current, used, size = "", 0, visible_width(word)
        current, used = current + word, used + size
    lines.append(current)
    return lines


def _split_visible(text: str, columns: int) -> tuple[str, str]:
    """``text`` cut after ``columns`` visible characters (escape sequences do not count)."""
    seen, i = 0, 0
    while i < len(text) and seen < columns:
        escape = ANSI_ESCAPE.match(text, i)
        if escape:
            i = escape.end()
            continue
        seen += 1
        i += 1
    while i < len(text):  # keep escape sequences that follow with the head
        escape = ANSI_ESCAPE.match(text, i)
        if not escape:
            break
        i = escape.end()
    return text[:i], text[i:]


def _carry_styles(lines: list[str]) -> list[str]:
    """Close a style still on at a line's end and reopen it on the next line, so that each line
    can be printed inside a table row on its own."""
    active: list[str] = []
    out = []
    for text in lines:
        prefix = "".join(active)
        for escape in ANSI_ESCAPE.findall(text):
            active = [] if escape == RESET else [*active, escape]
        out.append(prefix + text + (RESET if active else ""))
    return out


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Progress on stderr (stdout stays clean for pipes); yields ``advance(n)``.

    On a terminal, a bar redrawn in place. Elsewhere (a log file, CI, ``2> file``) a bar's
    redraws would be garbage, so a plain line is written each time another tenth is done: the
    log shows progress without being flooded.
    """
    with progress(total, description, enabled) as advance:
        yield advance


def stderr_is_terminal() -> bool:
    return is_terminal(sys.stderr)
