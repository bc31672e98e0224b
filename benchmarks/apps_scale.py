"""Dedup and clustering at ~100k real sentence vectors: wall time and peak memory vs peers.

Vectors: the benchmark set of ``benchmarks/_vectors.py`` (real all-MiniLM-L6-v2 embeddings of
~100k distinct sentences from the shared data, cached in ``.bench-cache/``; build it with
``python benchmarks/_vectors.py --build``). Every method runs in its own subprocess, one after
the other, so peak RSS (``ru_maxrss``) is its own: "base" is the RSS after imports and loading
the vectors, "peak" the maximum during the run. Everything runs on one thread (OMP, torch,
FAISS): on this machine two threads share one core's FP units.

Methods (threshold 0.9 for duplicates):
- ``semkit dedup``: ``apps.duplicates(k=10)`` — kNN graph (exact FAISS up to 50k, HNSW above)
  + keeper-centred groups; ``semkit dedup exact`` forces exact search.
- ``st paraphrase_mining``: sentence-transformers ``util.paraphrase_mining_embeddings``
  (top_k=10, defaults otherwise), pairs >= 0.9.
- ``st community_detection``: ``util.community_detection`` — at threshold 0.9 /
  min_community_size 2 (duplicate groups) and at its defaults 0.75 / 10 (topic clusters).
- ``semkit kmeans`` (k=100) and ``semkit hdbscan`` (defaults): ``apps.cluster`` including
  c-TF-IDF keywords, representatives and the 2-D map.

Dedup quality: "removed" = items a method would delete (every group member but its keeper /
first member); "pairs left" = how many of paraphrase_mining's pairs (>= 0.9) still have both
sentences kept afterwards (0 = no known duplicate survives).

    python benchmarks/apps_scale.py [--sizes 20000,100000] [--timeout 1200]

Recommend at scale (``--recommend N``): an embedded collection of N real vectors (HNSW, the
store's defaults); ``apps.recommend(col, liked=[one id], k=10)`` against a plain
``col.search(vector, k=10)``, interleaved one call each, medians (target: within 5x); the
full load the previous recommend did on every call is timed once for reference::

    python benchmarks/apps_scale.py --recommend 40000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

METHODS = [
    "semkit dedup", "semkit dedup exact", "st paraphrase_mining", "st community 0.9/2",
    "semkit kmeans k=100", "semkit hdbscan", "st community 0.75/10",
]


def _load(n: int) -> tuple[np.ndarray, list[str | None]]:
    own = os.environ.get("APPS_SCALE_VECTORS")  # any other (n, d) .npy, for a quick dry run
    if own:
        vecs = np.load(own, mmap_mode="r")
        return np.ascontiguousarray(vecs[:n], dtype=np.float32), [None] * min(n, len(vecs))
    import _vectors

    digest_files = sorted(_vectors.CACHE.glob("minilm-*.npy"))
    if not digest_files:
        raise SystemExit("no cached benchmark vectors: run `python benchmarks/_vectors.py --build` first")
    texts, vecs = _vectors.build_all(verbose=False)  # returns the cached file, never re-embeds a finished set
    n = min(n, len(texts))
    return np.ascontiguousarray(vecs[:n], dtype=np.float32), texts[:n]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(method: str, n: int, out: str) -> None:
    """Run one method in this (fresh) process and write what it measured to ``out``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    x, texts = _load(n)
    removed = np.zeros(len(x), dtype=bool)
    pairs = np.zeros((0, 2), dtype=np.int64)
    extra: dict[str, object] = {}
    if method.startswith("st "):
        import torch
        from sentence_transformers import util

        torch.set_num_threads(1)
        emb = torch.from_numpy(x)
    else:
        import faiss
        import sklearn.cluster  # noqa: F401

        from semkit import apps

        faiss.omp_set_num_threads(1)
        ids = [str(i) for i in range(len(x))]
    base = _rss_mb()
    started = time.perf_counter()
    if method in ("semkit dedup", "semkit dedup exact"):
        report = apps.duplicates(apps.from_matrix(x, ids, texts), threshold=0.9, k=10,
                                 exact=True if method.endswith("exact") else None)
        elapsed = time.perf_counter() - started
        removed[[int(i) for i in report.removable()]] = True
        extra = {"groups": len(report.groups), "pairs": report.near_pairs, "exact dups": report.exact_duplicates}
    elif method == "st paraphrase_mining":
        found = util.paraphrase_mining_embeddings(emb, top_k=10)
        elapsed = time.perf_counter() - started
        pairs = np.asarray([(i, j) for s, i, j in found if s >= 0.9], dtype=np.int64).reshape(-1, 2)
        extra = {"pairs": len(pairs)}
    elif method.startswith("st community"):
        thr, size = (0.9, 2) if "0.9" in method else (0.75, 10)
        communities = util.community_detection(emb, threshold=thr, min_community_size=size, batch_size=1024)
        elapsed = time.perf_counter() - started
        for members in communities:
            removed[members[1:]] = True  # the first member is the community's centre
        extra = {"groups": len(communities), "grouped items": sum(len(c) for c in communities)}
    elif method.startswith("semkit kmeans"):
        report = apps.cluster(apps.from_matrix(x, ids, texts), method="kmeans", k=100)
        elapsed = time.perf_counter() - started
        extra = {"clusters": report.k, "example": report.clusters[0].label}
    elif method == "semkit hdbscan":
        report = apps.cluster(apps.from_matrix(x, ids, texts), method="hdbscan")
        elapsed = time.perf_counter() - started
        extra = {"clusters": report.k, "noise": report.noise, "fit on": report.params["fitted_on"],
                 "example": report.clusters[0].label if report.clusters else ""}
    else:
        raise SystemExit(f"unknown method {method!r}")
    peak = _rss_mb()
    np.save(out + ".removed.npy", removed)
    np.save(out + ".pairs.npy", pairs)
    Path(out).write_text(json.dumps({"seconds": elapsed, "base_mb": base, "peak_mb": peak, "extra": extra}))


