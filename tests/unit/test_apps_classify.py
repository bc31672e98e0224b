"""Classification: trained classifiers (logistic, kNN), save/load without pickle, zero-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import semkit
from semkit import apps
from semkit.errors import DimensionMismatch, InvalidInput, ModelMismatch
from tests.support.hash_embedder import HashEmbedder

D = 20


def _labelled(n_per: int = 30, n_labels: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.vstack([np.eye(D)[i] * 2 + 0.6 * rng.normal(size=(n_per, D)) for i in range(n_labels)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = [f"label_{i}" for i in range(n_labels) for _ in range(n_per)]
    return x, y


@pytest.mark.parametrize("method", ["logistic", "knn"])
def test_classifier_learns_planted_labels(method: str) -> None:
    x, y = _labelled()
    xt, yt = _labelled(seed=1)
    clf = apps.Classifier(method, embedder="test:model@20").fit(x, y)
    assert clf.labels == ["label_0", "label_1", "label_2"]
    assert np.mean(np.asarray(clf.predict(xt)) == np.asarray(yt)) > 0.95
    probs = clf.predict_proba(xt)
    assert probs.shape == (len(xt), 3) and np.allclose(probs.sum(1), 1.0)
    preds = clf.classify(xt[:2], top=2)
    assert preds[0].label == clf.predict(xt[:1])[0] and len(preds[0].probabilities) == 2


@pytest.mark.parametrize("n_labels", [2, 4])
def test_logistic_probabilities_equal_scikit_learn(n_labels: int) -> None:
    x, y = _labelled(n_labels=n_labels)
    ours = apps.Classifier("logistic", C=0.5, max_iter=200).fit(x, y)
    ref = LogisticRegression(C=0.5, max_iter=200, random_state=42).fit(x, y)
    xt, _ = _labelled(n_labels=n_labels, seed=2)
    assert list(ref.classes_) == ours.labels
    np.testing.assert_allclose(ours.predict_proba(xt), ref.predict_proba(xt), atol=1e-6)


@pytest.mark.parametrize("method", ["logistic", "knn"])
def test_save_load_round_trip_is_json_and_npy(tmp_path, method: str) -> None:
    x, y = _labelled()
    clf = apps.Classifier(method, embedder="test:model@20", k=7).fit(x, y)
    path = clf.save(tmp_path / "clf")
    files = sorted(p.name for p in path.iterdir())
    assert "classifier.json" in files and all(f.endswith((".json", ".npy")) for f in files)
    meta = json.loads((path / "classifier.json").read_text())
    assert meta["embedder"] == "test:model@20" and meta["labels"] == clf.labels
    for f in files:
        if f.endswith(".npy"):
            np.load(path / f, allow_pickle=False)  # plain arrays, no objects
    loaded = apps.Classifier.load(path, embedder="test:model@20")
    assert loaded.method == method and loaded.k == 7
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x))
    clf.save(path)  # overwriting an existing save replaces it whole
    assert apps.Classifier.load(path).labels == clf.labels


def test_loading_for_another_model_is_a_model_mismatch(tmp_path) -> None:
    x, y = _labelled()
    path = apps.Classifier(embedder="test:model@20").fit(x, y).save(tmp_path / "clf")
    with pytest.raises(ModelMismatch, match="test:model@20"):
        apps.Classifier.load(path, embedder="local:all-MiniLM-L6-v2@384")
    with pytest.raises(ModelMismatch):
        apps.Classifier.load(path, embedder=HashEmbedder(20, name="other"))
    with pytest.raises(InvalidInput, match="not a saved classifier"):
        apps.Classifier.load(tmp_path)
    loaded = apps.Classifier.load(path)
    with pytest.raises(DimensionMismatch):
        loaded.predict(np.ones((1, D + 1), dtype=np.float32))
    with pytest.raises(InvalidInput, match="no embedding model"):
        loaded.predict(["a text"])


def test_classifying_a_collection_of_another_model_is_refused() -> None:
    emb = HashEmbedder(32)
    db = semkit.connect("memory://")
    col = db.collection("docs", model=emb)
    col.upsert(ids=["a", "b"], texts=["fresh fruit", "fast car"])
    clf = apps.train({"fruit": ["apple fruit", "banana fruit"], "car": ["red car", "car engine"]}, embedder=emb)
    assert [p.label for p in clf.classify(col)] == ["fruit", "car"]
    assert [p.id for p in clf.classify(col)] == ["a", "b"]
    other = apps.Classifier(embedder="test:hash@32-other").fit(*_labelled_32())
    with pytest.raises(ModelMismatch):
        other.classify(col)


def _labelled_32():
    x, y = _labelled()
    return np.hstack([x, np.zeros((len(x), 12), np.float32)]), y


def test_zero_shot_embeds_labels_as_queries_and_items_as_documents() -> None:
    emb = HashEmbedder(64)
    preds = apps.zero_shot(["I ate some fruit", "my car broke down", "the card arrival is late"],
                           ["fruit", "car", "card_arrival"], embedder=emb)
    assert [p.label for p in preds] == ["fruit", "car", "card_arrival"]
    assert all(abs(sum(p.probabilities.values()) - 1) < 1e-5 for p in preds)
    kinds = {kind: texts for kind, texts in emb.calls}
    assert kinds["query"] == ["fruit", "car", "card arrival"]  # underscores become spaces
    described = apps.zero_shot(["bananas and apples"], {"f": "fruit bananas", "c": "car engine"}, embedder=emb)
    assert described[0].label == "f"
    sharper = apps.zero_shot(["I ate some fruit"], ["fruit", "car"], embedder=emb, temperature=0.01)
    assert sharper[0].score > preds[0].score


def test_zero_shot_over_a_collection_uses_its_model() -> None:
    emb = HashEmbedder(64)
    db = semkit.connect("memory://")
    col = db.collection("docs", model=emb)
    col.upsert(ids=["x", "y"], texts=["a fruit basket", "a car park"])
    preds = apps.zero_shot(col, ["fruit", "car"])
    assert [(p.id, p.label) for p in preds] == [("x", "fruit"), ("y", "car")]
    with pytest.raises(ModelMismatch):
        apps.zero_shot(col, ["fruit", "car"], embedder=HashEmbedder(64, name="other"))


def test_bad_input_is_a_clear_error() -> None:
    x, y = _labelled()
    with pytest.raises(InvalidInput, match="method"):
        apps.Classifier("svm")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="one label per example"):
        apps.Classifier().fit(x, y[:-1])
    with pytest.raises(InvalidInput, match="two labels"):
        apps.Classifier().fit(x[:3], ["a", "a", "a"])
    with pytest.raises(InvalidInput, match="not trained"):
        apps.Classifier().predict(x)
    with pytest.raises(InvalidInput, match="two labels"):
        apps.zero_shot(["text"], ["only"], embedder=HashEmbedder(8))
    with pytest.raises(InvalidInput, match="temperature"):
        apps.zero_shot(["text"], ["a", "b"], embedder=HashEmbedder(8), temperature=0)
    with pytest.raises(InvalidInput, match="embedder="):
        apps.zero_shot(x, ["a", "b"])  # bare vectors: no model to embed the labels with
