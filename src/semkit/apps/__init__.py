"""What people do with embeddings: search, RAG context, duplicates, recommendations, clusters,
classes, outliers, evaluation.

Every app is a plain function over a collection or a matrix (see ``from_matrix``) returning
dataclasses; the CLI and the server call the same functions. Apps only use the public
``Collection``/``VectorStore`` surface, and work from k-nearest-neighbour queries, so memory
stays O(n·k) however many items there are (plus the n×d vectors themselves).

``semkit.apps.cluster``, ``recommend`` and ``outliers`` are the functions; their dataclasses
live in the modules of the same name (``from semkit.apps.cluster import ClusterReport``).
"""

from __future__ import annotations

from . import classify, cluster_map, evaluate, highlight
from ._source import Source, as_source, from_matrix
from .classify import Classifier, Prediction, train, zero_shot
from .cluster import Cluster, ClusterReport, cluster
from .context import Context, Passage, context
from .dedup import DuplicateGroup, DuplicateMember, DuplicatePair, DuplicateReport, duplicates, normalize_text
from .outliers import Outlier, outlier_scores, outliers, score_new
from .recommend import Recommendation, recommend
from .search import SearchHit, search

__all__ = [
    "Classifier",
    "Cluster",
    "ClusterReport",
    "Context",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicatePair",
    "DuplicateReport",
    "Outlier",
    "Passage",
    "Prediction",
    "Recommendation",
    "SearchHit",
    "Source",
    "as_source",
    "classify",
    "cluster",
    "cluster_map",
    "context",
    "duplicates",
    "evaluate",
    "from_matrix",
    "highlight",
    "normalize_text",
    "outlier_scores",
    "outliers",
    "recommend",
    "score_new",
    "search",
    "train",
    "zero_shot",
]
