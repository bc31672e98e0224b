"""Regenerate the binary samples in examples/docs (the PDF and the Word file) from the text
below, with fpdf2 and python-docx: ``python examples/make_sample_docs.py``.

The files are committed, so the demo needs neither library to build them; reading them needs
``semkit[ingest]`` (pypdf, python-docx).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

DOCS = Path(__file__).parent / "docs"

VECTOR_SEARCH = (
    "Vector search explained",
    [
        ("What an embedding is",
         ["An embedding model turns a piece of text into a list of a few hundred numbers, a vector. "
          "Texts with similar meaning end up with vectors that point in similar directions, even when "
          "they share no words: 'a feline rested on a rug' lands close to 'the cat sat on the mat'.",
          "The similarity of two vectors is usually measured with the cosine of the angle between them. "
          "A score near one means the texts say nearly the same thing; a score near zero means they are "
          "unrelated."]),
        ("Finding the nearest neighbours",
         ["Searching means embedding the question and finding the stored vectors closest to it. For a "
          "few thousand documents an exact scan over every vector takes milliseconds. For millions, "
          "approximate indexes such as HNSW build a graph of neighbours and visit only a small part of it, "
          "trading a little recall for a large speed-up."]),
        ("Chunking documents",
         ["Models have a limited context, often a few hundred tokens, so long documents are split into "
          "chunks before embedding. Chunks that follow headings and paragraphs, with a small overlap "
          "between neighbours, keep each vector focused on one idea and make the results easy to show.",
          "Keeping the source file, title and page of every chunk lets a search result point the reader "
          "straight to the right place in the original document."]),
    ],
)

REMOTE_WORK = (
    "Working well from home",
    [
        ("Set up a real workspace",
         ["A separate desk, a good chair and a screen at eye height prevent the back and neck pain that "
          "comes from months of working on a sofa. Natural light and a door you can close help you switch "
          "between work and home."]),
        ("Communicate on purpose",
         ["Remote teams lose the small conversations of an office, so write things down. Share what you "
          "are working on, ask questions in public channels rather than private messages, and keep "
          "meetings short with a written agenda."]),
        ("Protect your time",
         ["Decide when your working day starts and ends and tell your colleagues. Turn off notifications "
          "during focused work, and take real breaks away from the screen."]),
    ],
)


def make_pdf(path: Path) -> None:
    from fpdf import FPDF

    title, sections = VECTOR_SEARCH
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("semkit examples")
    pdf.set_creation_date(datetime(2025, 1, 1, tzinfo=UTC))  # fixed: same bytes on every run
    for number, (heading, paragraphs) in enumerate(sections):
        if number in (0, 2):
            pdf.add_page()
        if number == 0:
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 13)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(path))


def make_docx(path: Path) -> None:
    import docx

    title, sections = REMOTE_WORK
    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=0)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    document.save(str(path))


if __name__ == "__main__":
    make_pdf(DOCS / "vector-search.pdf")
    make_docx(DOCS / "remote-work.docx")
    print(f"wrote {DOCS / 'vector-search.pdf'} and {DOCS / 'remote-work.docx'}")
