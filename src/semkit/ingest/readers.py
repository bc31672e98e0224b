"""One reader per file format: bytes in, a ``Document`` of titled sections out.

A section is a run of text under one heading path (Markdown, HTML, DOCX), one page (PDF) or
one record (a CSV row, a JSON line). The chunker never lets a chunk cross a section, so
headings, pages and records stay the strongest boundaries. ``Section.offset`` is where the
section's text starts in ``Document.text`` (for .txt and .md, the file's own decoded text;
for other formats, the text extracted from the file).

A gzip-compressed file (``corpus.jsonl.gz``) is read as the file inside it (``read_bytes``
decompresses; ``is_supported`` accepts ``NAME.EXT.gz`` for every supported ``EXT``). Text that
arrives one item per line (standard input) is decoded line by line with ``read_lines``.

Readers of formats that need an optional package (pypdf, trafilatura) import it
lazily. HTML without trafilatura falls back to a standard-library extractor that drops
navigation, header, footer, aside, script and style elements. DOCX is read with the standard
library (``docx_xml``). PDF without pypdf raises ``UnreadableFile`` naming the package to
install, so the pipeline reports the file and goes on.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import logging
import re
import warnings as warnings_module
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ..errors import InvalidInput

TEXT_FIELDS = ("text", "content", "body", "document", "passage", "abstract", "description", "sentence")
"""Column / field names taken as a record's text when ``text_field`` is not given (first match)."""

TITLE_FIELDS = ("title", "name", "subject", "heading", "question")
"""Column / field names taken as a record's own title (shown as its section)."""

_SNIFF_BYTES = 8192

MAX_GUNZIPPED_BYTES = 1 << 30
"""A ``.gz`` file that inflates past this is refused (a compression bomb, or a corpus too big
to read as one file: split it)."""


class UnreadableFile(InvalidInput):
    """A file cannot be turned into text; the message says why and what to do."""


@dataclass(frozen=True)
class Section:
    text: str
    offset: int
    """Where ``text`` starts in ``Document.text``."""
    headings: tuple[str, ...] = ()
    """Heading path, outermost first (for records: the record's own title, if any)."""
    page: int | None = None
    """1-based page number (PDF)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Metadata of this section only, e.g. ``{"row": 3}`` for a CSV row."""


@dataclass
class Document:
    title: str
    format: str
    text: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)
    """Problems that did not stop the read (replacement decoding, skipped rows or pages)."""


Reader = Callable[[bytes, Path, "str | None"], Document]


# --- text decoding ------------------------------------------------------------------------------


def looks_binary(data: bytes) -> bool:
    """NUL bytes or many control characters in the first 8 KB: not a text file (UTF-16 with a
    BOM is text)."""
    head = data[:_SNIFF_BYTES]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return bool(head) and control / len(head) > 0.1