def run(method: str, n: int, timeout: float, tmp: str) -> dict[str, object]:
    out = os.path.join(tmp, f"{method.replace(' ', '_').replace('/', '-')}-{n}.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        proc = subprocess.run([sys.executable, __file__, "--worker", method, "--n", str(n), "--out", out],
                              env=env, timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {timeout:.0f}s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        killed = " (killed: out of memory?)" if proc.returncode < 0 else ""
        return {"status": f"failed rc={proc.returncode}{killed}: {tail[:120]}"}
    result = json.loads(Path(out).read_text())
    result["removed"] = np.load(out + ".removed.npy")
    result["pairs"] = np.load(out + ".pairs.npy")
    result["status"] = "ok"
    return result


def recommend_latency(n: int, calls: int = 400) -> None:
    """Recommend with one liked id vs a plain search, on an embedded collection of ``n``."""
    import faiss

    from semkit import apps
    from semkit.database import Database
    from semkit.store.embedded import EmbeddedStore

    faiss.omp_set_num_threads(1)
    x, texts = _load(n)
    ids = [f"s{i}" for i in range(len(x))]
    with tempfile.TemporaryDirectory() as tmp:
        with EmbeddedStore(Path(tmp) / "store", durable=False) as store:
            col = Database(store).collection("items", model=None, dimensions=x.shape[1])
            for s in range(0, len(x), 10_000):
                col.upsert(ids[s:s + 10_000], vectors=x[s:s + 10_000], texts=texts[s:s + 10_000])
            store.build_index("items")
        with EmbeddedStore(Path(tmp) / "store") as store:
            col = Database(store).collection("items", model=None, dimensions=x.shape[1])
            col.search(x[0], k=10)  # open: rows and index file loaded once, as a server would
            rng = np.random.default_rng(0)
            picks = rng.choice(len(x), size=calls, replace=False)
            rec_ms, search_ms = [], []
            for i, row in enumerate(picks.tolist()):
                order = ("recommend", "search") if i % 2 else ("search", "recommend")
                for what in order:
                    t = time.perf_counter()
                    if what == "recommend":
                        apps.recommend(col, liked=[ids[row]], k=10)
                        rec_ms.append((time.perf_counter() - t) * 1000)
                    else:
                        col.search(x[row], k=10)
                        search_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            apps.as_source(col)  # what every recommend call paid before it went through kNN
            full_load = time.perf_counter() - t
    rec, srch = float(np.median(rec_ms)), float(np.median(search_ms))
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\n# recommend at n={len(x)} (embedded store, HNSW), {calls} calls each, interleaved; load {load}")
    print(f"- apps.recommend(liked=[1 id], k=10): median {rec:.2f} ms (p90 {np.percentile(rec_ms, 90):.2f})")
    print(f"- Collection.search(vector, k=10):    median {srch:.2f} ms (p90 {np.percentile(search_ms, 90):.2f})")
    print(f"- ratio {rec / srch:.2f}x (target <= 5x) {'OK' if rec / srch <= 5 else 'MISSED'}; "
          f"the full load the previous recommend did per call: {full_load * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--worker")
    parser.add_argument("--n", type=int)
    parser.add_argument("--out")
    parser.add_argument("--recommend", type=int, metavar="N",
                        help="only the recommend-vs-search latency row, on N vectors (e.g. 40000)")
    args = parser.parse_args()
    if args.recommend:
        recommend_latency(args.recommend)
        return
    if args.worker:
        worker(args.worker, args.n, args.out)
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            results = {}
            for method in methods:
                print(f"[{time.strftime('%H:%M:%S')}] n={n} {method} ...", file=sys.stderr, flush=True)
                results[method] = run(method, n, args.timeout, tmp)
            st_pairs = results.get("st paraphrase_mining", {}).get("pairs")
            for method in methods:
                r = results[method]
                removed, left = "", ""
                if r["status"] == "ok" and r["removed"].any() and "0.75" not in method:  # topics, not dups
                    gone = r["removed"]
                    removed = str(int(gone.sum()))
                    if st_pairs is not None and len(st_pairs):
                        left = str(int((~gone[st_pairs[:, 0]] & ~gone[st_pairs[:, 1]]).sum()))
                rows.append((n, method, r, removed, left))
    print(f"\n{'n':>7}  {'method':<22} {'seconds':>8} {'base MB':>8} {'peak MB':>8} {'+MB':>7}  "
          f"{'removed':>8} {'pairs left':>10}  details")
    for n, method, r, removed, left in rows:
        if r["status"] != "ok":
            print(f"{n:>7}  {method:<22} {r['status']}")
            continue
        extra = ", ".join(f"{k} {v}" for k, v in r["extra"].items())
        print(f"{n:>7}  {method:<22} {r['seconds']:>8.1f} {r['base_mb']:>8.0f} {r['peak_mb']:>8.0f} "
              f"{r['peak_mb'] - r['base_mb']:>7.0f}  {removed:>8} {left:>10}  {extra}")


if __name__ == "__main__":
    main()
