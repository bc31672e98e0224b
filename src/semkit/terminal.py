"""Terminal output without dependencies: ANSI styles and progress on stderr.

Used by the CLI and by the library's own ``progress=True`` (``semkit.models.local``), so neither
needs a terminal toolkit. Colours only go to a terminal and only when ``NO_COLOR`` is unset
(https://no-color.org); a pipe or a log file gets plain text.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_SGR_CODES = {
    "bold": "1", "dim": "2", "italic": "3", "underline": "4", "reverse": "7",
    "red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36",
}
RESET = "\x1b[0m"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def sgr(style: str) -> str:
    """The escape sequence that turns on ``style``: space-separated names, e.g. ``"bold yellow"``."""
    try:
        codes = [_SGR_CODES[name] for name in style.split()]
    except KeyError as exc:
        raise ValueError(f"unknown style {exc.args[0]!r}; known: {', '.join(_SGR_CODES)}") from None
    return f"\x1b[{';'.join(codes)}m" if codes else ""


def styled(text: str, style: str | None) -> str:
    """``text`` wrapped in the escape sequences of ``style`` (unchanged when there is no style)."""
    return f"{sgr(style)}{text}{RESET}" if style and text else text


def visible_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: escape sequences take none."""
    return len(ANSI_ESCAPE.sub("", text))


def colors_enabled(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that should get colours (not a pipe, NO_COLOR unset)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def terminal_width(stream: TextIO, default: int = 140) -> int:
    """The terminal's width when ``stream`` is one; ``default`` for pipes and files."""
    if not is_terminal(stream):
        return default
    return shutil.get_terminal_size((default, 24)).columns


class LineProgress:
    """Progress as plain lines on stderr (``embedding: 512/2,000 (25%), 3 s``), one per tenth."""

    def __init__(self, total: int, description: str, steps: int = 10) -> None:
        self.total = total
        self.description = description
        self.steps = steps
        self.done = 0
        self._shown = 0
        self._start = time.monotonic()

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` so far, out of ``total`` when it is only known now (files found by a walk)."""
        self.done = done
        if total is not None:
            self.total = total
        if self.total <= 0:
            return
        step = min(self.steps, self.done * self.steps // self.total)
        if step > self._shown:
            self._shown = step
            percent = min(100, self.done * 100 // self.total)
            sys.stderr.write(f"{self.description}: {self.done:,}/{self.total:,} ({percent}%), "
                             f"{time.monotonic() - self._start:.0f} s\n")
            sys.stderr.flush()

    def close(self) -> None:
        """Nothing to clean up: every line written stays in the log."""


class TerminalBar:
    """A bar redrawn in place on a terminal (``\\r``), erased when closed:
    ``embedding ━━━━━━━━━━╺━━━━━━━━━ 1,024/2,000 0:03 ETA 0:02``.

    Redraws are throttled (10 per second) so that a fast loop does not spend its time writing
    to the terminal. A total of 0 means "not known yet": the bar shows only the count.
    """

    def __init__(self, total: int, description: str, stream: TextIO | None = None,
                 min_interval: float = 0.1) -> None:
        self.total = total
        self.description = description
        self.done = 0
        self.current = ""
        self._stream = stream or sys.stderr
        self._color = colors_enabled(self._stream)
        self._start = time.monotonic()
        self._min_interval = min_interval
        self._drawn_at = 0.0
        self._drawn = False

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int, total: int | None = None, current: str | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        if current is not None:
            self.current = current
        now = time.monotonic()
        finished = self.total > 0 and self.done >= self.total
        if finished or now - self._drawn_at >= self._min_interval:
            self._drawn_at = now
            self._stream.write("\r" + self.render(terminal_width(self._stream)) + "\x1b[K")
            self._stream.flush()
            self._drawn = True

    def render(self, width: int) -> str:
        """The bar's line, at most ``width`` columns."""
        elapsed = time.monotonic() - self._start
        counts = f"{self.done:,}/{self.total:,}" if self.total > 0 else f"{self.done:,}"
        tail = f" {counts} {_clock(elapsed)}"
        if self.total > 0 and 0 < self.done < self.total:
            tail += f" ETA {_clock(elapsed * (self.total - self.done) / self.done)}"
        if self.current:
            tail += " " + self.current
        head = self.description + " "
        room = width - 1 - len(head) - len(tail)  # the last column stays empty: no line wrap
        bar_width = min(40, room)
        if self.total <= 0 or bar_width < 10:
            return (head.rstrip() + tail)[: max(0, width - 1)]
        filled = min(bar_width, bar_width * self.done // self.total)
        bar = "━" * filled + "╺" * (filled < bar_width) + " " * max(0, bar_width - filled - 1)
        if self._color:
            bar = styled("━" * filled, "magenta") + styled(bar[filled:], "dim")
        return head + bar + tail

    def close(self) -> None:
        """Erase the bar: what stays on the terminal is the command's own output."""
        if self._drawn:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def open_progress(total: int, description: str) -> TerminalBar | LineProgress:
    """A bar on a terminal; elsewhere (a log file, CI, ``2> file``) a bar's redraws would be
    garbage, so plain lines, one each time another tenth is done."""
    if is_terminal(sys.stderr):
        return TerminalBar(total, description)
    return LineProgress(total, description)


@contextmanager
def progress(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Progress on stderr (stdout stays clean for pipes); yields ``advance(n)``."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    shown = open_progress(total, description)
    try:
        yield shown.advance
    finally:
        shown.close()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