def decode_text(data: bytes, warnings: list[str]) -> str:
    """UTF-8 (BOM dropped), UTF-16 with a BOM, else the best guess of charset-normalizer (or
    cp1252, then latin-1), with a warning: the text may have wrong characters."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"starts with a UTF-16 mark but is not valid UTF-16 ({exc.reason})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    encoding = _guess_encoding(data)
    warnings.append(f"not valid UTF-8 (first bad byte at {first_bad}); decoded as {encoding}, so some "
                    "characters may be wrong: convert the file to UTF-8 to be sure")
    return data.decode(encoding, errors="replace")


# Single-byte Latin code pages: on short texts charset-normalizer cannot tell them apart (it
# picks Baltic cp1257 for French), and cp1252 is by far the most common of them in practice.
_WESTERN = {"cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "iso8859_1", "iso8859_2", "iso8859_9",
            "iso8859_10", "iso8859_13", "iso8859_15", "mac_roman", "mac_latin2", "mac_iceland",
            "mac_turkish", "cp775", "cp850"}


def _guess_encoding(data: bytes) -> str:
    try:
        data.decode("cp1252")
        cp1252 = True
    except UnicodeDecodeError:
        cp1252 = False
    sample = data[:1_000_000]
    if cp1252 and sum(b >= 0x80 for b in sample) < 0.2 * len(sample):
        # Accented letters sprinkled in ASCII: a Western code page. Cyrillic, Greek and CJK
        # text is mostly high bytes, and short texts fool detectors (French read as Big5).
        return "cp1252"
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return "cp1252" if cp1252 else "latin-1"
    best = from_bytes(sample).best()
    if best is not None and best.encoding and not (cp1252 and best.encoding in _WESTERN):
        return str(best.encoding)
    return "cp1252" if cp1252 else "latin-1"


def _text_of(data: bytes, warnings: list[str]) -> str:
    if looks_binary(data):
        raise UnreadableFile("binary data (NUL or control bytes), not text; remove it or rename it "
                             "to its real extension")
    return decode_text(data, warnings)


def read_lines(lines: Iterable[bytes], warnings: list[str], *, strict: bool = False) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line of a byte stream (standard input), one
    line at a time, so a stream of any size is read in bounded memory. UTF-8 (a leading BOM
    dropped); lines that are not are decoded with the encoding guessed from the first such line,
    with one warning naming it, or with ``strict`` raise ``UnreadableFile`` (for texts that are
    embedded as they are, where wrong characters would be stored for good)."""
    fallback: str | None = None
    for number, raw in enumerate(lines, 1):
        if number == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if strict:
                raise UnreadableFile(f"line {number} is not UTF-8 (byte {exc.start + 1}: "
                                     f"{raw[exc.start:exc.start + 1]!r})") from None
            if fallback is None:
                fallback = _guess_line_encoding(raw)
                warnings.append(f"line {number} is not valid UTF-8 (byte {exc.start}); decoded such lines as "
                                f"{fallback}, so some characters may be wrong: convert the input to UTF-8 "
                                "to be sure (e.g. iconv -f latin1 -t utf-8)")
            line = raw.decode(fallback, errors="replace")
        line = line.rstrip("\r\n")
        if line.strip():
            yield number, line


def _guess_line_encoding(line: bytes) -> str:
    """One line is too little for a detector ("café" reads as Arabic): accents in mostly-ASCII
    text are a Western code page; otherwise ask the file-level guess."""
    high = sum(b >= 0x80 for b in line)
    try:
        line.decode("cp1252")
    except UnicodeDecodeError:
        return _guess_encoding(line)
    return "cp1252" if high * 2 < len(line) else _guess_encoding(line)


# --- titles -------------------------------------------------------------------------------------


def title_from_filename(path: Path) -> str:
    """``web-performance_tips.md`` → ``Web performance tips``."""
    words = re.sub(r"[-_.]+", " ", path.stem).strip()
    return (words[:1].upper() + words[1:]) if words else path.name


def _clean(text: str) -> str:
    return " ".join(text.split())


# --- Markdown (also the shape HTML and DOCX are converted to) ------------------------------------

_ATX_OPEN = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


