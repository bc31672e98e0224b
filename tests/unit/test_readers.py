"""Readers on real files of every format, built here with the same libraries users have."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from semkit.ingest.readers import (
    SUPPORTED_SUFFIXES,
    UnreadableFile,
    html_to_markdown_fallback,
    is_supported,
    looks_binary,
    markdown_sections,
    read_bytes,
    read_file,
    read_lines,
    title_from_filename,
)


def _offsets_hold(doc) -> None:
    for section in doc.sections:
        assert doc.text[section.offset:section.offset + len(section.text)] == section.text


# --- Markdown and text ----------------------------------------------------------------------------

MARKDOWN = """# Field guide

Intro paragraph.

## Birds

Birds have feathers.

### Owls

Owls hunt at night.

```python
# not a heading
print("hi")
```

## Mammals

Mammals have fur.

Setext heading
--------------

Under the setext heading.
"""


def test_markdown_sections_follow_the_heading_path() -> None:
    sections, title = markdown_sections(MARKDOWN)
    assert title == "Field guide"
    by_path = {s.headings: s.text for s in sections}
    assert by_path[("Field guide",)] == "Intro paragraph."
    assert by_path[("Field guide", "Birds")] == "Birds have feathers."
    owls = by_path[("Field guide", "Birds", "Owls")]
    assert owls.startswith("Owls hunt at night.") and "# not a heading" in owls
    assert by_path[("Field guide", "Mammals")] == "Mammals have fur."
    assert by_path[("Field guide", "Setext heading")] == "Under the setext heading."
    for s in sections:
        assert MARKDOWN[s.offset:s.offset + len(s.text)] == s.text


def test_markdown_front_matter_title_and_rules_that_are_not_headings(tmp_path: Path) -> None:
    text = "---\ntitle: \"Plants\"\ntags: [x]\n---\n\nFirst paragraph.\n\n---\n\nSecond paragraph.\n"
    doc = read_bytes(text.encode(), tmp_path / "p.md")
    assert doc.title == "Plants" and doc.format == "markdown"
    assert [s.headings for s in doc.sections] == [()]
    assert "Second paragraph." in doc.sections[0].text and "title:" not in doc.sections[0].text
    _offsets_hold(doc)


def test_markdown_with_windows_line_ends(tmp_path: Path) -> None:
    text = "---\r\ntitle: Plants\r\n---\r\n\r\n# Care\r\n\r\nWater weekly.\r\n\r\n## Light\r\n\r\nBright.\r\n"
    doc = read_bytes(text.encode(), tmp_path / "p.md")
    assert doc.title == "Plants"
    assert [(s.headings, s.text) for s in doc.sections] == [
        (("Care",), "Water weekly."), (("Care", "Light"), "Bright.")]


def test_text_title_is_a_short_first_line_else_the_file_name(tmp_path: Path) -> None:
    doc = read_bytes(b"Packing for Japan\n\nBring comfortable shoes.", tmp_path / "trip.txt")
    assert doc.title == "Packing for Japan" and len(doc.sections) == 1
    doc = read_bytes(b"Just one sentence that ends here.", tmp_path / "my_notes-2024.txt")
    assert doc.title == "My notes 2024"
    assert title_from_filename(Path("web-performance.md")) == "Web performance"


@pytest.mark.parametrize(("text", "encoding"), [
    ("Café crème brûlée, déjà vu.\n\nMore text in Latin-1 à la française.", "latin-1"),
    ("Grüße aus München, schöne Straße.", "cp1252"),
    ("Привет, как дела? Это текст на русском языке, довольно длинный.", "cp1251"),
])
def test_non_utf8_text_is_decoded_with_a_warning(tmp_path: Path, text: str, encoding: str) -> None:
    doc = read_bytes(text.encode(encoding), tmp_path / "legacy.txt")
    assert doc.text == text
    assert doc.warnings and "not valid UTF-8" in doc.warnings[0]


def test_utf8_bom_and_utf16_are_text(tmp_path: Path) -> None:
    assert read_bytes("\ufeffHello there".encode(), tmp_path / "a.txt").text == "Hello there"
    doc = read_bytes("Hello UTF-16 world".encode("utf-16"), tmp_path / "b.txt")
    assert doc.sections[0].text == "Hello UTF-16 world" and not doc.warnings


def test_binary_data_in_a_text_file_is_unreadable(tmp_path: Path) -> None:
    data = bytes(range(256)) * 20
    assert looks_binary(data)
    with pytest.raises(UnreadableFile, match="binary"):
        read_bytes(data, tmp_path / "image.txt")


def test_empty_files_have_no_sections(tmp_path: Path) -> None:
    for suffix in SUPPORTED_SUFFIXES:
        assert read_bytes(b"  \n\n ", tmp_path / f"empty{suffix}").sections == []


def test_unsupported_and_missing_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match=r"unsupported file type '\.xyz'"):
        read_bytes(b"data", tmp_path / "file.xyz")
    with pytest.raises(UnreadableFile, match="cannot read"):
        read_file(tmp_path / "missing.md")


# --- HTML -----------------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><title>Speed Up Your Site | Dev Notes</title>
<style>.x { color: red }</style></head><body>
<header><nav><a href="/">Home</a> <a href="/blog">Blog</a> <a href="/about">About the team</a></nav></header>
<main><article>
<h1>Speed up your site</h1>
<p>A slow page loses visitors. Most of the time the culprit is what the browser has to download
and run before it can paint anything on the screen.</p>
<h2>Images</h2>
<p>Compress images and serve modern formats such as AVIF or WebP, and give every image explicit
width and height so the layout does not shift while the page loads.</p>
<h2>Caching</h2>
<p>Static files that never change can be cached for a year; a content delivery network serves
them from a location close to every visitor.</p>
</article></main>
<aside>Popular posts: ten cat pictures</aside>
<footer><p>Copyright 2024 Dev Notes. Privacy policy. Cookie settings.</p></footer>
<script>var tracking = "SECRET_TRACKER";</script>
</body></html>"""


