"""PostgreSQL + pgvector specifics, on a real server (``postgres_dsn``): the table layout a
PostgreSQL user sees, plain SQL on it, HNSW use, halfvec, the COPY write path, settings,
full-text search and errors. The generic behaviour is in tests/contract.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest

from semkit.errors import CollectionNotFound, ConfigError, InvalidInput, StoreError
from semkit.store import filters
from semkit.store.base import CollectionSpec
from semkit.store.pg_sql import REGISTRY_TABLE, table_name
from semkit.store.pgvector import PgVectorStore, mask_dsn
from tests.support.pgserver import create_database, drop_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    """A throwaway schema per test, so table names never collide across tests."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    drop_schema(postgres_dsn, name)


@pytest.fixture
def store(postgres_dsn: str, schema: str) -> Iterator[PgVectorStore]:
    with PgVectorStore(postgres_dsn, schema=schema) as s:
        yield s


def sql_rows(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def clustered(n: int, dims: int, seed: int = 0) -> np.ndarray:
    """Vectors around 50 centres: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dims))
    x = centres[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, dims))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def near(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Queries close to stored vectors, as real queries are close to their documents."""
    rng = np.random.default_rng(seed)
    picks = vectors[rng.choice(len(vectors), n, replace=False)]
    return (picks + 0.05 * rng.normal(size=picks.shape)).astype(np.float32)


def recall_at_k(got: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(g) & set(t)) / len(t) for g, t in zip(got, truth, strict=True)]))


# --- layout ---------------------------------------------------------------------------------


def test_table_layout_is_what_a_postgres_user_expects(store: PgVectorStore, postgres_dsn: str,
                                                      schema: str) -> None:
    store.create_collection(CollectionSpec("docs", 384, embedder="local:all-MiniLM-L6-v2@384"))
    assert table_name("docs") == "semkit_docs"
    columns = sql_rows(postgres_dsn, """
        SELECT column_name, data_type, udt_name, is_nullable, column_default, is_generated
        FROM information_schema.columns WHERE table_schema = %s AND table_name = 'semkit_docs'
        ORDER BY ordinal_position""", (schema,))
    by_name = {c[0]: c for c in columns}
    assert list(by_name) == ["id", "content", "metadata", "embedding", "fts"]
    assert by_name["id"][1:4] == ("text", "text", "NO")
    assert by_name["content"][1:4] == ("text", "text", "YES")
    assert by_name["metadata"][1:4] == ("jsonb", "jsonb", "NO")
    assert by_name["metadata"][4].startswith("'{}'::jsonb")
    assert by_name["embedding"][2] == "vector"
    assert by_name["fts"][2] == "tsvector" and by_name["fts"][5] == "ALWAYS"
    (typmod,) = sql_rows(postgres_dsn, """
        SELECT format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = %s::regclass AND attname = 'embedding'""", (f"{schema}.semkit_docs",))[0]
    assert typmod == "vector(384)"
    (pkey,) = sql_rows(postgres_dsn, """
        SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
        AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary""",
                       (f"{schema}.semkit_docs",))
    assert pkey == ("id",)
    indexes = dict(sql_rows(postgres_dsn, "SELECT indexname, indexdef FROM pg_indexes "
                            "WHERE schemaname = %s AND tablename = 'semkit_docs'", (schema,)))
    assert "USING hnsw (embedding vector_cosine_ops)" in indexes["semkit_docs_embedding_hnsw"]
    assert "USING gin (metadata)" in indexes["semkit_docs_metadata_gin"]
    assert "USING gin (fts)" in indexes["semkit_docs_fts_gin"]
    registry = sql_rows(postgres_dsn, f"SELECT name, table_name, spec, created_at FROM {schema}.{REGISTRY_TABLE}")
    assert len(registry) == 1
    name, table, spec, created = registry[0]
    assert (name, table) == ("docs", "semkit_docs") and created is not None
    assert spec["embedder"] == "local:all-MiniLM-L6-v2@384" and spec["dimensions"] == 384


