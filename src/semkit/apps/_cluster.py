"""Clustering with keyword labels: k-means or HDBSCAN, c-TF-IDF keywords, a 2-D map.

- ``kmeans``: scikit-learn ``KMeans`` (``MiniBatchKMeans`` above ``MINIBATCH_ABOVE`` items) on
  the unit vectors. Without ``k``, k is chosen by the silhouette (cosine) on a sample.
- ``hdbscan``: scikit-learn ``HDBSCAN`` on a reduced space (UMAP to 5 dimensions if
  ``umap-learn`` is installed, else PCA to ``dims``, default 50), because density estimates
  degrade and get slow in 384 dimensions. Measured on Banking77 (benchmarks/apps_quality.py):
  PCA to 5-10 dimensions makes HDBSCAN unstable (the whole set collapses into 2-3 clusters for
  some sizes), 50 is stable; ``min_samples`` below ``min_cluster_size`` (a third) keeps fewer
  items as noise. Items in no dense region get label -1 (noise), reported as such.
  HDBSCAN's minimum spanning tree costs O(n²) distance evaluations, so above ``max_fit``
  (20k) items it is fitted on a random sample and every other item takes the label of its
  nearest sampled item in the reduced space (noise if that one is noise). On Banking77
  train+test (13k), fitting 4k that way gave V-measure 68.1 in 4 s against 64.2 in 34 s for
  the full fit (fewer items end as noise).
- Keywords: class-based TF-IDF as in BERTopic (Grootendorst, 2022): the texts of a cluster are
  one document; weight(t, c) = tf(t, c) / |c| · log(1 + A / f(t)), with A the mean number of
  words per cluster and f(t) the frequency of t over all clusters (unigrams and bigrams,
  English stop words removed).
- Representatives: the members closest to the cluster's (normalised) centroid.
- Map: 2-D coordinates by PCA, or UMAP when installed and asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import InvalidInput, MissingDependency
from ._knn import check_k
from ._source import as_source

Method = Literal["kmeans", "hdbscan"]
Projection = Literal["auto", "pca", "umap"]

MINIBATCH_ABOVE = 20_000
SILHOUETTE_SAMPLE = 3_000
K_CANDIDATES = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100)
NOISE = -1


@dataclass(frozen=True)
class Cluster:
    id: int
    size: int
    keywords: list[str]
    keyword_scores: list[float]
    representatives: list[str]
    """Ids of the members closest to the centroid, closest first."""
    representative_texts: list[str | None]
    cohesion: float
    """Mean cosine similarity of the members to their centroid."""

    @property
    def label(self) -> str:
        return ", ".join(self.keywords[:3]) if self.keywords else f"cluster {self.id}"


@dataclass
class ClusterReport:
    method: str
    ids: list[str]
    labels: np.ndarray
    """Cluster id of each item, aligned with ``ids``; -1 is noise (HDBSCAN only)."""
    clusters: list[Cluster]
    """Largest first; noise is not a cluster."""
    coords: np.ndarray
    """(n, 2) map coordinates."""
    texts: list[str | None] = field(repr=False, default_factory=list)
    noise: int = 0
    silhouette: float | None = None
    """Cosine silhouette on a sample (k-means with k chosen automatically)."""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.clusters)

    def assignments(self) -> dict[str, int]:
        return dict(zip(self.ids, self.labels.tolist(), strict=True))

    def cluster(self, cluster_id: int) -> Cluster:
        for c in self.clusters:
            if c.id == cluster_id:
                return c
        raise InvalidInput(f"no cluster {cluster_id}; ids are {[c.id for c in self.clusters][:20]}")

    def members(self, cluster_id: int) -> list[str]:
        return [self.ids[i] for i in np.flatnonzero(self.labels == cluster_id)]

    def to_dict(self, items: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method, "k": self.k, "noise": self.noise, "silhouette": self.silhouette,
            "params": self.params,
            "clusters": [{**c.__dict__, "label": c.label} for c in self.clusters],
        }
        if items:
            out["items"] = [
                {"id": i, "cluster": int(label), "x": float(x), "y": float(y)}
                for i, label, (x, y) in zip(self.ids, self.labels, self.coords, strict=True)
            ]
        return out


def cluster(
    source: Any,
    method: Method = "kmeans",
    k: int | None = None,
    *,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    dims: int = 50,
    max_fit: int = 20_000,
    keywords: int = 8,
    representatives: int = 3,
    projection: Projection = "auto",
    seed: int = 0,
    stop_words: str | list[str] | None = "english",
) -> ClusterReport:
    """Cluster the items and describe every cluster (see the module docstring).

    ``k`` (k-means only): number of clusters, chosen by silhouette when ``None``.
    ``min_cluster_size`` (HDBSCAN only): smallest group worth calling a cluster; default
    ``max(5, n // 1000)``; ``min_samples`` (how conservative the density estimate is) defaults
    to a third of it. ``dims``: PCA dimensions HDBSCAN clusters in.
    """
    if method not in ("kmeans", "hdbscan"):
        raise InvalidInput(f"method must be 'kmeans' or 'hdbscan', got {method!r}")
    if k is not None:
        k = check_k(k)
        if method == "hdbscan":
            raise InvalidInput("HDBSCAN finds the number of clusters itself; drop k or use method='kmeans'")
    _sklearn()
    src = as_source(source)
    n = len(src)
    rng = np.random.default_rng(seed)
    sil: float | None = None
    params: dict[str, Any] = {"seed": seed}
    if method == "kmeans":
        if n < 2:
            raise InvalidInput("k-means needs at least 2 items")
        if k is None:
            k, sil = _choose_k(src.vectors, rng, seed)
            params["k_chosen_by"] = "silhouette"
        if k > n:
            raise InvalidInput(f"k={k} is more than the {n} items; choose k <= {n}")
        labels = _kmeans(src.vectors, k, seed)
        params["k"] = k
    else:
        mcs = max(5, n // 1000) if min_cluster_size is None else check_k(min_cluster_size, "min_cluster_size")
        if n < max(mcs, 2):
            raise InvalidInput(f"HDBSCAN needs at least min_cluster_size={mcs} items, got {n}")
        ms = max(2, mcs // 3) if min_samples is None else check_k(min_samples, "min_samples")
        labels, reducer = _hdbscan(src.vectors, mcs, ms, dims, max_fit, rng, seed)
        params.update(min_cluster_size=mcs, min_samples=ms, reduced_with=reducer, fitted_on=min(n, max_fit))
    labels = _relabel_by_size(labels)
    cluster_ids = [c for c in np.unique(labels).tolist() if c != NOISE]
    kw = _ctfidf(src.texts, labels, cluster_ids, keywords, stop_words)
    reps, cohesion = _representatives(src.vectors, labels, cluster_ids, representatives)
    clusters = [
        Cluster(
            id=c, size=int((labels == c).sum()), keywords=[w for w, _ in kw.get(c, [])],
            keyword_scores=[round(s, 5) for _, s in kw.get(c, [])],
            representatives=[src.ids[r] for r in reps[c]],
            representative_texts=[src.texts[r] for r in reps[c]], cohesion=round(cohesion[c], 5),
        )
        for c in cluster_ids
    ]
    coords, proj = project_2d(src.vectors, projection, seed)
    params["projection"] = proj
    return ClusterReport(
        method=method, ids=list(src.ids), labels=labels, clusters=clusters, coords=coords,
        texts=list(src.texts), noise=int((labels == NOISE).sum()), silhouette=sil, params=params,
    )


# --- algorithms ----------------------------------------------------------------------------


def _sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise MissingDependency("scikit-learn", "apps", "clustering") from None


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(x) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(n_clusters=k, batch_size=2048, n_init=3, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init="auto", random_state=seed)
    return model.fit_predict(x).astype(np.int64)


def _choose_k(x: np.ndarray, rng: np.random.Generator, seed: int) -> tuple[int, float]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    sample = x[rng.choice(len(x), SILHOUETTE_SAMPLE, replace=False)] if len(x) > SILHOUETTE_SAMPLE else x
    best_k, best = 2, -2.0
    for k in K_CANDIDATES:
        if k >= len(sample) or k > len(sample) // 5:
            break
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(sample)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(sample, labels, metric="cosine"))
        if score > best:
            best_k, best = k, score
    if best == -2.0:
        raise InvalidInput(f"too few items ({len(x)}) to choose k; pass k explicitly")
    return best_k, round(best, 5)


def _reduce(x: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, str]:
    dims = max(2, min(dims, x.shape[1], len(x) - 1))
    try:
        import umap  # type: ignore[import-not-found]
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(n_components=dims, random_state=seed).fit_transform(x).astype(np.float32), f"pca{dims}"
    reducer = umap.UMAP(n_components=min(dims, 5), metric="cosine", random_state=seed)
    return reducer.fit_transform(x).astype(np.float32), f"umap{min(dims, 5)}"


def _hdbscan(x: np.ndarray, min_cluster_size: int, min_samples: int, dims: int, max_fit: int,
             rng: np.random.Generator, seed: int) -> tuple[np.ndarray, str]:
    from sklearn.cluster import HDBSCAN

    reduced, how = _reduce(x, dims, seed)
    n = len(x)
    if n <= max_fit:
        model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
        return model.fit_predict(reduced).astype(np.int64), how
    fit_rows = np.sort(rng.choice(n, max_fit, replace=False))
    # the sample holds max_fit/n of the items, so a cluster of min_cluster_size items overall
    # shows up with proportionally fewer members in it (and so do density neighbourhoods)
    mcs = max(5, round(min_cluster_size * max_fit / n))
    ms = max(2, min(round(min_samples * max_fit / n), mcs))
    model = HDBSCAN(min_cluster_size=mcs, min_samples=ms, copy=True)
    fit_labels = model.fit_predict(reduced[fit_rows]).astype(np.int64)
    from ._knn import MatrixIndex

    nearest, _ = MatrixIndex(_as_l2_index(reduced[fit_rows]), exact=True).search(_as_l2_query(reduced), 1)
    labels = fit_labels[nearest[:, 0]]
    labels[fit_rows] = fit_labels
    return labels, how + f"+hdbscan-sample{max_fit}"


def _as_l2_index(x: np.ndarray) -> np.ndarray:
    # nearest by Euclidean distance through an inner-product index: [x, -|x|²/2] · [q, 1]
    return np.hstack([x, -0.5 * (x * x).sum(1, keepdims=True)]).astype(np.float32)


def _as_l2_query(q: np.ndarray) -> np.ndarray:
    return np.hstack([q, np.ones((len(q), 1), dtype=np.float32)]).astype(np.float32)


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster 0 is the biggest, 1 the next...; noise stays -1."""
    ids, counts = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    mapping = np.full(int(labels.max(initial=0)) + 2, NOISE, dtype=np.int64)
    mapping[order] = np.arange(len(order))
    out = np.full_like(labels, NOISE)
    mask = labels != NOISE
    out[mask] = mapping[labels[mask]]
    return out


def ctfidf(texts: list[str | None], labels: np.ndarray, top: int = 8,
           stop_words: str | list[str] | None = "english") -> dict[int, list[tuple[str, float]]]:
    """Top c-TF-IDF terms of every label (noise included as its own class for the statistics)."""
    ids = [c for c in np.unique(labels).tolist() if c != NOISE]
    return _ctfidf(texts, labels, ids, top, stop_words)


def _ctfidf(texts: list[str | None], labels: np.ndarray, cluster_ids: list[int], top: int,
            stop_words: str | list[str] | None) -> dict[int, list[tuple[str, float]]]:
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [t or "" for t in texts]
    if top <= 0 or not any(docs):
        return {}
    classes, inverse = np.unique(labels, return_inverse=True)
    vectorizer = CountVectorizer(stop_words=stop_words, ngram_range=(1, 2),
                                 min_df=2 if len(docs) >= 1000 else 1)
    try:
        counts = vectorizer.fit_transform(docs)
    except ValueError:  # nothing but stop words / empty texts
        return {}
    onehot = sparse.csr_matrix((np.ones(len(docs)), (inverse, np.arange(len(docs)))),
                               shape=(len(classes), len(docs)))
    per_class = (onehot @ counts).tocsr().astype(np.float64)  # the "one document per cluster"
    freq = np.asarray(per_class.sum(axis=0)).ravel()
    avg_words = float(per_class.sum(axis=1).mean())
    idf = np.log(1.0 + avg_words / np.maximum(freq, 1.0))
    words_per_class = np.asarray(per_class.sum(axis=1)).ravel()
    vocab = vectorizer.get_feature_names_out()
    out: dict[int, list[tuple[str, float]]] = {}
    for row, c in enumerate(classes.tolist()):
        if c not in cluster_ids or words_per_class[row] == 0:
            continue
        line = per_class.getrow(row)
        weights = line.data / words_per_class[row] * idf[line.indices]
        best = np.argsort(-weights, kind="stable")[:top]
        out[c] = [(str(vocab[line.indices[j]]), float(weights[j])) for j in best]
    return out


def _representatives(x: np.ndarray, labels: np.ndarray, cluster_ids: list[int], top: int
                     ) -> tuple[dict[int, list[int]], dict[int, float]]:
    reps: dict[int, list[int]] = {}
    cohesion: dict[int, float] = {}
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    for c in cluster_ids:
        rows = order[np.searchsorted(ordered, c, "left"):np.searchsorted(ordered, c, "right")]
        centroid = x[rows].mean(0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        sims = x[rows] @ centroid
        best = np.argsort(-sims, kind="stable")[:top]
        reps[c] = rows[best].tolist()
        cohesion[c] = float(sims.mean())
    return reps, cohesion


def project_2d(x: np.ndarray, projection: Projection = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D map coordinates; ``auto`` = UMAP if installed and n ≤ 50k, else PCA."""
    if projection not in ("auto", "pca", "umap"):
        raise InvalidInput(f"projection must be 'auto', 'pca' or 'umap', got {projection!r}")
    if len(x) < 3:
        return np.zeros((len(x), 2), dtype=np.float32), "none"
    if projection in ("auto", "umap"):
        try:
            import umap  # type: ignore[import-not-found]
        except ImportError:
            if projection == "umap":
                raise MissingDependency("umap-learn", "apps", "UMAP maps") from None
        else:
            if projection == "umap" or len(x) <= 50_000:
                xy = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(x)
                return np.asarray(xy, dtype=np.float32), "umap"
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32), "pca"


__all__ = ["Cluster", "ClusterReport", "cluster", "ctfidf", "project_2d"]
