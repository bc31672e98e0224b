"""A collection moves embedded → PostgreSQL/pgvector → Qdrant → embedded through export/import
files, never re-embedded: every hop keeps ids, texts, metadata and vectors, and answers the
same searches (plain and filtered) as the original.

Real parts: the bundled model, a real PostgreSQL with pgvector, qdrant-client's local mode.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import semkit
from semkit.models.base import Embedder
from tests.support.shared_data import banking_sample

pytest.importorskip("qdrant_client", reason="qdrant-client is not installed (pip install 'semkit[qdrant]')")

WHERE = {"$and": [{"n": {"$lt": 90}}, {"category": {"$ne": "card_arrival"}}]}
pytestmark = pytest.mark.postgres


@pytest.fixture
def local_model() -> Embedder:
    return semkit.model("local")  # after the per-test cache folder is set


def _texts_embedded(model: Embedder) -> int:
    """Texts that went through the model, whether its cache or the network answered."""
    return model.meter.items + model.meter.cached_items


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    from tests.support.pgserver import drop_schema

    schema = f"move_{uuid.uuid4().hex[:8]}"
    yield schema
    drop_schema(postgres_dsn, schema)


def _snapshot(collection: semkit.Collection, ids: list[str], queries: np.ndarray) -> dict[str, Any]:
    records = collection.get(ids, include_vectors=True)
    return {
        "records": [(r.id, r.text, r.metadata) for r in records],
        "vectors": np.stack([r.vector for r in records]),
        "hits": [[h.id for h in collection.search(q, k=10, exact=True)] for q in queries],
        "scores": [[h.score for h in collection.search(q, k=10, exact=True)] for q in queries],
        "filtered": [[h.id for h in collection.search(q, k=5, where=WHERE, exact=True)] for q in queries],
        "spec": (collection.spec.embedder, collection.dimensions, collection.metric),
    }


def test_a_collection_travels_through_every_backend_unchanged(
        tmp_path: Path, local_model: Embedder, postgres_dsn: str, pg_schema: str) -> None:
    ids, texts, metadata = banking_sample(150, "bank/")
    queries = local_model.embed(["my card has not arrived", "exchange rate fee", "cash machine"], "query")
    embedded_calls = _texts_embedded(local_model)

    with semkit.connect(tmp_path / "kb") as db:
        original = db.collection("bank", model=local_model)
        original.upsert(ids=ids, texts=texts, metadata=metadata)
        want = _snapshot(original, ids, queries)
        assert original.export(tmp_path / "hop1.parquet") == len(ids)
    assert _texts_embedded(local_model) == embedded_calls + len(ids)  # the one and only embedding pass

    hops = [(lambda: semkit.connect(postgres_dsn, schema=pg_schema), "hop1.parquet", "hop2.jsonl"),
            (lambda: semkit.connect(f"qdrant+local://{tmp_path / 'qdrant'}"), "hop2.jsonl", "hop3.parquet"),
            (lambda: semkit.connect(tmp_path / "kb2"), "hop3.parquet", None)]
    for connect, source, target in hops:
        with connect() as db:
            assert db.import_collection("bank", tmp_path / source) == len(ids)
            copy = db.collection("bank")  # opened from its recorded spec: no model passed
            got = _snapshot(copy, ids, queries)
            assert got["records"] == want["records"] and got["spec"] == want["spec"]
            assert np.allclose(got["vectors"], want["vectors"], atol=1e-6)
            assert got["hits"] == want["hits"] and got["filtered"] == want["filtered"]
            assert np.allclose(got["scores"], want["scores"], atol=1e-5)
            if target is not None:
                assert copy.export(tmp_path / target) == len(ids)
    assert _texts_embedded(local_model) == embedded_calls + len(ids)
