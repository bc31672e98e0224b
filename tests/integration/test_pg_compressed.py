"""Compressed collections on a real PostgreSQL + pgvector (``postgres_dsn``): ``dtype="binary"``
is a bit HNSW index over ``binary_quantize(embedding)`` that queries really use, rescored with
the full vectors; ``dtype="int8"`` is refused because pgvector has no int8 type. Recall and
index sizes at scale are ``benchmarks/compression.py --pg``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from semkit.errors import ConfigError
from semkit.store import filters
from semkit.store.base import CollectionSpec
from semkit.store.pgvector import PgVectorStore
from tests.integration.test_pgvector_store import clustered, near, sql_rows
from tests.support.pgserver import drop_schema

pytestmark = pytest.mark.postgres

DIMS = 384
N = 3000


@pytest.fixture(scope="module")
def loaded(postgres_dsn: str) -> Iterator[tuple[PgVectorStore, str]]:
    """One float32, one float16 and one binary collection holding the same vectors."""
    schema = "t_compressed"
    drop_schema(postgres_dsn, schema)
    vectors = clustered(N, DIMS, seed=11)
    ids = [f"r{i}" for i in range(N)]
    with PgVectorStore(postgres_dsn, schema=schema) as store:
        for dtype in ("float32", "float16", "binary"):
            store.create_collection(CollectionSpec(dtype, DIMS, dtype=dtype))  # type: ignore[arg-type]
            store.upsert(dtype, ids, vectors, metadata=[{"g": i % 5} for i in range(N)])
        yield store, schema
    drop_schema(postgres_dsn, schema)


def test_binary_keeps_full_vectors_and_indexes_their_sign_bits(loaded: tuple[PgVectorStore, str],
                                                                postgres_dsn: str) -> None:
    _, schema = loaded
    (column,) = sql_rows(postgres_dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                         "WHERE attrelid = %s::regclass AND attname = 'embedding'", (f"{schema}.semkit_binary",))
    assert column == (f"vector({DIMS})",)
    sizes = dict(sql_rows(postgres_dsn, "SELECT tablename, pg_relation_size(format('%%I.%%I', schemaname, indexname)) "
                          "FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE '%%hnsw%%'", (schema,)))
    (indexdef,) = sql_rows(postgres_dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                           "AND tablename = 'semkit_binary' AND indexdef LIKE '%%hnsw%%'", (schema,))
    assert f"binary_quantize(embedding))::bit({DIMS})" in indexdef[0] and "bit_hamming_ops" in indexdef[0]
    # 48 bytes of bits instead of 1,536 of floats per row; the graph's links are the same size.
    assert sizes["semkit_binary"] < 0.3 * sizes["semkit_float32"]


def test_float16_is_a_real_halfvec_column_and_index(loaded: tuple[PgVectorStore, str], postgres_dsn: str) -> None:
    store, schema = loaded
    (column,) = sql_rows(postgres_dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                         "WHERE attrelid = %s::regclass AND attname = 'embedding'", (f"{schema}.semkit_float16",))
    assert column == (f"halfvec({DIMS})",)
    sizes = dict(sql_rows(postgres_dsn, "SELECT tablename, pg_relation_size(format('%%I.%%I', schemaname, indexname)) "
                          "FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE '%%hnsw%%'", (schema,)))
    # 768 bytes of halves instead of 1,536 of floats per row, plus the same graph links.
    assert sizes["semkit_float16"] < 0.65 * sizes["semkit_float32"]
    queries = near(clustered(N, DIMS, seed=11), 30, seed=4)
    plan = store.explain("float16", queries[:1], 10)
    assert "semkit_float16_embedding_hnsw" in plan
    approx = store.query("float16", queries, 10)
    exact = store.query("float32", queries, 10, exact=True)
    hits = sum(len(set(a.ids) & set(e.ids)) for a, e in zip(approx, exact, strict=True))
    assert hits / 300 >= 0.95


def test_binary_queries_walk_the_bit_index_and_rescore(loaded: tuple[PgVectorStore, str]) -> None:
    store, _ = loaded
    queries = near(clustered(N, DIMS, seed=11), 30, seed=2)
    plan = store.explain("binary", queries[:1], 10)
    assert "semkit_binary_embedding_hnsw" in plan and "<~>" in plan
    approx = store.query("binary", queries, 10)
    exact = store.query("float32", queries, 10, exact=True)
    hits = sum(len(set(a.ids) & set(e.ids)) for a, e in zip(approx, exact, strict=True))
    assert hits / 300 >= 0.9
    for a, e in zip(approx, exact, strict=True):
        assert list(a.scores) == sorted(a.scores, reverse=True)
        for rid, score in zip(a.ids, a.scores, strict=True):
            if rid in e.ids:  # the exact cosine similarity, not a Hamming distance
                assert score == pytest.approx(e.scores[e.ids.index(rid)], abs=1e-5)


def test_binary_queries_respect_filters(loaded: tuple[PgVectorStore, str]) -> None:
    store, _ = loaded
    queries = near(clustered(N, DIMS, seed=11), 10, seed=3)
    where = filters.parse({"g": 2})
    got = store.query("binary", queries, 10, where=where)
    assert all(len(n.ids) == 10 for n in got)
    assert all(int(rid[1:]) % 5 == 2 for n in got for rid in n.ids)


def test_int8_is_refused_with_what_to_use_instead(loaded: tuple[PgVectorStore, str]) -> None:
    store, _ = loaded
    with pytest.raises(ConfigError, match=r"no int8 vector type.*float16.*binary"):
        store.create_collection(CollectionSpec("q8", DIMS, dtype="int8"))
    assert store.get_collection("q8") is None
