"""The README and the pages under docs/ stay true.

- The README's "Library in one minute" block runs exactly as printed (offline: the OpenAI lines
  are answered by the local OpenAI-format server of ``tests.support.fake_provider``), and the
  figures its comments show are the ones the code gives. The Python example of
  docs/indexing.md runs too.
- Every Python block parses; every ``semkit.x.y`` named in the prose or imported in a block
  exists; every ``apps.X`` is public; every repository path quoted (``benchmarks/search.py``)
  exists.
- Every relative link and ``#anchor`` resolves to a file and a heading; every docs page is
  reachable from the index; no HTML comment (a broken one renders as a stray heading).
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import shutil
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.fake_provider import FakeProvider

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]


# --- reading Markdown ----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced code block and the heading it sits under."""

    page: Path
    line: int  # 1-based line of the first line of code
    heading: str
    language: str
    code: str


@dataclass(frozen=True)
class Page:
    path: Path
    prose: str  # the page with fenced code blanked out: line numbers and inline spans are kept
    blocks: list[Block]
    headings: list[str]

    def line_of(self, offset: int) -> int:
        return self.prose.count("\n", 0, offset) + 1


@cache
def read_page(path: Path) -> Page:
    prose: list[str] = []
    blocks: list[Block] = []
    headings: list[str] = []
    heading = ""
    fence: str | None = None
    language = ""
    start = 0
    code: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            opening = re.match(r"^(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if opening:
                fence, language, start, code = opening.group(1), opening.group(2).lower(), number + 1, []
                prose.append("")
                continue
            prose.append(line)
            match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if match:
                heading = match.group(1)
                headings.append(heading)
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            blocks.append(Block(path, start, heading, language, "\n".join(code) + "\n"))
            fence = None
            prose.append("")
        else:
            code.append(line)
            prose.append("")
    assert fence is None, f"{path}: a code fence opened at line {start - 1} is never closed"
    return Page(path, "\n".join(prose), blocks, headings)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without Markdown, lower-cased, punctuation
    (but not ``-`` and ``_``) dropped, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in read_page(path).headings:
        slug = github_anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(out)


def code_spans(page: Page) -> list[str]:
    """Inline code (``like this``), which may wrap onto the next line of its paragraph."""
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", page.prose)]


def links(page: Page) -> list[tuple[int, str]]:
    """``(line, target)`` of every Markdown link outside code."""
    without_code = re.sub(r"`[^`]*`", lambda m: re.sub(r"[^\n]", " ", m.group()), page.prose)
    return [(page.line_of(m.start()), m.group(1)) for m in re.finditer(r"\]\(([^)\s]+)\)", without_code)]


def python_block(path: Path, heading: str) -> Block:
    for block in read_page(path).blocks:
        if block.heading == heading and block.language == "python":
            return block
    raise AssertionError(f"{path.name} has no python block under the heading {heading!r}")


# --- resolving names -------------------------------------------------------------------------


def resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # not a module: an attribute of a shorter prefix
            raise
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(f"nothing of {dotted!r} can be imported")


def names_in_python(code: str) -> set[str]:
    """``semkit.x.y`` attribute chains and ``from semkit.x import y`` names used in ``code``."""
    names: set[str] = set()
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "semkit":
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "semkit"}
        elif isinstance(node, ast.Attribute):
            chain = [node.attr]
            base: ast.expr = node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id == "semkit":
                names.add(".".join(["semkit", *reversed(chain)]))
            elif isinstance(base, ast.Name) and base.id == "apps":
                names.add(".".join(["semkit.apps", *reversed(chain)]))
    return names


def names_in_prose(page: Page) -> set[str]:
    names: set[str] = set()
    for span in code_spans(page):
        names |= set(re.findall(r"(?<![\w./])semkit(?:\.[A-Za-z_]\w*)+", span))
        names |= {"semkit.apps." + n for n in re.findall(r"(?<![\w./])apps\.([A-Za-z_]\w*)", span)}
    return names


# --- the blocks that run ---------------------------------------------------------------------


def numeric_claims(code: str) -> dict[int, float]:
    """``{line: value}`` for lines whose comment starts with a number (``# 0.56  (cosine)``)."""
    claims = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            match = re.match(r"#\s*(-?\d+\.\d+)\b", tok.string)
            if match:
                claims[tok.start[0]] = float(match.group(1))
    return claims


def run_statements(block: Block) -> tuple[dict[str, Any], dict[int, Any]]:
    """Run ``block`` statement by statement as a script would; return its namespace and the value
    of every top-level expression by line (what a notebook would show)."""
    filename = f"{block.page.relative_to(ROOT)}:{block.line - 1}"
    tree = ast.parse(block.code, filename=filename)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    shown: dict[int, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Expr):
            expression = ast.Expression(statement.value)
            shown[statement.end_lineno or statement.lineno] = eval(
                compile(expression, filename, "eval"), namespace)
        else:
            exec(compile(ast.Module([statement], type_ignores=[]), filename, "exec"), namespace)
    return namespace, shown