@pytest.mark.parametrize("metric, opclass, operator", [
    ("cosine", "vector_cosine_ops", "<=>"), ("dot", "vector_ip_ops", "<#>"), ("l2", "vector_l2_ops", "<->"),
])
def test_each_metric_gets_its_opclass_and_operator(store: PgVectorStore, postgres_dsn: str, schema: str,
                                                    metric: str, opclass: str, operator: str) -> None:
    name = f"m_{metric}"
    store.create_collection(CollectionSpec(name, 3, metric=metric))  # type: ignore[arg-type]
    (indexdef,) = sql_rows(postgres_dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                           "AND indexname = %s", (schema, f"semkit_{name}_embedding_hnsw"))[0]
    assert f"hnsw (embedding {opclass})" in indexdef
    vectors = np.array([[1, 0, 0], [0, 2, 0], [3, 3, 0]], np.float32)
    store.upsert(name, ["a", "b", "c"], vectors)
    q = np.array([[0.4, 1, 0]], np.float32)
    got = store.query(name, q, 3)[0]
    # The score is the operator's distance turned "higher is better", computed by PostgreSQL.
    raw = dict(sql_rows(postgres_dsn, f"SELECT id, embedding {operator} %s::vector FROM {schema}.semkit_{name}",
                        ("[0.4,1,0]",)))
    expected = {i: (1 - d if metric == "cosine" else -d) for i, d in raw.items()}
    assert got.ids == sorted(expected, key=lambda i: -expected[i])
    assert np.allclose(got.scores, [expected[i] for i in got.ids], atol=1e-5)


def test_plain_sql_from_the_readme_works_on_the_table(store: PgVectorStore, postgres_dsn: str,
                                                      schema: str) -> None:
    store.create_collection(CollectionSpec("docs", 3))
    store.upsert("docs", ["cat", "dog", "car"],
                 np.array([[1, 0.1, 0], [0.9, 0.3, 0], [0, 0, 1]], np.float32),
                 ["a cat", "a dog", "a car"], [{"kind": "animal"}, {"kind": "animal"}, {"kind": "vehicle"}])
    rows = sql_rows(postgres_dsn,
                    f"SELECT id, content FROM {schema}.semkit_docs ORDER BY embedding <=> '[1,0,0]' LIMIT 5")
    assert rows == [("cat", "a cat"), ("dog", "a dog"), ("car", "a car")]
    rows = sql_rows(postgres_dsn, f"SELECT id FROM {schema}.semkit_docs WHERE metadata->>'kind' = 'vehicle'")
    assert rows == [("car",)]
    rows = sql_rows(postgres_dsn, f"SELECT id FROM {schema}.semkit_docs "
                    "WHERE fts @@ websearch_to_tsquery('english', 'dogs') ")
    assert rows == [("dog",)]


def test_names_that_are_not_plain_identifiers_get_a_safe_table(store: PgVectorStore, postgres_dsn: str,
                                                               schema: str) -> None:
    odd = ['My Docs; DROP TABLE x; --', "collections", "Docs", "docs", "ü" * 80]
    for n, name in enumerate(odd):
        store.create_collection(CollectionSpec(name, 2))
        store.upsert(name, [f"id{n}"], np.ones((1, 2), np.float32), [name])
    tables = {t for (t,) in sql_rows(postgres_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                     (schema,))}
    assert len(tables) == len(odd) + 1  # plus the registry
    assert all(len(t.encode()) <= 40 + len("semkit_") for t in tables)
    assert table_name("collections") != REGISTRY_TABLE
    for n, name in enumerate(odd):
        assert store.texts(name, [f"id{n}"]) == {f"id{n}": name}
    assert sorted(s.name for s in store.list_collections()) == sorted(odd)


# --- indexes and plans ------------------------------------------------------------------------


@pytest.fixture
def big(store: PgVectorStore) -> tuple[PgVectorStore, str, np.ndarray]:
    vectors = clustered(6000, 48)
    store.create_collection(CollectionSpec("big", 48))
    metadata = [{"group": i % 10, "rare": i % 500 == 0} for i in range(len(vectors))]
    store.upsert("big", [f"v{i}" for i in range(len(vectors))], vectors, None, metadata)
    return store, "big", vectors