def _check_page(doc) -> None:
    assert "Speed up your site" in doc.title
    paths = [s.headings for s in doc.sections]
    assert ("Speed up your site", "Images") in paths and ("Speed up your site", "Caching") in paths
    for junk in ("SECRET_TRACKER", "Cookie settings", "About the team", "ten cat pictures", "color: red"):
        assert junk not in doc.text, junk
    assert "Compress images" in doc.text
    _offsets_hold(doc)


def test_html_main_text_without_boilerplate(tmp_path: Path) -> None:
    doc = read_bytes(PAGE.encode(), tmp_path / "page.html")
    assert doc.format == "html"
    _check_page(doc)


def test_html_fallback_extractor_also_drops_boilerplate(tmp_path: Path) -> None:
    markdown, title = html_to_markdown_fallback(PAGE)
    assert title == "Speed Up Your Site | Dev Notes"
    sections, heading_title = markdown_sections(markdown)
    assert heading_title == "Speed up your site"
    assert "# Speed up your site" in markdown and "## Images" in markdown
    for junk in ("SECRET_TRACKER", "Cookie settings", "About the team", "ten cat pictures"):
        assert junk not in markdown
    assert [s.headings[-1] for s in sections] == ["Speed up your site", "Images", "Caching"]


def test_tiny_html_page_still_gives_its_text(tmp_path: Path) -> None:
    doc = read_bytes(b"<html><body><p>Short note.</p></body></html>", tmp_path / "tiny.htm")
    assert doc.text.strip() == "Short note."


# --- PDF ------------------------------------------------------------------------------------------


