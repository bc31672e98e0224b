"""The capacity estimate for pgvector against a fresh table on a real PostgreSQL + pgvector."""

from __future__ import annotations

import json
import uuid

import numpy as np
import psycopg
import pytest

from semkit import capacity
from semkit.store.base import CollectionSpec
from semkit.store.pgvector import PgVectorStore
from tests.support.pgserver import drop_schema

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_estimate_matches_a_real_pgvector_table(postgres_dsn: str, dtype: str) -> None:
    n, dims = 4000, 384
    rng = np.random.default_rng(11)
    vecs = rng.standard_normal((n, dims), dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(k))) for k in rng.integers(2, 10, 3000)]
    texts = [" ".join(rng.choice(vocab, 18)) for _ in range(n)]
    metas = [{"source": f"https://example.org/doc/{i}", "page": i % 50, "lang": "en"} for i in range(n)]
    text_bytes = sum(len(t.encode()) for t in texts) / n
    meta_bytes = sum(len(json.dumps(m, separators=(",", ":")).encode()) for m in metas) / n
    schema = f"cap_{uuid.uuid4().hex[:8]}"
    try:
        with PgVectorStore(postgres_dsn, schema=schema) as store:
            store.create_collection(CollectionSpec("docs", dims, dtype=dtype))  # type: ignore[arg-type]
            store.upsert("docs", [f"doc-{i}" for i in range(n)], vecs, texts, metas)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"VACUUM ANALYZE {schema}.semkit_docs")
            row = conn.execute(f"SELECT pg_total_relation_size('{schema}.semkit_docs')").fetchone()
        assert row is not None
        real = int(row[0])
    finally:
        drop_schema(postgres_dsn, schema)
    e = capacity.estimate(n, dims, backend="pgvector", dtype=dtype, text_bytes=text_bytes,
                          metadata_bytes=meta_bytes)
    assert e.disk_bytes == pytest.approx(real, rel=0.15), (e.disk_bytes, real)
