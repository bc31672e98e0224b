"""Small-collection relevance: does the default search beat vector search where one shared word
can mislead keywords?

    python benchmarks/relevance_small.py [--alpha 0.3,0.5,0.7] [--rerank windows|FOLDER] [--json]

Sets (``benchmarks/relevance_sets/*.json``, judged by hand):

- ``examples_docs``: the project's own ``examples/docs``, indexed with ``semkit index``
  defaults into an embedded collection; a chunk is relevant when its file is judged relevant.
  Its first query is the README's flagship, ``how to fix slow website``: every one of the
  default mode's top 3 must be a ``web-performance.md`` chunk.
- ``helpdesk`` (24 docs, 25 queries) and ``encyclopedia`` (22 docs, 34 queries): short texts
  that share everyday words (reset, slow, battery, window; python, java, mercury, bank) in
  another sense than the query's.

Per set and mode: precision@3 (share of the top 3 that is relevant, averaged over queries)
and top-1 (share of queries whose first hit is relevant). The default mode must be at least
as good as vector mode on both, on every set; the script exits 1 otherwise. ``--alpha`` adds
rows for other convex-fusion weights (for choosing the default; SciFact train is the other set).
Everything goes through ``semkit.apps.search`` on an embedded collection with the bundled model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from _machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
SETS = Path(__file__).resolve().parent / "relevance_sets"
FLAGSHIP = "how to fix slow website"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(REPO / "src"))


def load_set(path: Path, db: Any, model: Any) -> tuple[Any, list[dict], Any]:
    """(collection, queries, function hit -> the key its judgements use)."""
    spec = json.loads(path.read_text(encoding="utf-8"))
    col = db.collection(path.stem, model=model)
    if "folder" in spec:
        from semkit.ingest import index_paths

        index_paths(col, REPO / spec["folder"])

        def key(hit: Any) -> str:
            meta = hit.metadata or {}
            return Path(str(next((meta[k] for k in ("path", "source", "file") if meta.get(k)), ""))).name
    else:
        docs = spec["docs"]
        col.upsert(ids=[d["id"] for d in docs], texts=[d["text"] for d in docs])

        def key(hit: Any) -> str:
            return str(hit.id)
    return col, spec["queries"], key


def measure(col: Any, queries: list[dict], key: Any, **options: Any) -> dict[str, float]:
    from semkit.apps import search

    p3 = top1 = 0.0
    for q in queries:
        hits = search(col, q["query"], k=3, snippets=False, **options)
        relevant = set(q["relevant"])
        marks = [key(h) in relevant for h in hits]
        p3 += sum(marks) / 3
        top1 += bool(marks and marks[0])
    return {"p@3": 100 * p3 / len(queries), "top1": 100 * top1 / len(queries)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", default="", help="comma-separated convex-fusion weights to add as rows")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--rerank", metavar="windows|FOLDER", default=None,
                        help="add a row for the default mode reranked: 'windows' (SentenceWindows, the "
                        "collection's own model on each candidate's sentences) or a cross-encoder folder")
    args = parser.parse_args()

    import semkit

    load = os.getloadavg()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    model = semkit.model("local")
    print(f"model: {model.id}")
    modes: list[tuple[str, dict[str, Any]]] = [
        ("default (hybrid, convex)", {}),
        ("vector", {"mode": "vector"}),
        ("keyword", {"mode": "keyword"}),
        ("hybrid fusion=rrf", {"fusion": "rrf"}),
    ]
    for alpha in filter(None, args.alpha.split(",")):
        modes.append((f"hybrid convex alpha={float(alpha)}", {"alpha": float(alpha)}))
    if args.rerank is not None:
        from semkit.models.rerank import WINDOWS, load_reranker

        name = WINDOWS if args.rerank.strip().lower() == WINDOWS else Path(args.rerank).name
        modes.append((f"default + rerank {name}", {"rerank": load_reranker(args.rerank)}))

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="relevance-small-") as tmp, semkit.connect(Path(tmp) / "kb") as db:
        for path in sorted(SETS.glob("*.json")):
            col, queries, key = load_set(path, db, model)
            print(f"\n{path.stem}: {col.count()} records, {len(queries)} queries")
            print(f"  {'mode':34} {'p@3':>6} {'top-1':>6}")
            results = {}
            for label, options in modes:
                m = measure(col, queries, key, **options)
                results[label] = m
                rows.append({"set": path.stem, "mode": label, **m})
                print(f"  {label:34} {m['p@3']:6.1f} {m['top1']:6.1f}")
            default, vector = results[modes[0][0]], results["vector"]
            if default["p@3"] < vector["p@3"] or default["top1"] < vector["top1"]:
                failures.append(f"{path.stem}: default below vector")
            if path.stem == "examples_docs":
                from semkit.apps import search

                top3 = [key(h) for h in search(col, FLAGSHIP, k=3, snippets=False)]
                ok = top3 == ["web-performance.md"] * 3
                print(f"  flagship {FLAGSHIP!r}: top 3 = {top3} {'OK' if ok else 'FAIL'}")
                if not ok:
                    failures.append("flagship query")
    if args.json:
        print(json.dumps(rows, indent=1))
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
