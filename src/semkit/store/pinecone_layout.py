"""How a Pinecone record maps onto a semkit record, in one place for the Pinecone-compatible
routes (``server/routes_pinecone.py``) and the Pinecone dump importer (``store/io.py``).

- A Pinecone vector is ``{"id", "values", "metadata"}``; semkit keeps the same id, vector and
  metadata. Pinecone has no text column, so the convention of the clients that write to it
  (LangChain's ``PineconeVectorStore`` and others keep the passage in ``metadata["text"]``) is
  followed: a string ``metadata["text"]`` also becomes the record's text, so keyword and hybrid
  search, the web UI and the apps see it. The metadata is stored unchanged, so what a client
  upserts is what it fetches back.
- The other way, a record that has a text but no ``metadata["text"]`` (written by semkit itself,
  or imported from Chroma) shows its text there, so a Pinecone client reads it where it expects.
- Metric names: Pinecone's ``cosine``, ``dotproduct`` and ``euclidean`` are semkit's ``cosine``,
  ``dot`` and ``l2``. Scores follow Pinecone: similarity for cosine and dot product, the
  *squared* Euclidean distance for ``euclidean`` (smaller is nearer), where semkit's own score
  is the negated distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidInput
from ..types import Metric

TEXT_FIELD = "text"
"""The metadata field that carries a record's text in Pinecone's world."""

METRIC_NAMES: dict[Metric, str] = {"cosine": "cosine", "dot": "dotproduct", "l2": "euclidean"}
"""semkit metric -> Pinecone metric name."""


def pinecone_metric(metric: str) -> str:
    """Pinecone's name for a semkit metric."""
    return METRIC_NAMES.get(metric, metric)  # type: ignore[call-overload]


def semkit_metric(name: str) -> Metric:
    """The semkit metric for a Pinecone (or semkit) metric name."""
    for metric, pinecone in METRIC_NAMES.items():
        if name in (metric, pinecone):
            return metric
    raise InvalidInput(f"unknown metric {name!r}; use cosine, dotproduct (dot) or euclidean (l2)")


def pinecone_score(score: float, metric: str) -> float:
    """Pinecone's score for a semkit score: the squared distance for ``l2`` (semkit scores L2 as
    the negated distance), the score itself otherwise."""
    return score * score if metric == "l2" else score


def text_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The record text a Pinecone record's metadata carries (``None``: none usable)."""
    if not metadata:
        return None
    text = metadata.get(TEXT_FIELD)
    return text if isinstance(text, str) and text.strip() else None


def pinecone_metadata(text: str | None, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A record's metadata as a Pinecone client reads it: its text under ``text`` unless the
    metadata already holds that field."""
    out = dict(metadata)
    if text is not None and TEXT_FIELD not in out:
        out[TEXT_FIELD] = text
    return out


def check_dense(record_id: str, sparse: Any) -> None:
    """semkit stores dense vectors only: a non-empty sparse part is refused, never dropped."""
    if sparse is None:
        return
    indices = sparse.get("indices") if isinstance(sparse, Mapping) else None
    if indices or not isinstance(sparse, Mapping):
        raise InvalidInput(f"vector {record_id!r} has sparse values; semkit stores dense vectors only. "
                           "Send the dense values alone (hybrid search uses semkit's own keyword index)")
