"""How the CLI speaks: Rich tables for people, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import SemkitError

stdout = Console(width=None if sys.stdout.isatty() else 140)
stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


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


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          justify_right: Iterable[str] = ()) -> None:
    right = set(justify_right)
    t = Table(title=title, show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(t)


def fail(error: SemkitError | str, code: int = 1) -> typer.Exit:
    message = str(error)
    name = type(error).__name__ if isinstance(error, SemkitError) else "error"
    stderr.print(f"[bold red]{name}:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Progress on stderr (stdout stays clean for pipes); yields ``advance(n)``.

    On a terminal, a Rich bar. Elsewhere (a log file, CI, ``2> file``) a bar's redraws would be
    garbage, so a plain line is written each time another tenth is done: the log shows progress
    without being flooded.
    """
    if not enabled or total <= 0:
        yield lambda n: None
        return
    if not stderr.is_terminal:
        lines = LineProgress(total, description)
        yield lines.advance
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


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
