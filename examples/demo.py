"""The main job on the embedded default, offline: index the sample documents, then search them.

Run with ``./run demo`` (sets up .venv first) or ``python examples/demo.py [--db ./kb]``.
Running it again is incremental: unchanged files are skipped without embedding anything.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import semkit
from semkit.ingest import index_paths

DOCS = Path(__file__).parent / "docs"

SEED_SENTENCES = ["The cat sat on the mat", "A feline rested on a rug", "Stock prices rose sharply"]

QUERIES = [
    ("how to fix a slow website", None),
    ("my bread starter smells sour", None),
    ("a city break with old trams and narrow streets", {"format": "html"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="./kb", help="embedded store folder (created if missing)")
    parser.add_argument("--docs", default=str(DOCS), help="folder of documents to index")
    args = parser.parse_args()

    # 1. Similar meaning, similar vectors.
    vectors = semkit.embed(SEED_SENTENCES)
    sims = semkit.similarity(vectors, vectors)
    print(f"embedded {len(SEED_SENTENCES)} sentences -> {vectors.shape} {vectors.dtype}")
    print(f"  cat ~ feline: {sims[0, 1]:.3f}   cat ~ stocks: {sims[0, 2]:.3f}\n")

    # 2. Index a folder of documents (md, txt, html, pdf, docx, csv, jsonl) into chunks.
    with semkit.connect(args.db) as db:
        docs = db.collection("docs", model="local")
        started = time.perf_counter()
        report = index_paths(docs, [args.docs])
        print(f"indexed {args.docs} into '{docs.name}' in {args.db}: {len(report.indexed)} new or changed, "
              f"{report.unchanged} unchanged, {len(report.removed)} removed, {len(report.failed)} failed; "
              f"{report.embedded} chunks embedded, {len(docs)} in total ({time.perf_counter() - started:.1f}s)")
        for problem in [*report.failed, *report.warnings]:
            print(f"  ! {problem}")

        # 3. Search by meaning: the words need not match.
        for query, where in QUERIES:
            print(f"\nsearch {query!r}" + (f" where {where}" if where else ""))
            for hit in docs.search(query, k=3, where=where):
                meta = hit.metadata
                place = meta["source"] + (f" p.{meta['page']}" if "page" in meta else "")
                section = f" > {meta['section']}" if meta.get("section") else ""
                print(f"  {hit.score:.3f}  {meta['title']}{section}  [{place}]")
                print(f"         {_snippet(hit.text)}")


def _snippet(text: str | None, width: int = 110) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1].rsplit(" ", 1)[0] + " …"


if __name__ == "__main__":
    main()