def test_hnsw_index_is_used_on_a_larger_table(big: tuple[PgVectorStore, str, np.ndarray]) -> None:
    store, name, vectors = big
    plan = store.explain(name, vectors[:1], 10)
    assert "Index Scan using semkit_big_embedding_hnsw" in plan, plan
    exact = store.explain(name, vectors[:1], 10, exact=True)
    assert "hnsw" not in exact, exact


def test_filtered_queries_use_hnsw_for_broad_filters_and_stay_exact_for_narrow_ones(
    big: tuple[PgVectorStore, str, np.ndarray],
) -> None:
    store, name, vectors = big
    store.exact_threshold = 1000
    broad = filters.parse({"group": {"$ne": 3}})  # 5,400 rows match: HNSW with iterative scan
    narrow = filters.parse({"rare": True})        # 12 rows match: exact, through the GIN index
    assert "semkit_big_embedding_hnsw" in store.explain(name, vectors[:1], 10, where=broad)
    plan = store.explain(name, vectors[:1], 10, where=narrow)
    assert "Index Scan using semkit_big_embedding_hnsw" not in plan, plan

    queries = near(vectors, 30, seed=1)
    matching = np.array([i % 10 != 3 for i in range(len(vectors))])
    sims = queries @ vectors[matching].T
    ids = np.array([f"v{i}" for i in range(len(vectors))])[matching]
    truth = [list(ids[np.argsort(-row)[:10]]) for row in sims]
    answers = store.query(name, queries, 10, where=broad)
    assert all(len(a.ids) == 10 for a in answers)
    assert all(int(i[1:]) % 10 != 3 for a in answers for i in a.ids)
    assert recall_at_k([a.ids for a in answers], truth) >= 0.9
    exact = store.query(name, queries, 10, where=broad, exact=True)
    assert [a.ids for a in exact] == truth


def test_ef_search_per_store_and_per_query(big: tuple[PgVectorStore, str, np.ndarray], postgres_dsn: str,
                                           schema: str) -> None:
    store, name, vectors = big
    queries = clustered(40, 48, seed=2)  # far from the data: a hard search where ef matters
    sims = queries @ vectors.T
    truth = [[f"v{j}" for j in np.argsort(-row)[:10]] for row in sims]
    narrow = recall_at_k([a.ids for a in store.query(name, queries, 10, ef=10)], truth)
    wide = recall_at_k([a.ids for a in store.query(name, queries, 10, ef=400)], truth)
    assert wide > narrow and wide >= 0.97, (narrow, wide)
    with PgVectorStore(postgres_dsn, schema=schema, ef_search=123) as tuned:
        with tuned._conn() as conn:
            assert conn.execute("SHOW hnsw.ef_search").fetchone() == ("123",)
            assert conn.execute("SHOW hnsw.iterative_scan").fetchone() == ("relaxed_order",)
        assert tuned.query(name, queries[:1], 5)[0].ids == store.query(name, queries[:1], 5, ef=123)[0].ids
    with pytest.raises(ConfigError):
        PgVectorStore(postgres_dsn, schema=schema, ef_search=0)
    with pytest.raises(InvalidInput):
        store.query(name, queries[:1], 5, ef=5000)


def test_each_query_runs_at_its_own_breadth_whatever_ran_before_on_the_connection(
    big: tuple[PgVectorStore, str, np.ndarray], postgres_dsn: str, schema: str,
) -> None:
    """A per-query ef stays on the pooled connection (no transaction per query), so the next
    query must still get its own breadth, the store's default included."""
    _, name, _ = big
    queries = clustered(40, 48, seed=2)  # far from the data: answers depend on the breadth
    with PgVectorStore(postgres_dsn, schema=schema, pool_min=1, pool_max=1) as one:  # one connection
        def answers(ef: int | None) -> list[list[str]]:
            return [a.ids for a in one.query(name, queries, 10, ef=ef)]

        narrow, default, wide = answers(10), answers(None), answers(400)
        assert narrow != default != wide
        assert default == answers(one.server_ef_search)
        again = [answers(400), answers(10), answers(None), answers(10), answers(None), answers(400)]
        assert again == [wide, narrow, default, narrow, default, wide]
        # one query at a time takes the single-statement path; it follows the same rule
        assert [one.query(name, q[None, :], 10, ef=10)[0].ids for q in queries[:5]] == narrow[:5]
        assert [one.query(name, q[None, :], 10)[0].ids for q in queries[:5]] == default[:5]
        one.query(name, queries[:2], 10, exact=True)
        with one._conn() as conn:
            assert conn.execute("SHOW enable_indexscan").fetchone() == ("on",)  # SET LOCAL ended


