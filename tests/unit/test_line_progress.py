"""Progress for logs (stderr not a terminal): one plain line per tenth, never a flood."""

from __future__ import annotations

import re

import pytest

from semkit.cli.output import LineProgress


def shown(err: str) -> list[tuple[int, int, int]]:
    pattern = r"indexing: ([\d,]+)/([\d,]+) \((\d+)%\), \d+ s$"
    return [tuple(int(g.replace(",", "")) for g in m.groups())  # type: ignore[misc]
            for m in re.finditer(pattern, err, re.MULTILINE)]


def test_one_line_per_tenth_whatever_the_step_size(capsys: pytest.CaptureFixture[str]) -> None:
    progress = LineProgress(1000, "indexing")
    for _ in range(1000):
        progress.advance(1)
    lines = shown(capsys.readouterr().err)
    assert [p for _, _, p in lines] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [d for d, _, _ in lines] == [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]


def test_a_total_learned_later_and_big_steps(capsys: pytest.CaptureFixture[str]) -> None:
    progress = LineProgress(0, "indexing")
    progress.update(0)  # nothing known yet: nothing to say
    progress.update(3, total=12)
    progress.update(12, total=12)  # one big step: one line, not one per tenth skipped
    assert shown(capsys.readouterr().err) == [(3, 12, 25), (12, 12, 100)]