@pytest.mark.slow
def test_library_in_one_minute_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               fake_provider: FakeProvider) -> None:
    block = python_block(README, "Library in one minute")
    monkeypatch.chdir(tmp_path)  # the block opens ./kb
    monkeypatch.delenv("SEMKIT_DB", raising=False)
    # The OpenAI lines go to a real HTTP server on 127.0.0.1 speaking OpenAI's wire format.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_provider.openai_url)

    namespace, shown = run_statements(block)
    try:
        v = namespace["v"]
        assert v.shape == (3, 384) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        for line, claimed in numeric_claims(block.code).items():
            digits = len(str(claimed).split(".")[1])
            # One unit of the last digit shown: the default precision follows the CPU (int8 on
            # VNNI/AMX, fp32 elsewhere), and the two differ in the third decimal of a cosine.
            assert abs(float(shown[line]) - claimed) <= 10 ** -digits + 1e-9, (
                f"README line {block.line + line - 1} shows {claimed}, the code gives {shown[line]}")

        m = namespace["m"]
        assert (m.id, m.dimensions) == ("openai:text-embedding-3-small@512", 512)
        [request] = fake_provider.requests
        assert request.body["model"] == "text-embedding-3-small"
        assert request.body["dimensions"] == 512
        assert request.inputs == ["How do neural networks learn?"]
        assert m.meter.as_dict()["requests"] == 1 and m.meter.as_dict()["tokens"] > 0

        assert (tmp_path / "kb").is_dir()
        hits = namespace["hits"]
        assert [h.id for h in hits] == ["doc1"]  # the only record with a year >= 2020
        assert (hits[0].text, hits[0].metadata) == ("ML basics", {"title": "ML Basics", "year": 2021})
    finally:
        namespace["db"].close()


@pytest.mark.slow
def test_the_indexing_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    block = python_block(DOCS / "indexing.md", "Index and search your files")
    shutil.copytree(ROOT / "examples" / "docs", tmp_path / "examples" / "docs")
    monkeypatch.chdir(tmp_path)

    namespace, _ = run_statements(block)

    report = namespace["report"]
    assert report.indexed and not report.failed and report.embedded > 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(len(report.indexed)), str(report.unchanged), "0", str(report.embedded)]


# --- every page ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_python_blocks_parse(path: Path) -> None:
    for block in read_page(path).blocks:
        if block.language == "python":
            try:
                ast.parse(block.code)
            except SyntaxError as exc:
                pytest.fail(f"{path.name}:{block.line + (exc.lineno or 1) - 1}: {exc.msg}")


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_named_semkit_api_exists(path: Path) -> None:
    import semkit.apps

    page = read_page(path)
    names = names_in_prose(page)
    for block in page.blocks:
        if block.language == "python":
            names |= names_in_python(block.code)
    missing = []
    for name in sorted(names):
        if name.startswith("semkit.apps.") and name.split(".")[2] not in {*semkit.apps.__all__, "__all__"}:
            missing.append(f"{name} (not in apps.__all__)")
            continue
        try:
            resolve(name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name} ({exc})")
    assert not missing, f"{path.name} names what does not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_quoted_repository_paths_exist(path: Path) -> None:
    quoted = {
        found
        for span in code_spans(read_page(path))
        for found in re.findall(r"(?<![\w./])((?:src|tests|benchmarks|examples|docs|\.ci)/[\w./-]*\w)", span)
    }
    assert quoted or path.name != "development.md"  # the layout page quotes paths: the regex works
    missing = sorted(p for p in quoted if not (ROOT / p).exists())
    assert not missing, f"{path.name} quotes paths that do not exist: {missing}"


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_links_and_anchors_resolve(path: Path) -> None:
    broken = []
    for line, target in links(read_page(path)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"line {line}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"line {line}: {target} (no heading with that anchor in {linked.name})")
    assert not broken, f"{path.name} has broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_no_html_comments(path: Path) -> None:
    # A half-deleted comment renders as a stray heading or paragraph (README once had one).
    prose = read_page(path).prose
    assert "<!--" not in prose and "-->" not in prose


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    assert "docs/README.md" in {target.partition("#")[0] for _, target in links(read_page(README))}
    index = {target.partition("#")[0] for _, target in links(read_page(DOCS / "README.md"))}
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert pages and pages <= index, f"not linked from docs/README.md: {sorted(pages - index)}"


def test_github_anchor() -> None:
    assert github_anchor("Vector search — `python benchmarks/search.py --pg`") == \
        "vector-search--python-benchmarkssearchpy---pg"
    assert github_anchor("When to move: embedded → pgvector → Qdrant cluster") == \
        "when-to-move-embedded--pgvector--qdrant-cluster"
    assert github_anchor("Never pay twice: the embedding cache") == "never-pay-twice-the-embedding-cache"