# --- halfvec ----------------------------------------------------------------------------------


def test_more_than_2000_dimensions_use_halfvec(store: PgVectorStore, postgres_dsn: str, schema: str) -> None:
    dims = 3072  # text-embedding-3-large
    store.create_collection(CollectionSpec("large", dims))
    (coltype,) = sql_rows(postgres_dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                          "WHERE attrelid = %s::regclass AND attname = 'embedding'",
                          (f"{schema}.semkit_large",))[0]
    assert coltype == "halfvec(3072)"
    (indexdef,) = sql_rows(postgres_dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = "
                           "'semkit_large_embedding_hnsw' AND schemaname = %s", (schema,))[0]
    assert "halfvec_cosine_ops" in indexdef
    vectors = clustered(1500, dims, seed=3)  # enough rows for the planner to prefer the index
    store.upsert("large", [f"x{i}" for i in range(len(vectors))], vectors)
    got = store.get("large", ["x7"], include_vectors=True)[0]
    assert got.vector is not None and got.vector.dtype == np.float32 and got.vector.shape == (dims,)
    assert np.allclose(got.vector, vectors[7], atol=1e-3)  # float16 precision
    hits = store.query("large", vectors[7:8], 3)[0]
    assert hits.ids[0] == "x7" and abs(hits.scores[0] - 1) < 1e-3
    assert "semkit_large_embedding_hnsw" in store.explain("large", vectors[7:8], 3)


