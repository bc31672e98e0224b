"""Classification on embeddings: zero-shot from label names, few-shot/supervised from examples.

- ``zero_shot``: each label (its name with ``_`` as spaces, or a description you give) is
  embedded as a *query*, the items as documents; the class probabilities are a softmax over
  cosine similarity / ``temperature``.
- ``Classifier``: logistic regression (scikit-learn ``LogisticRegression`` to fit; prediction
  is plain NumPy) or a cosine k-nearest-neighbour vote over the training examples. ``save``
  writes a folder of JSON + ``.npy`` arrays (never pickle; loaded with ``allow_pickle=False``)
  that records the embedder id: loading it for vectors of another model is a ``ModelMismatch``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DimensionMismatch, InvalidInput, MissingDependency, ModelMismatch
from ..vectors import as_matrix, normalize
from ._knn import check_k
from ._source import Source, as_source, check_same_model

ClassifierMethod = Literal["logistic", "knn"]
FORMAT = "semkit-classifier"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    """Probability of ``label``."""
    probabilities: Mapping[str, float] = field(default_factory=dict)
    id: str | None = None


# --- zero-shot -----------------------------------------------------------------------------


def label_text(label: str) -> str:
    """``card_arrival`` -> ``card arrival``: what a label name says, as text to embed."""
    return " ".join(label.replace("_", " ").replace("-", " ").split())


def zero_shot(
    items: Any,
    labels: Sequence[str] | Mapping[str, str],
    *,
    embedder: Any = None,
    temperature: float = 0.05,
    top: int | None = None,
) -> list[Prediction]:
    """Classify items into ``labels`` with no training examples.

    ``items``: texts (embedded with ``embedder``, default the local model), or a collection /
    matrix source (its vectors; the labels are embedded with its model or ``embedder``).
    ``labels``: names, or a mapping ``label -> description`` (the description is embedded).
    ``top`` keeps only the most probable labels in each ``probabilities`` mapping.
    """
    if temperature <= 0:
        raise InvalidInput(f"temperature must be > 0, got {temperature!r}")
    names, descriptions = _label_texts(labels)
    vectors, ids, model = _items_and_model(items, embedder)
    label_vecs = normalize(model.embed(descriptions, "query"))
    if label_vecs.shape[1] != vectors.shape[1]:
        raise DimensionMismatch(vectors.shape[1], label_vecs.shape[1], "the label embeddings")
    probs = _softmax((vectors @ label_vecs.T) / temperature)
    return _predictions(probs, names, ids, top)


def _label_texts(labels: Sequence[str] | Mapping[str, str]) -> tuple[list[str], list[str]]:
    if isinstance(labels, Mapping):
        names = [str(k) for k in labels]
        texts = [str(v) if str(v).strip() else label_text(k) for k, v in labels.items()]
    elif isinstance(labels, str):
        raise InvalidInput("labels must be a list of names (or a mapping label -> description), not one string")
    else:
        names = [str(x) for x in labels]
        texts = [label_text(x) for x in names]
    if len(names) < 2:
        raise InvalidInput("give at least two labels to choose between")
    if len(set(names)) != len(names):
        raise InvalidInput("labels must be distinct")
    if not all(t.strip() for t in texts):
        raise InvalidInput("every label needs a non-empty name or description")
    return names, texts


def _items_and_model(items: Any, embedder: Any) -> tuple[np.ndarray, list[str] | None, Any]:
    if _is_texts(items):
        model = _embedder(embedder)
        return normalize(model.embed(list(items), "document")), None, model
    src = as_source(items)
    model = embedder if embedder is not None else src.embedder_model()
    if model is None or isinstance(model, str):
        raise InvalidInput(
            "zero-shot needs the model that made these vectors to embed the labels: pass "
            "embedder=semkit.model(...)"
        )
    check_same_model(src.embedder, getattr(model, "id", None), "these items")
    return src.vectors, src.ids, model


def _is_texts(items: Any) -> bool:
    return isinstance(items, str) or (
        isinstance(items, Sequence) and not isinstance(items, tuple) and len(items) > 0
        and all(isinstance(x, str) for x in items)
    )


def _embedder(embedder: Any) -> Any:
    if embedder is None or isinstance(embedder, str):
        from ..models.build import build_model

        return build_model(embedder or "local")
    return embedder


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _predictions(probs: np.ndarray, names: list[str], ids: list[str] | None, top: int | None) -> list[Prediction]:
    out = []
    keep = len(names) if top is None else min(check_k(top, "top"), len(names))
    for i, row in enumerate(probs):
        order = np.argsort(-row, kind="stable")[:keep]
        best = int(order[0])
        out.append(Prediction(
            label=names[best], score=round(float(row[best]), 6),
            probabilities={names[j]: round(float(row[j]), 6) for j in order.tolist()},
            id=None if ids is None else ids[i],
        ))
    return out


# --- trained classifiers -------------------------------------------------------------------


class Classifier:
    """A classifier over embeddings of one model.

    ``fit`` takes texts (embedded with ``embedder``) or vectors, and string labels.
    ``method="logistic"``: multinomial logistic regression (``C``, ``max_iter``);
    ``method="knn"``: similarity-weighted vote of the ``k`` most similar training examples.
    """

    def __init__(self, method: ClassifierMethod = "logistic", *, embedder: Any = None, k: int = 10,
                 C: float = 1.0, max_iter: int = 1000, seed: int = 42) -> None:
        if method not in ("logistic", "knn"):
            raise InvalidInput(f"method must be 'logistic' or 'knn', got {method!r}")
        self.method: ClassifierMethod = method
        self.k = check_k(k)
        self.C = float(C)
        self.max_iter = check_k(max_iter, "max_iter")
        self.seed = seed
        self._model = None if embedder is None or isinstance(embedder, str) else embedder
        self.embedder_id: str | None = embedder if isinstance(embedder, str) else getattr(embedder, "id", None)
        self.labels: list[str] = []
        self.dimensions: int | None = None
        self._arrays: dict[str, np.ndarray] = {}

    @property
    def fitted(self) -> bool:
        return bool(self._arrays)

    # training

    def fit(self, items: Any, labels: Sequence[str]) -> Classifier:
        x, _ = self._vectors(items, training=True)
        y = [str(label) for label in labels]
        if len(y) != len(x):
            raise InvalidInput(f"{len(x)} examples but {len(y)} labels; give one label per example")
        classes = sorted(set(y))
        if len(classes) < 2:
            raise InvalidInput("training needs examples of at least two labels")
        target = np.searchsorted(np.asarray(classes), np.asarray(y)).astype(np.int64)
        self.labels = classes
        self.dimensions = int(x.shape[1])
        if self.method == "logistic":
            try:
                from sklearn.linear_model import LogisticRegression
            except ImportError:
                raise MissingDependency("scikit-learn", "apps", "training a classifier") from None
            lr = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
            lr.fit(x, target)
            self._arrays = {"coef": lr.coef_.astype(np.float64), "intercept": lr.intercept_.astype(np.float64)}
        else:
            self._arrays = {"vectors": x.astype(np.float32), "targets": target}
        return self

    # prediction

    def predict_proba(self, items: Any) -> np.ndarray:
        """(n, len(labels)) probabilities, columns in the order of ``labels``."""
        self._check_fitted()
        x, _ = self._vectors(items)
        return self._proba(x)

    def predict(self, items: Any) -> list[str]:
        probs = self.predict_proba(items)
        return [self.labels[i] for i in probs.argmax(axis=1).tolist()]

    def classify(self, items: Any, top: int | None = None) -> list[Prediction]:
        """Predictions with probabilities (and ids, for a collection or matrix source)."""
        self._check_fitted()
        x, ids = self._vectors(items)
        return _predictions(self._proba(x), self.labels, ids, top)

    def _proba(self, x: np.ndarray) -> np.ndarray:
        if self.method == "logistic":
            z = x.astype(np.float64) @ self._arrays["coef"].T + self._arrays["intercept"]
            if z.shape[1] == 1:  # binary: scikit-learn keeps one row of weights for class 1
                p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
                return np.column_stack([1.0 - p1, p1])
            return _softmax(z)
        train, target = self._arrays["vectors"], self._arrays["targets"]
        k = min(self.k, len(train))
        probs = np.zeros((len(x), len(self.labels)))
        for s in range(0, len(x), 1024):
            sims = x[s:s + 1024] @ train.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            w = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None) + 1e-6
            rows = np.repeat(np.arange(len(top)), k)
            np.add.at(probs[s:s + 1024], (rows, target[top].ravel()), w.ravel())
        return probs / probs.sum(axis=1, keepdims=True)

    def _vectors(self, items: Any, training: bool = False) -> tuple[np.ndarray, list[str] | None]:
        if _is_texts(items):
            if self._model is None:
                if not training or self.embedder_id is not None:
                    raise InvalidInput(
                        "this classifier has no embedding model to embed texts with; pass vectors, "
                        "or give embedder=semkit.model(...) when creating or loading it"
                    )
                self._model = _embedder(None)
                self.embedder_id = self._model.id
            x = normalize(self._model.embed(list(items), "document"))
            ids = None
        elif isinstance(items, (Source, tuple)) or _looks_like_collection(items):
            src = as_source(items)
            check_same_model(self.embedder_id, src.embedder, "this classifier")
            if training and self.embedder_id is None:
                self.embedder_id = src.embedder
            x, ids = src.vectors, src.ids
        else:
            x = normalize(as_matrix(items))
            if len(x) == 0:
                raise InvalidInput("no items given")
            ids = None
        if self.dimensions is not None and x.shape[1] != self.dimensions:
            raise DimensionMismatch(self.dimensions, x.shape[1], "this classifier")
        return x, ids

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise InvalidInput("the classifier is not trained yet: call fit(examples, labels) or Classifier.load(path)")

    # persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path/classifier.json`` and one ``.npy`` per array; replaces ``path`` whole."""
        self._check_fitted()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, arr in self._arrays.items():
                np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
            meta = {
                "format": FORMAT, "version": FORMAT_VERSION, "method": self.method,
                "embedder": self.embedder_id, "dimensions": self.dimensions, "labels": self.labels,
                "params": {"k": self.k, "C": self.C, "max_iter": self.max_iter, "seed": self.seed},
                "arrays": sorted(self._arrays),
            }
            (tmp / "classifier.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], embedder: Any = None) -> Classifier:
        """Load a saved classifier. ``embedder`` (object or id) must be the model it was trained
        for; another model raises ``ModelMismatch``."""
        folder = Path(path)
        meta_path = folder / "classifier.json"
        if not meta_path.is_file():
            raise InvalidInput(
                f"{folder} is not a saved classifier (no classifier.json); save one with Classifier.save"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise InvalidInput(f"{folder}: unknown classifier format {meta.get('format')!r} v{meta.get('version')!r}")
        given = embedder if isinstance(embedder, str) or embedder is None else getattr(embedder, "id", None)
        if given is not None and meta["embedder"] is not None and given != meta["embedder"]:
            raise ModelMismatch(
                f"the classifier at {folder} was trained on vectors of {meta['embedder']!r}, not {given!r}; "
                f"load it with that model, or retrain it on {given!r} embeddings"
            )
        params = meta.get("params", {})
        clf = cls(meta["method"], embedder=embedder if embedder is not None else meta["embedder"],
                  k=params.get("k", 10), C=params.get("C", 1.0), max_iter=params.get("max_iter", 1000),
                  seed=params.get("seed", 42))
        clf.embedder_id = meta["embedder"]
        clf.labels = list(meta["labels"])
        clf.dimensions = meta["dimensions"]
        clf._arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in meta["arrays"]}
        return clf

    def __repr__(self) -> str:
        state = f"{len(self.labels)} labels" if self.fitted else "not fitted"
        return f"<Classifier {self.method} {state} embedder={self.embedder_id!r}>"


def _looks_like_collection(obj: Any) -> bool:
    return hasattr(obj, "store") and hasattr(obj, "name")


def train(
    examples: Mapping[str, Sequence[str]] | None = None,
    *,
    items: Any = None,
    labels: Sequence[str] | None = None,
    method: ClassifierMethod = "logistic",
    embedder: Any = None,
    **options: Any,
) -> Classifier:
    """Few-shot or supervised training: ``examples={"label": ["text", ...], ...}``, or
    ``items`` (texts or vectors) with aligned ``labels``."""
    if examples is not None:
        if items is not None or labels is not None:
            raise InvalidInput("give either examples={label: [texts]} or items= with labels=, not both")
        items = [t for texts in examples.values() for t in texts]
        labels = [label for label, texts in examples.items() for _ in texts]
    if items is None or labels is None:
        raise InvalidInput("train needs examples={label: [texts]} or items= and labels=")
    return Classifier(method, embedder=embedder, **options).fit(items, labels)


__all__ = ["Classifier", "Prediction", "label_text", "train", "zero_shot"]
