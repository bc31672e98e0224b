"""The CLI's plain-text output: tables that fit the width, styles that survive wrapping, a bar
redrawn in place, and errors as ``Name: message``."""

from __future__ import annotations

import io
import re

import pytest

from semkit.cli import output
from semkit.errors import InvalidInput
from semkit.terminal import ANSI_ESCAPE, TerminalBar, styled, visible_width


def plain(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def test_a_table_aligns_and_right_justifies_the_numbers() -> None:
    text = output.render_table("sizes", ["name", "count"], [("a", 5), ("longer name", 12), ("b", None)],
                               justify_right=("count",))
    lines = text.splitlines()
    assert lines[0].strip() == "sizes"
    assert lines[1] == "┏━━━━━━━━━━━━━┳━━━━━━━┓"
    assert lines[2] == "┃ name        ┃ count ┃"
    assert "│ a           │     5 │" in lines
    assert "│ longer name │    12 │" in lines
    assert "│ b           │       │" in lines  # None is an empty cell
    assert len({len(line) for line in lines[1:]}) == 1


def test_a_wide_table_wraps_at_spaces_then_folds_within_the_width() -> None:
    sentence = "the quick brown fox jumps over the lazy dog " * 4
    token = "x" * 90
    text = output.render_table(None, ["id", "text", "token"], [("1", sentence, token)], width=60)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 60
    body = [line for line in lines if line.startswith("│")]
    assert len(body) > 3
    # Words are never cut while wrapping at spaces is enough; the 90-character token is folded.
    texts = " ".join(line.split("│")[2].strip() for line in body)
    assert texts.split() == sentence.split()
    assert "".join(line.split("│")[3].strip() for line in body) == token


def test_styles_are_closed_and_reopened_on_every_wrapped_line() -> None:
    cell = "plain " + styled("highlighted words that wrap over several lines", "bold yellow") + " end"
    text = output.render_table(None, ["snippet"], [(cell,)], width=24, colors=True)
    body = [line for line in text.splitlines() if line.startswith("│")]
    assert len(body) > 2
    for line in body:
        assert visible_width(line) == 24
        opened = line.count("\x1b[1;33m")
        assert opened == line.count("\x1b[0m")  # nothing leaks into the border or the next row
    assert plain(" ".join(line.strip("│ ") for line in body)).split() == plain(cell).split()


def test_show_lines_separates_rows_and_cells_keep_their_line_breaks() -> None:
    text = output.render_table(None, ["#", "id"], [("1", "a\nb"), ("2", "c")], show_lines=True)
    assert text.splitlines()[3:8] == ["│ 1 │ a  │", "│   │ b  │", "├───┼────┤", "│ 2 │ c  │", "└───┴────┘"]


def test_errors_are_name_colon_message_without_colour_in_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    exit_ = output.fail(InvalidInput("no texts given [--file]"))
    assert exit_.exit_code == 1
    assert capsys.readouterr().err == "InvalidInput: no texts given [--file]\n"


def test_the_bar_fits_the_width_and_counts() -> None:
    stream = io.StringIO()
    bar = TerminalBar(2000, "embedding", stream=stream)
    bar.update(500)
    line = bar.render(60)
    assert len(line) <= 59 and re.search(r"━+╺ +500/2,000 0:00 ETA 0:00$", line), line
    assert TerminalBar(0, "indexing", stream=stream).render(60).startswith("indexing 0 0:00")
    bar.update(2000)  # the last state is always drawn
    bar.close()
    written = stream.getvalue()
    assert written.startswith("\r") and "2,000/2,000" in written and written.endswith("\r\x1b[K")