def _pdf(path: Path, pages: list[str], title: str | None = "Pasta Handbook") -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def test_pdf_sections_are_pages_with_numbers_and_the_metadata_title(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "pasta.pdf", ["Boil the water and salt it well.", "",
                                         "Toss the pasta with the sauce and serve."])
    doc = read_file(path)
    assert doc.title == "Pasta Handbook" and doc.format == "pdf"
    assert [s.page for s in doc.sections] == [1, 3], "an empty page gives no section"
    assert "salt it well" in doc.sections[0].text and "Toss the pasta" in doc.sections[1].text
    _offsets_hold(doc)


def test_pdf_without_a_title_uses_its_first_line(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "notes.pdf", ["Meeting notes\nWe agreed to ship on Friday."], title=None)
    assert read_file(path).title == "Meeting notes"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_pdf_is_unreadable_with_a_reason(tmp_path: Path, damage: str) -> None:
    good = _pdf(tmp_path / "good.pdf", ["Some text on a page."]).read_bytes()
    data = b"%PDF-1.7\nthis is not really a pdf\x00\x01" if damage == "garbage" else good[: len(good) // 3]
    with pytest.raises(UnreadableFile, match="PDF"):
        read_bytes(data, tmp_path / "bad.pdf")


def test_pdf_without_text_is_unreadable_with_a_hint(tmp_path: Path) -> None:
    path = _pdf(tmp_path / "blank.pdf", ["", ""])
    with pytest.raises(UnreadableFile, match="OCR"):
        read_file(path)


# --- DOCX -----------------------------------------------------------------------------------------


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Team Handbook"
    document.add_heading("Team Handbook", level=0)
    document.add_paragraph("Welcome to the team.")
    document.add_heading("Holidays", level=1)
    document.add_paragraph("Everyone gets 25 days of paid holiday.")
    document.add_heading("Booking", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Days", "Notice"
    table.cell(1, 0).text, table.cell(1, 1).text = "1-3", "One week"
    path = tmp_path / "handbook.docx"
    document.save(str(path))

    doc = read_file(path)
    assert doc.title == "Team Handbook" and doc.format == "docx"
    by_path = {s.headings: s.text for s in doc.sections}
    assert by_path[("Team Handbook",)] == "Welcome to the team."
    assert by_path[("Holidays",)] == "Everyone gets 25 days of paid holiday."
    assert "1-3 | One week" in by_path[("Holidays", "Booking")]
    _offsets_hold(doc)


def test_corrupt_docx_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="docx"):
        read_bytes(b"PK\x03\x04 not really a zip", tmp_path / "broken.docx")


# --- records ----------------------------------------------------------------------------------------


def test_csv_rows_are_sections_with_their_titles(tmp_path: Path) -> None:
    data = b'title,minutes,text\nPasta,20,"Boil, then toss."\nEmpty,5,\nSoup,15,Warm the stock.\n'
    doc = read_bytes(data, tmp_path / "recipes.csv")
    assert doc.title == "Recipes" and doc.format == "csv"
    assert [(s.headings, s.text, s.extra["row"]) for s in doc.sections] == [
        (("Pasta",), "Boil, then toss.", 1), (("Soup",), "Warm the stock.", 3)]
    assert doc.warnings and "empty" in doc.warnings[0]
    _offsets_hold(doc)


def test_csv_text_field_choice_and_missing_column(tmp_path: Path) -> None:
    data = b"id\tsummary\tnotes\n1\tShort summary one\tignored\n2\tShort summary two\tignored\n"
    doc = read_bytes(data, tmp_path / "items.tsv", text_field="Summary")
    assert [s.text for s in doc.sections] == ["Short summary one", "Short summary two"]
    with pytest.raises(UnreadableFile, match="fields: id, summary, notes"):
        read_bytes(data, tmp_path / "items.tsv")


def test_jsonl_skips_bad_lines_with_a_warning(tmp_path: Path) -> None:
    lines = [json.dumps({"title": "Chain", "text": "Oil the chain."}), "{broken", "[1, 2]",
             json.dumps({"title": "Tyres", "content": "ignored", "text": "Check the pressure."})]
    doc = read_bytes("\n".join(lines).encode(), tmp_path / "faq.jsonl")
    assert [(s.headings, s.text, s.extra["row"]) for s in doc.sections] == [
        (("Chain",), "Oil the chain.", 1), (("Tyres",), "Check the pressure.", 4)]
    assert "2 line(s)" in doc.warnings[0]
    with pytest.raises(UnreadableFile, match="JSON"):
        read_bytes(b"not json\nnor this\n", tmp_path / "bad.jsonl")


def test_json_array_of_records_and_strings(tmp_path: Path) -> None:
    data = json.dumps([{"title": "Chain", "body": "Oil the chain."}, "Check the pressure.", 3]).encode()
    doc = read_bytes(data, tmp_path / "faq.json")
    assert doc.format == "json"
    assert [(s.headings, s.text, s.extra["row"]) for s in doc.sections] == [
        (("Chain",), "Oil the chain.", 1), ((), "Check the pressure.", 2)]
    assert "element 3" in doc.warnings[0]
    one = read_bytes(json.dumps({"text": "Just one."}).encode(), tmp_path / "one.json")
    assert [s.text for s in one.sections] == ["Just one."]
    with pytest.raises(UnreadableFile, match="not valid JSON"):
        read_bytes(b"{broken", tmp_path / "bad.json")
    with pytest.raises(UnreadableFile, match="--text-field"):
        read_bytes(json.dumps([{"n": 1}]).encode(), tmp_path / "nofield.json")


def test_gzip_files_are_read_as_the_file_inside(tmp_path: Path) -> None:
    inner = b"# Title\n\nSome text.\n"
    doc = read_bytes(gzip.compress(inner), tmp_path / "notes.md.gz")
    assert (doc.format, doc.title, [s.text for s in doc.sections]) == ("markdown", "Title", ["Some text."])
    assert is_supported(Path("corpus.jsonl.gz")) and is_supported(Path("a.MD"))
    assert not is_supported(Path("backup.tar.gz")) and not is_supported(Path("x.gz"))
    with pytest.raises(UnreadableFile, match=r"'\.tar\.gz'"):
        read_bytes(gzip.compress(b"data"), tmp_path / "backup.tar.gz")
    with pytest.raises(UnreadableFile, match="copied completely"):
        read_bytes(gzip.compress(inner)[:10], tmp_path / "cut.md.gz")


def test_read_lines_decodes_each_line_and_warns_once(tmp_path: Path) -> None:
    raw = "\ufefffirst\n\n  \nsecond é\r\n".encode() + b"caf\xe9\n" + b"cr\xe8me"
    warnings: list[str] = []
    lines = list(read_lines(io.BytesIO(raw), warnings))
    assert lines == [(1, "first"), (4, "second é"), (5, "café"), (6, "crème")]
    assert len(warnings) == 1 and "line 5" in warnings[0] and "cp1252" in warnings[0]


def test_read_lines_strict_refuses_non_utf8() -> None:
    with pytest.raises(UnreadableFile, match="line 2 is not UTF-8"):
        list(read_lines(io.BytesIO(b"fine\ncaf\xe9\n"), [], strict=True))


# A one-megabyte line of spaces inside a heading or front matter: the old regular expressions
# backtracked quadratically (80,000 spaces took 47 s; a megabyte, hours). The timeout is a
# hang guard, not a benchmark: the parse itself takes milliseconds.
@pytest.mark.timeout(60)
def test_markdown_headings_parse_in_linear_time_on_hostile_lines() -> None:
    from semkit.ingest.readers import markdown_sections

    spaces = " " * 1_000_000
    sections, title = markdown_sections(f"# a{spaces}b\nbody text\n")
    assert title == "a b"
    assert sections and sections[0].text == "body text"
    _, front = markdown_sections(f"---\ntitle:{spaces[:8000]}x\n---\n# h\n")
    assert front == "x"
    closing_only = markdown_sections(f"## Title{spaces}##\ntext\n")[1]
    assert closing_only == "Title"
