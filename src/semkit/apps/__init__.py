"""What people do with embeddings: search, RAG context, duplicates, recommendations, clusters,
classes, outliers, evaluation.

Every app is a plain function over a collection or a matrix (see ``from_matrix``) returning
dataclasses; the CLI and the server call the same functions. Apps only use the public
``Collection``/``VectorStore`` surface, and work from k-nearest-neighbour queries, so memory
stays O(n·k) however many items there are (plus the n×d vectors themselves).

The public surface is ``__all__``: every name below is a function or a dataclass. The modules
that implement them are private (``_search``, ``_cluster``...), so a name here is never both a
module and a function. Heavy dependencies (scikit-learn, HDBSCAN, pytrec_eval) load only when
the app that needs them runs.
"""

from __future__ import annotations

from ._classify import Classifier, Prediction, train, zero_shot
from ._cluster import Cluster, ClusterReport, cluster
from ._cluster_map import render_cluster_map, write_cluster_map
from ._context import Context, Passage, context
from ._dedup import DuplicateGroup, DuplicateMember, DuplicatePair, DuplicateReport, duplicates, normalize_text
from ._evaluate import (
    ClassifyResult,
    Labelled,
    Pairs,
    RetrievalData,
    RetrievalResult,
    StsResult,
    evaluate_classification,
    evaluate_retrieval,
    evaluate_sts,
    load_beir,
    load_labelled,
    load_pairs,
    ranked_metrics,
    read_qrels,
    retrieval_metrics,
    spearman,
)
from ._highlight import Snippet, snippet
from ._outliers import Outlier, outlier_scores, outliers, score_new
from ._recommend import Recommendation, recommend
from ._search import MODES, SearchHit, language_warning, search
from ._source import Source, as_source, from_matrix

__all__ = [
    "MODES",
    "Classifier",
    "ClassifyResult",
    "Cluster",
    "ClusterReport",
    "Context",
    "DuplicateGroup",
    "DuplicateMember",
    "DuplicatePair",
    "DuplicateReport",
    "Labelled",
    "Outlier",
    "Pairs",
    "Passage",
    "Prediction",
    "Recommendation",
    "RetrievalData",
    "RetrievalResult",
    "SearchHit",
    "Snippet",
    "Source",
    "StsResult",
    "as_source",
    "cluster",
    "context",
    "duplicates",
    "evaluate_classification",
    "evaluate_retrieval",
    "evaluate_sts",
    "from_matrix",
    "language_warning",
    "load_beir",
    "load_labelled",
    "load_pairs",
    "normalize_text",
    "outlier_scores",
    "outliers",
    "ranked_metrics",
    "read_qrels",
    "recommend",
    "render_cluster_map",
    "retrieval_metrics",
    "score_new",
    "search",
    "snippet",
    "spearman",
    "train",
    "write_cluster_map",
    "zero_shot",
]
