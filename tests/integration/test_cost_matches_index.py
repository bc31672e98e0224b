"""``semkit cost`` counts exactly what ``semkit index`` indexes: the same texts from the same
files, and the same files skipped or read with a caveat. Both run on one messy folder; the
index is real (embedded store, ``HashEmbedder``)."""

from __future__ import annotations

import json
from pathlib import Path

import semkit
from semkit import cost
from semkit.ingest import index_paths
from tests.support.hash_embedder import HashEmbedder


def _folder(root: Path) -> Path:
    from fpdf import FPDF

    (root / "sub").mkdir(parents=True)
    (root / "guide.md").write_text("# Guide\n\nIntro to the guide.\n\n## Setup\n\nInstall it first.\n",
                                   encoding="utf-8")
    (root / "notes.txt").write_text("Plain notes about sourdough starters.", encoding="utf-8")
    (root / "latin.txt").write_bytes("Crème brûlée recipe\n\nCaramelise the sugar.".encode("latin-1"))
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (root / "empty.md").write_text("", encoding="utf-8")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (root / "sub" / "page.html").write_text(
        "<html><head><title>Ovens</title><script>var x = 1;</script></head><body><main><h1>Ovens</h1>"
        "<p>Wood-fired ovens reach very high temperatures quickly.</p></main></body></html>", encoding="utf-8")
    (root / "sub" / "faq.jsonl").write_text(
        json.dumps({"title": "Chain", "text": "Oil the chain."}) + "\n{broken\n"
        + json.dumps({"title": "Tyres", "text": "Check the pressure."}) + "\n", encoding="utf-8")
    (root / "sub" / "rows.csv").write_text("id,content\n1,First row text\n2,\n3,Third row text\n", encoding="utf-8")
    (root / "sub" / "list.json").write_text(json.dumps([{"body": "A JSON record."}, "A bare string."]),
                                            encoding="utf-8")
    (root / "sub" / "nofield.jsonl").write_text(json.dumps({"n": 1}) + "\n", encoding="utf-8")
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in ("Page one of the handbook.", "Page two of the handbook."):
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(root / "sub" / "handbook.pdf"))
    return root


def test_cost_counts_the_texts_index_writes_and_skips_the_same_files(tmp_path: Path) -> None:
    root = _folder(tmp_path / "docs")
    problems: list[cost.FileProblem] = []
    caveats: list[cost.FileProblem] = []
    counted = list(cost.iter_texts([root], problems, caveats=caveats))

    with semkit.connect(tmp_path / "kb") as db:
        col = db.collection("docs", model=HashEmbedder())
        # chunks bigger than any section here: one record per section, as cost counts them
        report = index_paths(col, [root], chunk_tokens=2000, overlap=0)
        indexed = sorted(r.text or "" for batch in col.scan() for r in batch)

    assert sorted(text for _, text in counted) == indexed
    assert len(indexed) == 13
    assert {p.path for p in problems} == {p.path for p in report.failed}
    assert {Path(p.path).name for p in problems} == {"binary.txt", "empty.md", "nofield.jsonl"}
    assert {p.path for p in caveats} == {p.path for p in report.warnings}
    assert {Path(p.path).name for p in caveats} == {"latin.txt", "faq.jsonl", "rows.csv"}
    assert report.ignored == 1  # photo.jpg: not counted by cost either

    estimate = cost.estimate([root], ["local"])
    assert estimate.texts == len(indexed)
    assert estimate.files == len(report.indexed)
