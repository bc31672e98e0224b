"""STS quality of the local model on each backend, against MTEB's published numbers.

    python benchmarks/quality_sts.py [--backends torch,onnx-fp32,onnx-int8] [--truncate 256,128,64]

STSBenchmark test (1,379 pairs) and SICK-R (all 9,927 pairs), cosine Spearman x100, computed as
MTEB does (EVAL_NOTES.md): each side encoded as its own list in batches of 32, score = cosine,
``scipy.stats.spearmanr`` against the gold scores. Also printed: how close each backend's
vectors are to the torch reference and int8's to fp32 (mean/min cosine, nearest neighbour
unchanged), and for every ONNX variant whether a text's vector is bit-identical alone and in a
batch. ``--truncate`` scores Matryoshka truncation (first d components, re-normalised) of fp32
vectors, the figures ``models/matryoshka.py`` quotes. Exits 1 when the default backend is more
than 0.3 points from a published score, or int8 more than 0.3 from fp32.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from benchmarks._data import StsPairs, load_sick_r, load_stsb
from scipy.stats import spearmanr

from semkit.models.matryoshka import truncate

PUBLISHED = {"STSBenchmark": 82.03, "SICK-R": 77.58}  # MTEB, all-MiniLM-L6-v2 (catalog.py)
TOLERANCE = 0.3
VARIANTS = {"torch": ("torch", None), "onnx-fp32": ("onnx", "fp32"), "onnx-int8": ("onnx", "int8")}


def sts_score(model: object, pairs: StsPairs, dimensions: int | None = None) -> float:
    a = model.embed(pairs.sentences1)  # type: ignore[attr-defined]
    b = model.embed(pairs.sentences2)  # type: ignore[attr-defined]
    if dimensions is not None:
        a, b = truncate(a, dimensions), truncate(b, dimensions)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100 * float(spearmanr(pairs.scores, cos).statistic)


def nearest_unchanged(ref: np.ndarray, got: np.ndarray) -> float:
    s_ref, s_got = ref @ ref.T, got @ got.T
    np.fill_diagonal(s_ref, -np.inf)
    np.fill_diagonal(s_got, -np.inf)
    return float((s_ref.argmax(1) == s_got.argmax(1)).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default=",".join(VARIANTS))
    ap.add_argument("--truncate", default="", help="comma-separated sizes to score fp32 truncated to")
    args = ap.parse_args()
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]

    from semkit.models.local import load_local

    default = load_local("all-MiniLM-L6-v2")
    default_key = "torch" if default.backend == "torch" else f"onnx-{default.precision}"
    datasets = {"STSBenchmark": load_stsb("test"), "SICK-R": load_sick_r()}
    probe = list(dict.fromkeys(datasets["STSBenchmark"].sentences1))[:1000]

    scores: dict[str, dict[str, float]] = {}
    vectors: dict[str, np.ndarray] = {}
    models = {}
    for key in wanted:
        backend, precision = VARIANTS[key]
        models[key] = model = load_local("all-MiniLM-L6-v2", backend=backend, precision=precision)
        scores[key] = {name: sts_score(model, pairs) for name, pairs in datasets.items()}
        vectors[key] = model.embed(probe)
        print(f"  done: {key}", file=sys.stderr)

    print(f"\nall-MiniLM-L6-v2, cosine Spearman x100 (default backend: {default_key})")
    print(f"{'backend':12s} " + " ".join(f"{n:>13s} {'delta':>6s}" for n in datasets))
    print(f"{'published':12s} " + " ".join(f"{PUBLISHED[n]:13.2f} {'':>6s}" for n in datasets))
    for key, row in scores.items():
        mark = " *" if key == default_key else ""
        cells = " ".join(f"{row[n]:13.2f} {row[n] - PUBLISHED[n]:+6.2f}" for n in datasets)
        print(f"{key + mark:12s} {cells}")
    if "onnx-int8" in scores and "onnx-fp32" in scores:
        d = {n: scores["onnx-int8"][n] - scores["onnx-fp32"][n] for n in datasets}
        print("int8 - fp32: " + ", ".join(f"{n} {v:+.2f}" for n, v in d.items()))

    if "torch" in vectors:
        ref = vectors["torch"]
        print(f"\nvs the torch reference on {len(probe)} STSb sentences:")
        for key, vecs in vectors.items():
            if key == "torch":
                continue
            cos = (vecs * ref).sum(axis=1)
            print(f"  {key:10s} mean cosine {cos.mean():.5f}  min {cos.min():.4f}  "
                  f"nearest neighbour unchanged {100 * nearest_unchanged(ref, vecs):.1f}%")
    if "onnx-int8" in vectors and "onnx-fp32" in vectors:
        ref, got = vectors["onnx-fp32"], vectors["onnx-int8"]
        cos = (ref * got).sum(axis=1)
        print(f"\nint8 vs fp32 on {len(probe)} STSb sentences: mean cosine {cos.mean():.5f}  min "
              f"{cos.min():.4f}  nearest neighbour unchanged {100 * nearest_unchanged(ref, got):.1f}%")
    for key, m in models.items():
        if key.startswith("onnx"):
            batched = m.embed(probe[:256])
            alone = np.concatenate([m.embed([t]) for t in probe[:256]])
            same = float((batched == alone).all(axis=1).mean())
            cos = (batched * alone).sum(axis=1)
            print(f"  {key} alone vs in a batch of {m.batch_size}: {100 * same:.1f}% bit-identical, "
                  f"min cosine {cos.min():.6f}")
    sizes = [int(d) for d in args.truncate.split(",") if d.strip()]
    if sizes and "onnx-fp32" in models:
        print("\nMatryoshka truncation of onnx-fp32 (first d components, re-normalised):")
        for d in sizes:
            row = {n: sts_score(models["onnx-fp32"], pairs, d) for n, pairs in datasets.items()}
            print(f"  {d:5d} dims: " + ", ".join(f"{n} {v:.2f}" for n, v in row.items()))

    failed = False
    if default_key in scores:
        for n in datasets:
            if abs(scores[default_key][n] - PUBLISHED[n]) > TOLERANCE:
                print(f"FAIL: default backend {default_key} {n} {scores[default_key][n]:.2f} is more "
                      f"than {TOLERANCE} from published {PUBLISHED[n]}")
                failed = True
    if "onnx-int8" in scores and "onnx-fp32" in scores:
        for n in datasets:
            if abs(scores["onnx-int8"][n] - scores["onnx-fp32"][n]) > TOLERANCE:
                print(f"FAIL: onnx-int8 {n} is more than {TOLERANCE} from onnx-fp32")
                failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
