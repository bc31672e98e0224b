"""The standard-library .docx reader (``semkit.ingest.docx_xml``) against python-docx, the
package it can replace in the base install: the same blocks, texts, style names, table cells
(merged ones included) and title on documents python-docx writes and on examples/docs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from semkit.ingest.docx_xml import DocxParagraph, DocxTable, read_docx_content

ROOT = Path(__file__).resolve().parents[2]


def _as_python_docx_reads(data: bytes) -> tuple[list[Any], str]:
    import docx

    document = docx.Document(io.BytesIO(data))
    blocks: list[Any] = []
    for block in document.iter_inner_content():
        if hasattr(block, "rows"):
            blocks.append(DocxTable(tuple(tuple(cell.text for cell in row.cells) for row in block.rows)))
        else:
            blocks.append(DocxParagraph(block.text, (block.style.name if block.style is not None else "") or ""))
    return blocks, document.core_properties.title or ""


def _same_as_python_docx(data: bytes) -> None:
    content = read_docx_content(data)
    blocks, title = _as_python_docx_reads(data)
    assert list(content.blocks) == blocks
    assert content.title == title


def test_headings_paragraphs_breaks_and_merged_table_cells_read_as_python_docx() -> None:
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    document.core_properties.title = "Team Handbook"
    document.add_heading("Team Handbook", level=0)
    paragraph = document.add_paragraph("Welcome\tto the team.")
    paragraph.add_run().add_break()
    paragraph.add_run("Second line.")
    paragraph.add_run().add_break(WD_BREAK.PAGE)
    document.add_heading("Holidays", level=1)
    document.add_heading("Booking", level=3)
    document.add_paragraph("Quote", style="Intense Quote")
    table = document.add_table(rows=3, cols=3)
    for r in range(3):
        for c in range(3):
            table.cell(r, c).text = f"r{r}c{c}"
    table.cell(0, 0).merge(table.cell(0, 1))  # across columns
    table.cell(1, 2).merge(table.cell(2, 2))  # down rows
    table.cell(2, 0).add_paragraph("second paragraph in a cell")
    document.add_paragraph("")
    buffer = io.BytesIO()
    document.save(buffer)
    data = buffer.getvalue()
    _same_as_python_docx(data)
    content = read_docx_content(data)
    assert content.title == "Team Handbook"
    assert DocxParagraph("Holidays", "Heading 1") in content.blocks
    table_read = next(b for b in content.blocks if isinstance(b, DocxTable))
    assert table_read.rows[0][0] == table_read.rows[0][1] and table_read.rows[2][2] == table_read.rows[1][2]


def test_the_example_docx_reads_as_python_docx() -> None:
    _same_as_python_docx((ROOT / "examples" / "docs" / "remote-work.docx").read_bytes())


def test_a_damaged_file_raises() -> None:
    with pytest.raises(zipfile.BadZipFile):
        read_docx_content(b"PK\x03\x04 not really a zip")
