"""Quality of the apps on public data, measured the way MTEB measures it where it can be.

- Banking77 (classification): MTEB's protocol — 10 experiments, each drawing 8 training texts
  per label from the shuffled train split, ``LogisticRegression(max_iter=100)`` (through
  ``semkit.apps.Classifier``, which fits exactly that), accuracy on the 3,080 test texts.
  Published all-MiniLM-L6-v2: 80.04. Also fully supervised (all 10,003 training texts),
  kNN on embeddings, and zero-shot from the label names (``card_arrival`` -> "card arrival").
- MRPC test (duplicate detection): cosine AP and best-threshold F1/accuracy of the 1,725 pairs
  (always answering "paraphrase" gives F1 79.87), and the F1 of ``apps.duplicates`` itself run
  over all the sentences at that threshold (a pair counts as found if both land in one group).
- Banking77 test (clustering): V-measure of ``apps.cluster`` k-means (k=77) and HDBSCAN.

Embeddings are computed once per model fingerprint and cached in ``.bench-cache/``.

    python benchmarks/apps_quality.py [--precision fp32|int8]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from _data import data_dir

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".bench-cache"
DATA = data_dir()
PUBLISHED_BANKING77 = 80.04
ALWAYS_PARAPHRASE_F1 = 79.87

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(REPO / "src"))


def load_banking77() -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    def read(name: str) -> tuple[list[str], list[str]]:
        with open(DATA / "banking77" / name, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [r["text"].strip() for r in rows], [r["category"] for r in rows]

    train_x, train_y = read("train.csv")
    test_x, test_y = read("test.csv")
    labels = json.loads((DATA / "banking77" / "categories.json").read_text(encoding="utf-8"))
    return train_x, train_y, test_x, test_y, labels


def load_mrpc() -> tuple[list[str], list[str], np.ndarray]:
    s1: list[str] = []
    s2: list[str] = []
    gold: list[int] = []
    with open(DATA / "mrpc" / "msr_paraphrase_test.txt", encoding="utf-8-sig") as fh:
        for i, line in enumerate(fh):
            if i == 0 or not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            gold.append(int(parts[0]))
            s1.append(parts[3].strip())
            s2.append(parts[4].strip())
    return s1, s2, np.asarray(gold)


class Embedder:
    """semkit's local model, with a per-fingerprint .npy cache of every text list."""

    def __init__(self, precision: str | None) -> None:
        import semkit

        options = {"precision": precision} if precision else {}
        self.model = semkit.model("local", cache=False, **options)
        self.fingerprint = self.model.fingerprint

    def __call__(self, name: str, texts: list[str], kind: str = "document") -> np.ndarray:
        digest = hashlib.sha256(("\n".join(texts) + kind + self.fingerprint).encode()).hexdigest()[:12]
        path = CACHE / f"apps-{name}-{digest}.npy"
        if path.exists():
            return np.load(path)
        started = time.perf_counter()
        vecs = self.model.embed(texts, kind)
        print(f"  embedded {len(texts)} {name} texts in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        CACHE.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        os.replace(tmp, path)
        return vecs


def few_shot_mteb(train_v: np.ndarray, train_y: list[str], test_v: np.ndarray, test_y: list[str],
                  method: str, per_label: int = 8, experiments: int = 10) -> tuple[float, float]:
    from semkit.apps import Classifier

    rng = np.random.RandomState(42)
    ya = np.asarray(train_y)
    accs = []
    for _ in range(experiments):
        order = rng.permutation(len(train_y))
        taken: dict[str, int] = {}
        rows = []
        for r in order:
            if taken.get(ya[r], 0) < per_label:
                taken[ya[r]] = taken.get(ya[r], 0) + 1
                rows.append(r)
        clf = Classifier(method, max_iter=100, k=5, seed=42).fit(train_v[rows], ya[rows].tolist())
        accs.append(np.mean(np.asarray(clf.predict(test_v)) == np.asarray(test_y)))
    return 100 * float(np.mean(accs)), 100 * float(np.std(accs))


def best_threshold(scores: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    """Best F1 over all thresholds (and its threshold), and best accuracy, like MTEB."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gold[order]
    tp = np.cumsum(g)
    fp = np.cumsum(1 - g)
    positives = g.sum()
    f1 = 2 * tp / (tp + fp + positives)
    acc = (tp + (len(g) - positives - fp)) / len(g)
    i = int(np.argmax(f1))
    thr = float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i])
    return 100 * float(f1[i]), thr, 100 * float(acc.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=["fp32", "int8"], default=None,
                        help="local model precision (default: semkit's default)")
    parser.add_argument("--skip-zero-shot", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import average_precision_score, v_measure_score

    from semkit import apps

    embed = Embedder(args.precision)
    print(f"model: {embed.fingerprint}")
    train_x, train_y, test_x, test_y, label_names = load_banking77()
    train_v = embed("banking77-train", train_x)
    test_v = embed("banking77-test", test_x)

    rows: list[tuple[str, str, str]] = []
    t = time.perf_counter()
    acc, sd = few_shot_mteb(train_v, train_y, test_v, test_y, "logistic")
    rows.append(("Banking77 few-shot 8/label, logistic (MTEB protocol)", f"{acc:.2f} ± {sd:.2f}",
                 f"published {PUBLISHED_BANKING77:.2f}, diff {acc - PUBLISHED_BANKING77:+.2f}"))
    acc, sd = few_shot_mteb(train_v, train_y, test_v, test_y, "knn")
    rows.append(("Banking77 few-shot 8/label, kNN (k=5)", f"{acc:.2f} ± {sd:.2f}", ""))
    full = apps.Classifier("logistic", max_iter=1000).fit(train_v, train_y)
    rows.append(("Banking77 supervised (10,003 texts), logistic",
                 f"{100 * np.mean(np.asarray(full.predict(test_v)) == np.asarray(test_y)):.2f}", ""))
    full_knn = apps.Classifier("knn", k=10).fit(train_v, train_y)
    rows.append(("Banking77 supervised (10,003 texts), kNN (k=10)",
                 f"{100 * np.mean(np.asarray(full_knn.predict(test_v)) == np.asarray(test_y)):.2f}", ""))
    if not args.skip_zero_shot:
        src = apps.from_matrix(test_v, embedder=embed.model)
        preds = apps.zero_shot(src, label_names, temperature=0.05)
        zs = 100 * np.mean(np.asarray([p.label for p in preds]) == np.asarray(test_y))
        rows.append(("Banking77 zero-shot from label names", f"{zs:.2f}", f"chance {100 / len(label_names):.2f}"))
    print(f"  classification: {time.perf_counter() - t:.0f}s", file=sys.stderr)

    s1, s2, gold = load_mrpc()
    sentences = list(dict.fromkeys(s1 + s2))
    sent_v = embed("mrpc-test-sentences", sentences)
    row_of = {s: i for i, s in enumerate(sentences)}
    a = sent_v[[row_of[s] for s in s1]]
    b = sent_v[[row_of[s] for s in s2]]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    ap = 100 * average_precision_score(gold, cos)
    f1, thr, best_acc = best_threshold(cos, gold)
    rows.append(("MRPC test cosine AP", f"{ap:.2f}", ""))
    rows.append(("MRPC test best-threshold F1 (pairs scored directly)", f"{f1:.2f}",
                 f"threshold {thr:.3f}; always-paraphrase F1 {ALWAYS_PARAPHRASE_F1}"))
    rows.append(("MRPC test best-threshold accuracy", f"{best_acc:.2f}", "always-paraphrase 66.49"))
    ids = [str(i) for i in range(len(sentences))]
    report = apps.duplicates(apps.from_matrix(sent_v, ids, sentences), threshold=thr, k=10)
    group_of = {m: gi for gi, g in enumerate(report.groups) for m in g.ids}
    found = np.asarray([
        group_of.get(str(row_of[x]), -1) == group_of.get(str(row_of[y]), -2) for x, y in zip(s1, s2, strict=True)
    ])
    tp = int((found & (gold == 1)).sum())
    fp = int((found & (gold == 0)).sum())
    app_f1 = 100 * 2 * tp / (2 * tp + fp + int(gold.sum()) - tp)
    rows.append(("MRPC apps.duplicates(threshold above, k=10) pair F1", f"{app_f1:.2f}",
                 f"{len(report.groups)} groups over {len(sentences)} sentences"))

    truth = np.asarray(test_y)
    t = time.perf_counter()
    km = apps.cluster(apps.from_matrix(test_v, texts=test_x), method="kmeans", k=77, keywords=5)
    rows.append(("Banking77 test clustering V-measure, k-means k=77", f"{100 * v_measure_score(truth, km.labels):.2f}",
                 f"{time.perf_counter() - t:.1f}s"))
    for mcs in (None, 10, 20, 40):
        t = time.perf_counter()
        hd = apps.cluster(apps.from_matrix(test_v, texts=test_x), method="hdbscan", min_cluster_size=mcs, keywords=5)
        clustered = hd.labels >= 0
        rows.append((
            f"Banking77 test V-measure, HDBSCAN min_cluster_size={hd.params['min_cluster_size']}",
            f"{100 * v_measure_score(truth, hd.labels):.2f}",
            f"{hd.k} clusters, noise {100 * (~clustered).mean():.0f}%, V on clustered "
            f"{100 * v_measure_score(truth[clustered], hd.labels[clustered]):.2f}, {time.perf_counter() - t:.1f}s",
        ))
    example = km.clusters[0]
    print(f"\nexample k-means cluster: size {example.size}, keywords {example.keywords}, "
          f"representative {example.representative_texts[0]!r}")

    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>14}  notes")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    main()
