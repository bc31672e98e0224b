"""Compressed collections on a real PostgreSQL + pgvector (``postgres_dsn``): ``dtype="binary"``
is a bit IVFFlat index over ``binary_quantize(embedding)``, built once the table has rows, that
queries really use, rescored with the full vectors; ``dtype="int8"`` is refused because
pgvector has no int8 type. Recall and index sizes at scale are
``benchmarks/compression.py --pg``."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from semkit.errors import ConfigError
from semkit.store import filters
from semkit.store.ann_index import binary_lists
from semkit.store.base import CollectionSpec
from semkit.store.pg_quantized import IVF_MIN_ROWS
from semkit.store.pgvector import PgVectorStore
from tests.integration.test_compressed_index import real_minilm
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
                          "FROM pg_indexes WHERE schemaname = %s AND indexname LIKE '%%embedding%%'", (schema,)))
    (indexdef,) = sql_rows(postgres_dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                           "AND tablename = 'semkit_binary' AND indexname LIKE '%%embedding%%'", (schema,))
    assert "USING ivfflat" in indexdef[0] and f"lists='{binary_lists(N)}'" in indexdef[0]
    assert f"binary_quantize(embedding))::bit({DIMS})" in indexdef[0] and "bit_hamming_ops" in indexdef[0]
    # ~64 bytes a row (48 of bits) instead of a graph over 1,536 bytes of floats; each list's
    # first page weighs at 3,000 rows (1/16 and less at 30k: benchmarks/compression.py).
    assert sizes["semkit_binary"] < sizes["semkit_float32"] / 8


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
    assert "semkit_binary_embedding_ivf" in plan and "<~>" in plan
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


def test_binary_deletes_are_never_answered(postgres_dsn: str) -> None:
    vectors = clustered(1500, DIMS, seed=21)
    with PgVectorStore(postgres_dsn, schema="t_compressed_del") as store:
        store.create_collection(CollectionSpec("b", DIMS, dtype="binary"))
        store.upsert("b", [f"r{i}" for i in range(1500)], vectors)
        assert store.delete("b", [f"r{i}" for i in range(0, 1500, 2)]) == 750
        got = store.query("b", vectors[:40], 10)
        assert all(len(n.ids) == 10 and all(int(rid[1:]) % 2 == 1 for rid in n.ids) for n in got)
        assert [n.ids[0] for n in got[1::2]] == [f"r{i}" for i in range(1, 40, 2)]
    drop_schema(postgres_dsn, "t_compressed_del")


def test_the_bit_index_waits_for_rows_and_follows_growth(postgres_dsn: str) -> None:
    schema = "t_compressed_grow"
    drop_schema(postgres_dsn, schema)
    vectors = clustered(5000, DIMS, seed=8)
    ids = [f"r{i}" for i in range(5000)]
    indexes = ("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND indexname LIKE '%%embedding%%'")
    with PgVectorStore(postgres_dsn, schema=schema) as store:
        store.create_collection(CollectionSpec("b", DIMS, dtype="binary"))
        store.upsert("b", ids[:500], vectors[:500])
        # Too few rows to train lists on: no bit index, and queries scan every row's bits.
        assert sql_rows(postgres_dsn, indexes, (schema,)) == []
        assert store.query("b", vectors[:3], 1)[0].ids == ["r0"]
        store.upsert("b", ids[500:IVF_MIN_ROWS], vectors[500:IVF_MIN_ROWS])
        ((name, indexdef),) = sql_rows(postgres_dsn, indexes, (schema,))
        assert name == "semkit_b_embedding_ivf" and f"lists='{binary_lists(IVF_MIN_ROWS)}'" in indexdef
        store.upsert("b", ids[IVF_MIN_ROWS:], vectors[IVF_MIN_ROWS:])  # 5x the rows: more lists
        ((name, indexdef),) = sql_rows(postgres_dsn, indexes, (schema,))
        assert f"lists='{binary_lists(5000)}'" in indexdef
        got = store.query("b", vectors[:20], 1)
        assert [n.ids[0] for n in got] == ids[:20]
    # A table with the HNSW bit index earlier versions built keeps working, and its next write
    # replaces it with the IVFFlat one.
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP INDEX {schema}.semkit_b_embedding_ivf")
        conn.execute(f"CREATE INDEX semkit_b_embedding_hnsw ON {schema}.semkit_b USING hnsw "
                     f"((binary_quantize(embedding)::bit({DIMS})) bit_hamming_ops)")
    with PgVectorStore(postgres_dsn, schema=schema) as store:
        assert store.query("b", vectors[:5], 1)[0].ids == ["r0"]
        store.upsert("b", ["extra"], vectors[:1])
        ((name, indexdef),) = sql_rows(postgres_dsn, indexes, (schema,))
        assert name == "semkit_b_embedding_ivf" and "ivfflat" in indexdef
    drop_schema(postgres_dsn, schema)


def test_binary_recall_on_real_vectors(postgres_dsn: str) -> None:
    corpus, queries, truth = real_minilm(10_000, 200)
    schema = "t_compressed_real"
    drop_schema(postgres_dsn, schema)
    with PgVectorStore(postgres_dsn, schema=schema) as store:
        store.create_collection(CollectionSpec("b", 384, dtype="binary"))
        store.upsert("b", [str(i) for i in range(len(corpus))], corpus)
        plan = store.explain("b", queries[:1], 10)
        assert "semkit_b_embedding_ivf" in plan
        got = store.query("b", queries, 10)
    drop_schema(postgres_dsn, schema)
    recall = sum(len({int(i) for i in n.ids} & set(t.tolist())) for n, t in zip(got, truth, strict=True)) / 2000
    assert recall >= 0.95


def test_int8_is_refused_with_what_to_use_instead(loaded: tuple[PgVectorStore, str]) -> None:
    store, _ = loaded
    with pytest.raises(ConfigError, match=r"no int8 vector type.*float16.*binary"):
        store.create_collection(CollectionSpec("q8", DIMS, dtype="int8"))
    assert store.get_collection("q8") is None
