"""The apps with the real local model on small samples of public data (Banking77, MRPC)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import semkit
from semkit import apps
from semkit.apps import _cluster_map as cluster_map
from tests.support.shared_data import DATA, have

LABELS = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "pin_blocked", "top_up_limits",
          "age_limit", "cancel_transfer", "apple_pay_or_google_pay", "terminate_account", "atm_support"]

pytestmark = pytest.mark.skipif(not have("banking77"), reason=f"shared data not found at {DATA}")


@pytest.fixture(scope="module")
def model():
    return semkit.model("local", cache=False)


def _banking(split: str, per_label: int) -> tuple[list[str], list[str]]:
    taken: dict[str, int] = {}
    texts, labels = [], []
    with open(DATA / "banking77" / f"{split}.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            label = row["category"]
            if label in LABELS and taken.get(label, 0) < per_label:
                taken[label] = taken.get(label, 0) + 1
                texts.append(row["text"].strip())
                labels.append(label)
    return texts, labels


def test_few_shot_and_zero_shot_on_banking77(model, tmp_path) -> None:
    train_x, train_y = _banking("train", 8)
    test_x, test_y = _banking("test", 12)  # 80 + 120 = 200 texts, 10 labels: chance is 10%
    clf = apps.train(items=train_x, labels=train_y, embedder=model)
    accuracy = np.mean(np.asarray(clf.predict(test_x)) == np.asarray(test_y))
    assert accuracy > 0.75, accuracy
    loaded = apps.Classifier.load(clf.save(tmp_path / "clf"), embedder=model)
    assert loaded.predict(test_x[:20]) == clf.predict(test_x[:20])
    zero = apps.zero_shot(test_x, LABELS, embedder=model)
    zero_accuracy = np.mean(np.asarray([p.label for p in zero]) == np.asarray(test_y))
    assert zero_accuracy > 0.4, zero_accuracy


def test_mrpc_cosine_ranks_paraphrases_first(model) -> None:
    from sklearn.metrics import average_precision_score

    s1, s2, gold = [], [], []
    with open(DATA / "mrpc" / "msr_paraphrase_test.txt", encoding="utf-8-sig") as fh:
        for i, line in enumerate(fh):
            if 0 < i <= 400:
                parts = line.rstrip("\n").split("\t")
                gold.append(int(parts[0]))
                s1.append(parts[3])
                s2.append(parts[4])
    a, b = model.embed(s1), model.embed(s2)
    assert average_precision_score(gold, (a * b).sum(1)) > 0.8


def test_apps_over_a_real_collection(model, tmp_path) -> None:
    texts, labels = _banking("test", 20)
    texts += [texts[0].upper() + "!!", "What is the weather like on Mars?"]
    labels += [labels[0], "other"]
    db = semkit.connect(str(tmp_path / "kb"))
    docs = db.collection("banking", model=model)
    ids = [f"t{i}" for i in range(len(texts))]
    docs.upsert(ids=ids, texts=texts, metadata=[{"label": y} for y in labels])

    dups = apps.duplicates(docs, threshold=0.95, k=5)
    pair = {ids[0], ids[-2]}
    assert any(pair <= set(g.ids) for g in dups.groups)

    recs = apps.recommend(docs, liked=[ids[0]], k=5, where={"label": labels[0]})
    assert all(r.metadata["label"] == labels[0] for r in recs) and ids[0] not in {r.id for r in recs}

    from sklearn.metrics import v_measure_score

    report = apps.cluster(docs, k=10)
    by_id = dict(zip(ids, labels, strict=True))
    assert v_measure_score([by_id[i] for i in report.ids], report.labels) > 0.6
    page = cluster_map.write_cluster_map(report, tmp_path / "map.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page

    top = apps.outliers(docs, k=5, top=3)
    assert "What is the weather like on Mars?" in {o.text for o in top}
    db.close()
