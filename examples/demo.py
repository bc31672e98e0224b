"""The main job on the embedded default, offline: embed, compare, store, search.

Run with ``./run demo`` (sets up .venv first) or ``python examples/demo.py [--db ./kb]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import semkit

SEED_SENTENCES = [
    "The cat sat on the mat",
    "A feline rested on a rug",
    "Stock prices rose sharply",
    "How do neural networks learn?",
    "Backpropagation adjusts the weights of a network to reduce its error",
]

DOCUMENTS = [
    ("doc1", "ML basics: models learn patterns from data and generalise to new examples.",
     {"title": "ML Basics", "year": 2021, "topic": "ml"}),
    ("doc2", "Pizza guide: a hot oven, a thin crust and fresh mozzarella make the best pizza.",
     {"title": "Pizza Guide", "year": 2019, "topic": "food"}),
    ("doc3", "Gradient descent and backpropagation are how neural networks are trained.",
     {"title": "Training Neural Nets", "year": 2023, "topic": "ml"}),
    ("doc4", "Speed up a slow website by caching pages, compressing images and using a CDN.",
     {"title": "Web Performance", "year": 2022, "topic": "web"}),
    ("doc5", "Sourdough bread needs a lively starter, a long proof and steam in the oven.",
     {"title": "Baking Bread", "year": 2020, "topic": "food"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="./kb", help="embedded store folder (created if missing)")
    args = parser.parse_args()

    started = time.perf_counter()
    vectors = semkit.embed(SEED_SENTENCES)
    print(f"embedded {len(SEED_SENTENCES)} sentences -> {vectors.shape} {vectors.dtype} "
          f"(unit length: {np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)}) "
          f"in {time.perf_counter() - started:.2f}s\n")
    sims = semkit.similarity(vectors, vectors)
    width = max(len(s) for s in SEED_SENTENCES)
    print("cosine similarity")
    for i, sentence in enumerate(SEED_SENTENCES):
        print(f"  {sentence:<{width}}  " + " ".join(f"{sims[i, j]:+.3f}" for j in range(len(SEED_SENTENCES))))
    print(f"\n  cat ~ feline: {sims[0, 1]:.4f}   cat ~ stocks: {sims[0, 2]:.4f}\n")

    with semkit.connect(args.db) as db:
        docs = db.collection("demo", model="local")
        ids, texts, metadata = zip(*DOCUMENTS, strict=True)
        docs.upsert(ids=list(ids), texts=list(texts), metadata=list(metadata))
        print(f"collection 'demo' in {args.db}: {len(docs)} documents")
        for query, where in [("machine learning", None), ("how to fix a slow website", None),
                             ("something to eat", {"year": {"$gte": 2020}})]:
            hits = docs.search(query, k=3, where=where)
            label = f"{query!r}" + (f" where {where}" if where else "")
            print(f"\nsearch {label}")
            for hit in hits:
                print(f"  {hit.score:.3f}  {hit.id}  {hit.metadata.get('title')}")


if __name__ == "__main__":
    main()