# User text reaches these parsers unchecked (a 1 MB line is possible), so they are linear
# string operations, not regular expressions that backtrack on long runs of spaces.
def _atx_heading(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line (``## Title ##``), else None."""
    opening = _ATX_OPEN.match(line)
    if not opening:
        return None
    title = line[opening.end():].strip(" \t")
    without_closing = title.rstrip("#")
    if without_closing != title and (not without_closing or without_closing[-1] in " \t"):
        title = without_closing.rstrip(" \t")
    return len(opening.group(1)), title


def _front_matter_title(front_matter: str) -> str | None:
    for line in front_matter.splitlines():
        if line.startswith("title:") and line[6:].strip():
            return line[6:].strip().strip("'\" ")
    return None


def markdown_sections(text: str) -> tuple[list[Section], str | None]:
    """Sections of Markdown ``text`` split at ATX (``## x``) and one-line setext headings,
    outside fenced code; returns them and the document title (front matter ``title:``, else
    the first level-1 heading, else the first heading)."""
    body_start = 0
    front_title: str | None = None
    if text.startswith(("---\n", "---\r\n")):
        end = text.find("\n---", 3)
        if end != -1 and end < 8192:
            front_title = _front_matter_title(text[4:end])
            after = text.find("\n", end + 4)
            body_start = len(text) if after == -1 else after + 1

    # (start of heading line, end of heading, level, title)
    headings: list[tuple[int, int, int, str]] = []
    fence: str | None = None
    pos = body_start
    prev: tuple[int, str] | None = None  # previous line, if it can become a setext heading
    prev_blank = True
    for line in text[body_start:].splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            prev, prev_blank = None, False
            continue
        if fence_match:
            fence = fence_match.group(1)
            prev, prev_blank = None, False
            continue
        atx = _atx_heading(stripped)
        if atx:
            headings.append((start, pos, atx[0], _clean(atx[1])))
            prev, prev_blank = None, False
            continue
        setext = _SETEXT.match(stripped)
        if setext and prev is not None:
            # Only a one-line paragraph becomes a setext heading; '---' elsewhere is a rule.
            headings.append((prev[0], pos, 1 if setext.group(1)[0] == "=" else 2, _clean(prev[1])))
            prev, prev_blank = None, False
            continue
        blank = not stripped.strip()
        prev = (start, stripped) if (not blank and prev_blank and not stripped.startswith((" " * 4, "\t"))) else None
        prev_blank = blank

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    cursor = body_start
    for h_start, h_end, level, title in [*headings, (len(text), len(text), 0, "")]:
        _add_section(sections, text, cursor, h_start, tuple(t for _, t in stack))
        if level == 0:
            break
        while stack and stack[-1][0] >= level:
            stack.pop()
        if title:
            stack.append((level, title))
        cursor = h_end
    first_h1 = next((t for _, _, level, t in headings if level == 1 and t), None)
    first_any = next((t for _, _, _, t in headings if t), None)
    return sections, front_title or first_h1 or first_any


def _add_section(sections: list[Section], text: str, start: int, end: int, headings: tuple[str, ...],
                 page: int | None = None, extra: Mapping[str, Any] | None = None) -> None:
    chunk = text[start:end]
    stripped = chunk.strip()
    if not stripped:
        return
    offset = start + (len(chunk) - len(chunk.lstrip()))
    sections.append(Section(stripped, offset, headings, page, dict(extra or {})))


def read_markdown(data: bytes, path: Path, text_field: str | None = None) -> Document:
    warnings: list[str] = []
    text = _text_of(data, warnings)
    sections, title = markdown_sections(text)
    return Document(title or title_from_filename(path), "markdown", text, sections, warnings)


def read_text(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """Plain text: one section; the title is a short first line, else the file name."""
    warnings: list[str] = []
    text = _text_of(data, warnings)
    sections: list[Section] = []
    _add_section(sections, text, 0, len(text), ())
    first_line = text.strip().split("\n", 1)[0].strip()
    has_more = "\n" in text.strip()
    title = first_line if has_more and 0 < len(first_line) <= 100 and not first_line.endswith((".", ",", ";")) \
        else title_from_filename(path)
    return Document(title, "text", text, sections, warnings)


# --- HTML ---------------------------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "nav", "header", "footer", "aside",
              "form", "button", "iframe", "select"}
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "blockquote",
               "pre", "dl", "dt", "dd", "figure", "figcaption", "br", "hr"}
_PARAGRAPH_TAGS = {"p", "div", "section", "article", "main", "table", "blockquote", "pre"}
_VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _MainText(HTMLParser):
    """Standard-library fallback: the page as Markdown-ish text (headings as ``#``), without
    navigation, header/footer, asides, forms, scripts and styles; only ``<main>`` or
    ``<article>`` when the page has one."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.main_parts: list[str] | None = None
        self.title = ""
        self._skip = 0
        self._in_title = False
        self._heading: int | None = None
        self._main_depth = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _VOID_TAGS:
            if tag == "br" and not self._skip:
                self._emit("\n")
            return
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in ("main", "article"):
            if self._main_depth == 0 and self.main_parts is None:
                self.main_parts = []
            self._main_depth += 1
        elif re.fullmatch(r"h[1-6]", tag) and not self._skip:
            self._heading = int(tag[1])
            self._emit("\n\n" + "#" * self._heading + " ")
        elif tag in _BLOCK_TAGS and not self._skip:
            self._emit("\n\n" if tag in _PARAGRAPH_TAGS else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False
        elif tag in ("main", "article") and self._main_depth:
            self._main_depth -= 1
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self._heading = None
            self._emit("\n\n")
        elif tag in _BLOCK_TAGS and not self._skip:
            self._emit("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skip:
            return
        self._emit(" ".join(data.split()) if self._heading is not None else re.sub(r"[ \t\r\f\v]+", " ", data))

    def _emit(self, s: str) -> None:
        self.out.append(s)
        if self._main_depth and self.main_parts is not None:
            self.main_parts.append(s)

    def markdown(self) -> str:
        parts = self.main_parts if self.main_parts and "".join(self.main_parts).strip() else self.out
        text = "".join(parts)
        text = "\n".join(line.strip() for line in text.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_markdown_fallback(html: str) -> tuple[str, str]:
    """(Markdown-ish main text, ``<title>``) with the standard library only."""
    parser = _MainText()
    parser.feed(html)
    parser.close()
    return parser.markdown(), _clean(parser.title)


def read_html(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """Main text of a web page, boilerplate removed: trafilatura (``semkit[ingest]``) when
    installed, else the standard-library fallback. Headings become sections."""
    warnings: list[str] = []
    html = _text_of(data, warnings)
    markdown: str | None = None
    title = ""
    trafilatura: Any
    try:
        import trafilatura
    except ImportError:
        trafilatura = None
    if trafilatura is not None:
        try:
            markdown = trafilatura.extract(html, output_format="markdown", include_comments=False,
                                           include_tables=True, favor_recall=True)
            meta = trafilatura.extract_metadata(html)
            title = _clean(meta.title) if meta is not None and meta.title else ""
        except Exception as exc:  # trafilatura/lxml raise assorted errors on broken markup
            warnings.append(f"trafilatura could not parse the page ({type(exc).__name__}); used the "
                            "simple extractor")
            markdown = None
    fallback, html_title = html_to_markdown_fallback(html)
    if not markdown or not markdown.strip():
        # trafilatura returns None for pages it judges too short; the fallback keeps them.
        markdown = fallback
    sections, heading_title = markdown_sections(markdown)
    return Document(title or html_title or heading_title or title_from_filename(path), "html",
                    markdown, sections, warnings)


# --- PDF ----------------------------------------------------------------------------------------


def read_pdf(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """One section per page with text (pypdf); the title from the PDF's metadata, else the
    first line of the first page, else the file name."""
    try:
        from pypdf import PdfReader
    except ImportError:
        raise UnreadableFile("reading PDF needs the package 'pypdf' (in the base install): pip install pypdf") from None
    warnings: list[str] = []
    with _quiet("pypdf"):
        return _read_pdf(PdfReader, data, path, warnings)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a parser's own log lines and warnings about a damaged file: the pipeline
    reports the outcome once, with the file's name."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR + 10)
    try:
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _read_pdf(reader_class: Any, data: bytes, path: Path, warnings: list[str]) -> Document:
    try:
        reader = reader_class(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("the PDF is encrypted with a password; decrypt it first (e.g. qpdf --decrypt)")
        pages = list(reader.pages)
    except UnreadableFile:
        raise
    except Exception as exc:  # pypdf raises many types on damaged files
        raise UnreadableFile(f"not a readable PDF ({type(exc).__name__}: {exc}); re-export or repair it") from None
    texts: list[str] = []
    sections: list[Section] = []
    offset = 0
    failed_pages: list[int] = []
    for number, page in enumerate(pages, 1):
        try:
            page_text = page.extract_text() or ""
        except Exception:  # one damaged page must not lose the others
            failed_pages.append(number)
            continue
        if texts:
            texts.append("\n\n")
            offset += 2
        before = len(sections)
        _add_section(sections, page_text, 0, len(page_text), (), page=number)
        if len(sections) > before:  # offsets so far are within the page: make them the document's
            sections[-1] = replace(sections[-1], offset=sections[-1].offset + offset)
        texts.append(page_text)
        offset += len(page_text)
    if failed_pages:
        warnings.append(f"could not extract text from page(s) {', '.join(map(str, failed_pages[:10]))}")
    if not sections:
        raise UnreadableFile("the PDF has no extractable text (scanned images?); run OCR on it first")
    title = ""
    try:
        meta = reader.metadata
        title = _clean(str(meta.title)) if meta is not None and meta.title else ""
    except Exception:  # broken info dictionaries are common and harmless
        title = ""
    title = re.sub(r"^Microsoft Word - ", "", title)
    if not title or title.lower() in ("untitled", "title"):
        first = sections[0].text.split("\n", 1)[0].strip()
        title = first if 0 < len(first) <= 100 else title_from_filename(path)
    return Document(title, "pdf", "".join(texts), sections, warnings)


# --- DOCX ---------------------------------------------------------------------------------------


def read_docx(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """Paragraphs and tables in document order (``docx_xml``: the standard library, as
    python-docx reads them); ``Heading N`` styles become sections; the title from the document
    properties, else a ``Title`` paragraph, else the first heading, else the file name."""
    from .docx_xml import DocxTable, read_docx_content

    try:
        content = read_docx_content(data)
    except Exception as exc:  # zipfile, ElementTree and missing-part errors on damaged files
        raise UnreadableFile(f"not a readable .docx ({type(exc).__name__}: {exc}); re-save it from Word") from None
    core_title = content.title
    lines: list[str] = []
    style_title = ""
    for block in content.blocks:
        if isinstance(block, DocxTable):  # one line per row, cells separated by |
            for row in block.rows:
                cells = [_clean(cell) for cell in row]
                if any(cells):
                    lines.append(" | ".join(dict.fromkeys(cells)))  # merged cells repeat: keep one
            lines.append("")
            continue
        text = block.text.strip()
        if not text:
            continue
        style = block.style
        level_match = re.fullmatch(r"Heading ([1-6])", style)
        if style == "Title":
            style_title = style_title or _clean(text)
            lines.append(f"# {_clean(text)}\n")
        elif level_match:
            lines.append(f"{'#' * int(level_match.group(1))} {_clean(text)}\n")
        else:
            lines.append(text + "\n")
    markdown = "\n".join(lines)
    sections, heading_title = markdown_sections(markdown)
    title = _clean(core_title) or style_title or heading_title or title_from_filename(path)
    return Document(title, "docx", markdown, sections)


# --- records: CSV / TSV / JSON lines -------------------------------------------------------------


def _pick(names: list[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    lowered = {n.strip().lower(): n for n in names if isinstance(n, str)}
    if wanted is not None:
        return lowered.get(wanted.strip().lower())
    return next((lowered[c] for c in candidates if c in lowered), None)


def _records_document(path: Path, fmt: str, rows: Sequence[tuple[int, Mapping[str, Any]]],
                      text_field: str | None, warnings: list[str]) -> Document:
    columns: list[str] = list(dict.fromkeys(k for _, r in rows for k in r))
    column = _pick(columns, text_field, TEXT_FIELDS)
    if column is None:
        what = (f"no field named {text_field!r}" if text_field
                else "no text field (" + ", ".join(TEXT_FIELDS[:4]) + "...)")
        raise UnreadableFile(f"{what}; fields: {', '.join(columns[:20]) or 'none'}. Pass --text-field NAME")
    title_column = _pick([c for c in columns if c != column], None, TITLE_FIELDS)
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    empty = 0
    for number, row in rows:
        value = row.get(column)
        text = value.strip() if isinstance(value, str) else ("" if value is None else json.dumps(value))
        if not text:
            empty += 1
            continue
        row_title = row.get(title_column) if title_column else None
        headings = (_clean(str(row_title)),) if row_title not in (None, "") else ()
        if parts:
            parts.append("\n\n")
            offset += 2
        sections.append(Section(text, offset, headings, None, {"row": number}))
        parts.append(text)
        offset += len(text)
    if empty:
        warnings.append(f"{empty} record(s) have an empty {column!r}; skipped them")
    return Document(title_from_filename(path), fmt, "".join(parts), sections, warnings)


def read_csv(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """One section per row: the ``text_field`` column (default: the first of ``TEXT_FIELDS``);
    a title/name column, if any, becomes the row's section heading. ``row`` counts data rows
    from 1."""
    warnings: list[str] = []
    text = _text_of(data, warnings)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or first_line.count("\t") > first_line.count(",") else ","
    csv.field_size_limit(1 << 30)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = [(n, row) for n, row in enumerate(reader, 1)]
    except csv.Error as exc:
        raise UnreadableFile(f"malformed CSV ({exc}); fix the quoting near that line") from None
    if reader.fieldnames is None:
        raise UnreadableFile("no header row; the first line must name the columns")
    return _records_document(path, "csv", rows, text_field, warnings)


def read_jsonl(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """One section per JSON object line (field choice as for CSV; ``row`` is the line number);
    malformed lines are skipped with a warning, and a file with no valid line is unreadable."""
    warnings: list[str] = []
    text = _text_of(data, warnings)
    rows: list[tuple[int, Mapping[str, Any]]] = []
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if isinstance(record, dict):
            rows.append((number, record))
        else:
            bad.append(number)
    if bad:
        if not rows:
            raise UnreadableFile(f"no line is a JSON object (first bad line: {bad[0]}); is it JSON Lines?")
        warnings.append(f"{len(bad)} line(s) are not JSON objects (first: line {bad[0]}); skipped them")
    return _records_document(path, "jsonl", rows, text_field, warnings)


def read_json(data: bytes, path: Path, text_field: str | None = None) -> Document:
    """A JSON array of records (one section per element; field choice as for CSV; ``row``
    counts elements from 1; an element that is a string is a record with just that text), or
    a single JSON object (one record)."""
    warnings: list[str] = []
    text = _text_of(data, warnings)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise UnreadableFile(f"not valid JSON ({exc}); fix it, or use JSON Lines (.jsonl) for one "
                             "record per line") from None
    items = doc if isinstance(doc, list) else [doc]
    # A bare string is a record holding just the text, under the column the objects use.
    columns = list(dict.fromkeys(k for item in items if isinstance(item, dict) for k in item))
    column = _pick(columns, text_field, TEXT_FIELDS) or text_field or TEXT_FIELDS[0]
    rows: list[tuple[int, Mapping[str, Any]]] = []
    bad: list[int] = []
    for number, item in enumerate(items, 1):
        if isinstance(item, str):
            item = {column: item}
        if isinstance(item, dict):
            rows.append((number, item))
        else:
            bad.append(number)
    if not rows:
        raise UnreadableFile("no records: expected a JSON object or an array of objects or strings")
    if bad:
        warnings.append(f"{len(bad)} element(s) are neither objects nor strings (first: element {bad[0]}); "
                        "skipped them")
    return _records_document(path, "json", rows, text_field, warnings)


READERS: dict[str, Reader] = {
    ".txt": read_text, ".text": read_text, ".rst": read_text,
    ".md": read_markdown, ".markdown": read_markdown,
    ".html": read_html, ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".csv": read_csv, ".tsv": read_csv,
    ".jsonl": read_jsonl, ".ndjson": read_jsonl,
    ".json": read_json,
}
"""Reader per lower-case file suffix."""

SUPPORTED_SUFFIXES = tuple(READERS)


def reader_for(path: Path) -> Reader | None:
    return READERS.get(_inner(path).suffix.lower())


def is_supported(path: Path) -> bool:
    """A file ``read_bytes`` can read: a supported suffix, or ``NAME.EXT.gz`` of one."""
    return reader_for(path) is not None


def _inner(path: Path) -> Path:
    """``corpus.jsonl.gz`` → ``corpus.jsonl``: the file a ``.gz`` holds."""
    return path.with_suffix("") if path.suffix.lower() == ".gz" else path


def gunzip(data: bytes, limit: int = MAX_GUNZIPPED_BYTES) -> bytes:
    """The content of gzip ``data``, at most ``limit`` bytes (``UnreadableFile`` beyond, or
    when the data is truncated or not gzip)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            out = fh.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFile(f"not a readable .gz file ({exc}); check that it was copied completely") from None
    if len(out) > limit:
        raise UnreadableFile(f"inflates to over {limit / 1e9:.1f} GB; split it into smaller files")
    return out


def read_bytes(data: bytes, path: Path, *, text_field: str | None = None) -> Document:
    """Read ``data`` (the content of ``path``) with the reader for its suffix; a ``.gz``
    file is decompressed and read as the file inside it."""
    reader = reader_for(path)
    if reader is None:
        suffix = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'!r}; supported: "
                             f"{' '.join(SUPPORTED_SUFFIXES)} (also gzip-compressed, e.g. .jsonl.gz)")
    if path.suffix.lower() == ".gz":
        data, path = gunzip(data), _inner(path)
    if not data.strip():
        return Document(title_from_filename(path), path.suffix.lower().lstrip("."), "", [])
    return reader(data, path, text_field)


def read_file(path: str | Path, *, text_field: str | None = None) -> Document:
    """Read one file into a ``Document`` (``UnreadableFile`` if it cannot be)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFile(f"cannot read {path}: {exc.strerror or exc}") from None
    return read_bytes(data, path, text_field=text_field)


__all__ = [
    "READERS",
    "SUPPORTED_SUFFIXES",
    "Document",
    "Section",
    "UnreadableFile",
    "decode_text",
    "gunzip",
    "html_to_markdown_fallback",
    "is_supported",
    "looks_binary",
    "markdown_sections",
    "read_bytes",
    "read_file",
    "read_lines",
    "title_from_filename",
]