def test_float16_dtype_uses_halfvec_and_huge_dims_have_no_index(store: PgVectorStore, postgres_dsn: str,
                                                                 schema: str) -> None:
    store.create_collection(CollectionSpec("small16", 8, dtype="float16", metric="l2"))
    store.create_collection(CollectionSpec("huge", 5000))
    types = dict(sql_rows(postgres_dsn, "SELECT c.relname, format_type(a.atttypid, a.atttypmod) "
                          "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                          "JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attname = 'embedding'", (schema,)))
    assert types == {"semkit_small16": "halfvec(8)", "semkit_huge": "halfvec(5000)"}
    hnsw = {i for (i,) in sql_rows(postgres_dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = %s "
                                   "AND indexdef LIKE '%%hnsw%%'", (schema,))}
    assert hnsw == {"semkit_small16_embedding_hnsw"}  # pgvector indexes halfvec up to 4,000 dims
    vectors = clustered(20, 5000, seed=4)
    store.upsert("huge", [f"h{i}" for i in range(20)], vectors)
    assert store.query("huge", vectors[3:4], 1)[0].ids == ["h3"]
    with pytest.raises(ConfigError):
        store.create_collection(CollectionSpec("q", 8, dtype="int8"))


# --- the write path -------------------------------------------------------------------------


def test_bulk_upsert_is_idempotent_and_keeps_the_index(store: PgVectorStore, postgres_dsn: str,
                                                       schema: str) -> None:
    n = 3000  # large enough for the COPY + index-rebuild path
    vectors = clustered(n, 32, seed=5)
    ids = [f"b{i}" for i in range(n)]
    store.create_collection(CollectionSpec("bulk", 32))
    store.upsert("bulk", ids, vectors, [f"text {i}" for i in range(n)], [{"round": 1} for _ in ids])
    store.upsert("bulk", ids, vectors, [f"text {i}" for i in range(n)], [{"round": 2} for _ in ids])
    assert store.count("bulk") == n
    assert store.count("bulk", filters.parse({"round": 2})) == n
    valid = sql_rows(postgres_dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass",
                     (f"{schema}.semkit_bulk_embedding_hnsw",))
    assert valid == [(True,)]
    # A small batch into the big table goes through the existing index, not a rebuild.
    store.upsert("bulk", ["b1", "new"], vectors[:2][::-1], ["changed", "new"], [{"round": 3}, {}])
    assert store.count("bulk") == n + 1
    assert store.get("bulk", ["b1"])[0].text == "changed"
    assert store.query("bulk", vectors[:1], 1)[0].ids == ["new"]
    assert "semkit_bulk_embedding_hnsw" in store.explain("bulk", vectors[:1], 5)


def test_bad_rows_are_rejected_before_anything_is_written(store: PgVectorStore) -> None:
    store.create_collection(CollectionSpec("c", 2))
    ok = np.ones((2, 2), np.float32)
    bad_inputs: list[dict[str, Any]] = [
        {"ids": ["a", "a"]},
        {"ids": ["a", ""]},
        {"texts": ["fine", "nul \x00 inside"]},
        {"metadata": [{}, {"v": float("nan")}]},
        {"metadata": [{}, {"v": "nul \x00"}]},
        {"metadata": [{}, {"v": object()}]},
        {"ids": ["a", "b\x00"]},
    ]
    for bad in bad_inputs:
        args: dict[str, Any] = {"ids": ["a", "b"], "texts": None, "metadata": None, **bad}
        with pytest.raises(InvalidInput):
            store.upsert("c", args["ids"], ok, args["texts"], args["metadata"])
    assert store.count("c") == 0


def test_nul_is_refused_wherever_postgresql_would_store_it(store: PgVectorStore) -> None:
    store.create_collection(CollectionSpec("n", 2))
    one = np.ones((1, 2), np.float32)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ids": ["a\x00"]}, "the id at position 0"),
        ({"texts": ["a\x00b"]}, "the text for id 'a'"),
        ({"metadata": [{"k\x00": 1}]}, r"metadata for id 'a' \(a key in metadata\)"),
        ({"metadata": [{"v": ["x", "y\x00"]}]}, r"metadata for id 'a' \(metadata.v\[1\]\)"),
    ]
    for bad, where in cases:
        args: dict[str, Any] = {"ids": ["a"], "texts": None, "metadata": None, **bad}
        with pytest.raises(InvalidInput, match=where + r" contains a NUL character"):
            store.upsert("n", args["ids"], one, args["texts"], args["metadata"])
    # A backslash followed by "u0000" is text, not a NUL: it is stored as written.
    store.upsert("n", ["ok"], one, [r"C:\u0000 path"], [{"p": r"\u0000", r"\u0000": "key"}])
    [record] = store.get("n", ["ok"])
    assert record.text == r"C:\u0000 path" and record.metadata == {"p": r"\u0000", r"\u0000": "key"}
    with pytest.raises(InvalidInput, match="NUL character"):
        store.update_metadata("n", ["ok"], [{"v": "\x00"}])
    assert store.count("n") == 1 and store.get("n", ["ok"])[0].metadata == record.metadata


def test_rename_moves_table_indexes_and_registry_in_one_step(store: PgVectorStore, postgres_dsn: str,
                                                             schema: str) -> None:
    store.create_collection(CollectionSpec("staging", 2, embedder="m:new@2"))
    store.create_collection(CollectionSpec("live", 2, embedder="m:old@2"))
    store.upsert("staging", ["n"], np.ones((1, 2), np.float32), ["new text"])
    store.upsert("live", ["o"], np.ones((1, 2), np.float32), ["old text"])
    store.rename_collection("staging", "live")
    tables = {t for (t,) in sql_rows(postgres_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                     (schema,))}
    assert tables == {"semkit_live", REGISTRY_TABLE}
    indexes = {i for (i,) in sql_rows(postgres_dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = %s "
                                      "AND tablename = 'semkit_live'", (schema,))}
    assert indexes == {"semkit_live_pkey", "semkit_live_embedding_hnsw", "semkit_live_metadata_gin",
                       "semkit_live_fts_gin"}
    spec = store.get_collection("live")
    assert spec is not None and spec.embedder == "m:new@2"
    assert store.texts("live", ["n", "o"]) == {"n": "new text"}
    assert store.keyword_query("live", "text", 5).ids == ["n"]


def test_a_table_dropped_behind_the_stores_back_is_collection_not_found(
    store: PgVectorStore, postgres_dsn: str, schema: str,
) -> None:
    store.create_collection(CollectionSpec("gone", 2))
    store.count("gone")  # cached
    other = PgVectorStore(postgres_dsn, schema=schema)
    other.drop_collection("gone")
    other.close()
    with pytest.raises(CollectionNotFound):
        store.count("gone")


# --- keyword search ---------------------------------------------------------------------------


def test_keyword_search_uses_postgres_full_text_search(store: PgVectorStore) -> None:
    store.create_collection(CollectionSpec("kw", 2))
    texts = {
        "run": "She runs every morning along the river",
        "cook": "Cooking pasta needs salted boiling water",
        "both": "Runners cook pasta the night before a race",
        "none": None,
        "stop": "the and of",
    }
    store.upsert("kw", list(texts), np.ones((5, 2), np.float32), list(texts.values()),
                 [{"year": 2020}, {"year": 2021}, {"year": 2022}, {}, {}])
    hits = store.keyword_query("kw", "running", 5)  # English stemming: running ~ runs
    assert hits.ids == ["run"]
    hits = store.keyword_query("kw", "how do I cook pasta?", 5)
    assert set(hits.ids) == {"cook", "both"} and all(s > 0 for s in hits.scores)
    hits = store.keyword_query("kw", "pasta", 5, where=filters.parse({"year": {"$gte": 2022}}))
    assert hits.ids == ["both"]
    assert store.keyword_query("kw", "the of and", 5).ids == []  # only stop words
    assert store.keyword_query("kw", "'; DROP TABLE x; -- \\ \"", 5).ids == []
    assert store.keyword_query("kw", "", 5).ids == []


# --- filters compiled to SQL: corners beyond the contract suite --------------------------------


def test_filter_paths_walk_objects_only(store: PgVectorStore) -> None:
    store.create_collection(CollectionSpec("f", 2))
    metadata = [{"a": [5, 6]}, {"a": {"0": 5}}, {"a": {"b": [{"c": 1}]}}, {"a": {"b": {"c": 1}}},
                {"s": "Zebra"}, {"s": "apple"}, {"s": "éclair"}, {"n": 10**20}, {"n": 0.1}]
    ids = [f"r{i}" for i in range(len(metadata))]
    store.upsert("f", ids, np.ones((len(ids), 2), np.float32), None, metadata)
    cases = [
        {"a.0": 5}, {"a.0": {"$gte": 5}}, {"a.0": {"$exists": True}}, {"a.b.c": 1},
        {"a.b.c": {"$exists": False}}, {"a": 5}, {"a": {"$ne": 5}}, {"s": {"$gt": "Zebra"}},
        {"s": {"$lt": "apple"}}, {"s": {"$gte": "b"}}, {"n": {"$gt": 10**19}}, {"n": {"$lte": 0.1}},
        {"n": {"$in": [0.1, 1e20]}}, {"s": {"$nin": ["apple", "Zebra"]}},
    ]
    for where in cases:
        node = filters.parse(where)
        expected = {i for i, m in zip(ids, metadata, strict=True) if filters.matches(node, m)}
        assert {r.id for batch in store.scan("f", where=node) for r in batch} == expected, where


# --- connections, errors, secrets -------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16", "binary"])
def test_search_reads_the_records_in_the_knn_statement_one_round_trip_per_query(
        postgres_dsn: str, schema: str, dtype: str, tmp_path: Any) -> None:
    """``Collection.search`` sends ONE statement per query, which returns the hits' text and
    metadata (and vectors when asked): counted on the wire with libpq's protocol trace."""
    from psycopg import pq

    from semkit.database import Database

    data = clustered(600, 64, seed=5)
    with PgVectorStore(postgres_dsn, schema=schema, pool_min=1, pool_max=1) as store:
        store.create_collection(CollectionSpec("docs", 64, dtype=dtype))  # type: ignore[arg-type]
        ids = [f"d{i}" for i in range(600)]
        store.upsert("docs", ids, data, texts=[f"text {i}" for i in range(600)],
                     metadata=[{"n": i} for i in range(600)])
        docs = Database(store).collection("docs", model=None)
        queries = near(data, 12, seed=6)
        docs.search(queries[0], k=5)  # first use: registry read, ef_search set on the connection
        conn = store._pool.getconn()
        trace = tmp_path / "wire.txt"
        with trace.open("w") as out:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            store._pool.putconn(conn)
            hits = [docs.search(q, k=5, include_vectors=True) for q in queries]
            conn.pgconn.untrace()
        sent = [line.split("\t")[2].split()[0] for line in trace.read_text().splitlines() if line.startswith("F\t")]
        assert sent.count("Execute") == len(queries), sent
        for q, answer in zip(queries, hits, strict=True):
            # search normalises the query for cosine, so store.query gets the unit vector too
            expected = store.query("docs", (q / np.linalg.norm(q))[None, :], 5)[0]
            assert [h.id for h in answer] == expected.ids
            assert [h.score for h in answer] == pytest.approx(expected.scores.tolist(), abs=1e-6)
            stored = {r.id: r for r in store.get("docs", expected.ids, include_vectors=True)}
            for hit in answer:
                assert hit.text == stored[hit.id].text and hit.metadata == stored[hit.id].metadata
                assert np.array_equal(hit.vector, stored[hit.id].vector)


def test_dsn_passwords_are_masked() -> None:
    assert mask_dsn("postgresql://bob:s3cr%40t@db.example.com:5432/app") == \
        "postgresql://bob:***@db.example.com:5432/app"
    assert "hunter22" not in mask_dsn("host=db user=bob password=hunter22 dbname=app")
    assert "hunter22" not in mask_dsn("host=db user=bob password='hunter22' dbname=app")
    assert "hunter22" not in mask_dsn("postgresql://db/app?user=bob&password=hunter22&sslmode=require")
    assert mask_dsn("postgresql://bob@db/app") == "postgresql://bob@db/app"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_gives_an_actionable_error_without_the_password() -> None:
    port = _free_port()
    with pytest.raises(StoreError) as info:
        PgVectorStore(f"postgresql://bob:topsecret99@127.0.0.1:{port}/app", connect_timeout=3)
    message = str(info.value)
    assert "topsecret99" not in message and "topsecret99" not in repr(info.value.__cause__)
    assert f"127.0.0.1:{port}" in message and "***" in message
    assert "Start PostgreSQL" in message and "Supabase" in message
    assert info.value.retryable


def test_wrong_database_and_repr(postgres_dsn: str) -> None:
    dsn = postgres_dsn.replace("postgresql://postgres@", "postgresql://postgres:pw-not-shown@")
    with pytest.raises(StoreError, match="database") as info:
        PgVectorStore(dsn.rsplit("/", 1)[0] + "/no_such_db_here")
    assert "pw-not-shown" not in str(info.value)
    with PgVectorStore(dsn, schema=f"t_{uuid.uuid4().hex[:8]}") as s:
        assert "pw-not-shown" not in repr(s) and "***" in repr(s)
        drop_schema(postgres_dsn, s.schema)


def test_missing_vector_extension(postgres_dsn: str) -> None:
    db = f"novec_{uuid.uuid4().hex[:8]}"
    dsn = create_database(postgres_dsn, db, with_vector=False)
    with pytest.raises(StoreError, match="CREATE EXTENSION vector"):
        PgVectorStore(dsn, create_extension=False)
    # By default the store enables it (allowed here: the test user is a superuser).
    with PgVectorStore(dsn) as s:
        assert s.pgvector_version.startswith("0.8")
    assert sql_rows(dsn, "SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]


def test_closed_store_refuses_work(postgres_dsn: str, schema: str) -> None:
    s = PgVectorStore(postgres_dsn, schema=schema)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.list_collections()
