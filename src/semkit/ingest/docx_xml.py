"""A .docx's text with the standard library (zipfile + ElementTree): the body's paragraphs and
tables in document order, each paragraph's style name and the core title, read as python-docx
reads them (``Paragraph.text``, ``style.name``, ``Table.rows[i].cells``, ``core_properties``),
without python-docx and lxml (15 MB of the base install).

What python-docx does and this follows: a paragraph's text is its runs' and hyperlinks' runs'
text (``w:t``; ``w:tab`` and ``w:ptab`` as a tab; a line break ``w:br``/``w:cr`` as a newline, a
page or column break as nothing; ``w:noBreakHyphen`` as ``-``); a style's name is its UI name
(``heading 1`` -> ``Heading 1``, ``title`` -> ``Title``); a table row's cells repeat a cell
merged across columns (``gridSpan``) and give a vertically merged cell the text of the cell it
continues; a cell's text is its paragraphs' texts joined by newlines.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass
from xml.etree import ElementTree

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_OFFICE_DOCUMENT = "/officeDocument"
_CORE_PROPERTIES = "/core-properties"
_STYLES = "/styles"
_UI_NAMES = {"caption": "Caption", "footer": "Footer", "header": "Header", "normal": "Normal", "title": "Title",
             "subtitle": "Subtitle", "body text": "Body Text", **{f"heading {n}": f"Heading {n}" for n in range(1, 10)}}
"""python-docx's BabelFish: built-in style names as Word stores them -> as Word shows them."""


@dataclass(frozen=True)
class DocxParagraph:
    text: str
    style: str  # the style's UI name ("Heading 1", "Title", "Normal"...), "" when none applies


@dataclass(frozen=True)
class DocxTable:
    rows: tuple[tuple[str, ...], ...]  # cell texts by grid column, merged cells repeated


@dataclass(frozen=True)
class DocxContent:
    blocks: tuple[DocxParagraph | DocxTable, ...]
    title: str  # the core properties' title, "" when none


def read_docx_content(data: bytes) -> DocxContent:
    """The body's blocks and the core title of the .docx ``data``. Raises ``zipfile.BadZipFile``,
    ``KeyError`` (a missing part) or ``ElementTree.ParseError`` on a damaged file."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        package_rels = _relationships(package, "_rels/.rels", "")
        document_part = package_rels.get(_OFFICE_DOCUMENT, "word/document.xml")
        document = ElementTree.fromstring(package.read(document_part))
        folder = posixpath.dirname(document_part)
        document_rels = _relationships(
            package, posixpath.join(folder, "_rels", posixpath.basename(document_part) + ".rels"), folder)
        styles_part = document_rels.get(_STYLES)
        styles = ElementTree.fromstring(package.read(styles_part)) if styles_part in package.namelist() else None
        core_part = package_rels.get(_CORE_PROPERTIES)
        title = ""
        if core_part in package.namelist():
            found = ElementTree.fromstring(package.read(core_part)).find(_DC_TITLE)
            title = (found.text or "") if found is not None else ""
    names, default_style = _paragraph_styles(styles)
    body = document.find(f"{W}body")
    blocks: list[DocxParagraph | DocxTable] = []
    for child in body if body is not None else ():
        if child.tag == f"{W}p":
            style_id = _style_id(child)
            blocks.append(DocxParagraph(_paragraph_text(child), names.get(style_id, "") if style_id else default_style))
        elif child.tag == f"{W}tbl":
            blocks.append(DocxTable(_table_rows(child)))
    return DocxContent(tuple(blocks), title)


def _relationships(package: zipfile.ZipFile, rels_part: str, folder: str) -> dict[str, str]:
    """{relationship type's last path segment: the target part's name in the zip}."""
    if rels_part not in package.namelist():
        return {}
    out: dict[str, str] = {}
    for rel in ElementTree.fromstring(package.read(rels_part)).iter(f"{_RELS}Relationship"):
        if rel.get("TargetMode") == "External":
            continue
        kind = "/" + (rel.get("Type") or "").rsplit("/", 1)[-1]
        target = rel.get("Target") or ""
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        out.setdefault(kind, part)
    return out


def _paragraph_styles(styles: ElementTree.Element | None) -> tuple[dict[str, str], str]:
    """({paragraph style id: UI name}, the default paragraph style's UI name)."""
    if styles is None:
        return {}, ""
    names: dict[str, str] = {}
    default = ""
    for style in styles.iter(f"{W}style"):
        if style.get(f"{W}type") != "paragraph":
            continue
        name_element = style.find(f"{W}name")
        stored = name_element.get(f"{W}val", "") if name_element is not None else ""
        name = _UI_NAMES.get(stored, stored)
        names[style.get(f"{W}styleId", "")] = name
        if style.get(f"{W}default") in ("1", "true", "on"):
            default = name
    return names, default


def _style_id(paragraph: ElementTree.Element) -> str:
    found = paragraph.find(f"{W}pPr/{W}pStyle")
    return found.get(f"{W}val", "") if found is not None else ""


def _run_text(run: ElementTree.Element) -> str:
    parts: list[str] = []
    for item in run:
        tag = item.tag
        if tag == f"{W}t":
            parts.append(item.text or "")
        elif tag in (f"{W}tab", f"{W}ptab"):
            parts.append("\t")
        elif tag == f"{W}br":
            parts.append("\n" if item.get(f"{W}type", "textWrapping") == "textWrapping" else "")
        elif tag == f"{W}cr":
            parts.append("\n")
        elif tag == f"{W}noBreakHyphen":
            parts.append("-")
    return "".join(parts)


def _paragraph_text(paragraph: ElementTree.Element) -> str:
    parts: list[str] = []
    for child in paragraph:
        if child.tag == f"{W}r":
            parts.append(_run_text(child))
        elif child.tag == f"{W}hyperlink":
            parts.extend(_run_text(run) for run in child.findall(f"{W}r"))
    return "".join(parts)


def _table_rows(table: ElementTree.Element) -> tuple[tuple[str, ...], ...]:
    rows: list[tuple[str, ...]] = []
    above: dict[int, str] = {}  # grid column -> the text of the cell a vertical merge continues
    for row in table.findall(f"{W}tr"):
        cells: list[str] = []
        for cell in row.findall(f"{W}tc"):
            properties = cell.find(f"{W}tcPr")
            span_element = properties.find(f"{W}gridSpan") if properties is not None else None
            span = int(span_element.get(f"{W}val", "1")) if span_element is not None else 1
            merge = properties.find(f"{W}vMerge") if properties is not None else None
            column = len(cells)
            if merge is not None and merge.get(f"{W}val", "continue") == "continue":
                text = above.get(column, "")
            else:
                text = "\n".join(_paragraph_text(p) for p in cell.findall(f"{W}p"))
            for offset in range(max(1, span)):
                above[column + offset] = text
                cells.append(text)
        rows.append(tuple(cells))
    return tuple(rows)
