"""What people do with embeddings: duplicates, recommendations, clusters, classes, outliers.

Every app is a plain function over a collection or a matrix (see ``from_matrix``) returning
dataclasses; the CLI and the server call the same functions. Apps only use the public
``Collection``/``VectorStore`` surface, and work from k-nearest-neighbour queries, so memory
stays O(n·k) however many items there are (plus the n×d vectors themselves).

``semkit.apps.cluster``, ``recommend`` and ``outliers`` are the functions; their dataclasses
live in the modules of the same name (``from semkit.apps.cluster import ClusterReport``).
"""

from __future__ import annotations

from . import classify, cluster_map
from ._source import Source, as_source, from_matrix
from .classify import Classifier, Prediction, train, zero_shot
from .cluster import Cluster, ClusterReport, cluster
from .dedup import DuplicateGroup, DuplicateMember, DuplicatePair, DuplicateReport, duplicates, normalize_text
from .outliers import Outlier, outlier_scores, outliers, score_new
from .recommend import Recommendation, recommend

__all__ = [
    "Classifier",
    "Cluster",
    "ClusterReport",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicatePair",
    "DuplicateReport",
    "Outlier",
    "Prediction",
    "Recommendation",
    "Source",
    "as_source",
    "classify",
    "cluster",
    "cluster_map",
    "duplicates",
    "from_matrix",
    "normalize_text",
    "outlier_scores",
    "outliers",
    "recommend",
    "score_new",
    "train",
    "zero_shot",
]
