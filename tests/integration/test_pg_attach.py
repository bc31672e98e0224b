"""Existing pgvector tables served in place (``Database.attach``), on a real PostgreSQL.

The tables are made the way their owners make them — plain SQL, serial or uuid ids, vectors of
the bundled model inserted as SQL literals (some not unit length, as seed scripts leave them) —
and every answer is checked against PostgreSQL's own brute-force ``ORDER BY embedding <=> q``.
Each test gets a fresh database, so tables sit in ``public`` where users have them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
import pytest

import semkit
from semkit import apps
from semkit.errors import CannotAttach, CollectionExists, ConfigError, DimensionMismatch, InvalidInput, TableNotAttached
from semkit.models.build import resolve_model
from tests.e2e.test_cli import run
from tests.support.pgserver import create_database
from tests.support.shared_data import banking_sample

pytestmark = pytest.mark.postgres

SEED_TABLE = """CREATE TABLE documents (
    id serial PRIMARY KEY,
    content text NOT NULL,
    category text,
    embedding vector(384))"""
QUERY = "my card was stolen, what should I do?"


@pytest.fixture(scope="module")
def model() -> Any:
    return resolve_model("local", None)


@pytest.fixture(scope="module")
def corpus(model: Any) -> tuple[list[str], list[str], np.ndarray]:
    """60 Banking77 texts, their categories and their vectors, scaled by 0.5 to 2.5: a seed
    script's unnormalised vectors, which cosine search must rank all the same."""
    _, texts, metadata = banking_sample(60, "b")
    vectors = np.asarray(model.embed(texts, "document"), dtype=np.float32)
    scales = np.linspace(0.5, 2.5, len(texts), dtype=np.float32)[:, None]
    return texts, [m["category"] for m in metadata], vectors * scales


@pytest.fixture
def dsn(postgres_dsn: str) -> str:
    """A fresh database's URI (``semkit.connect`` takes URIs; create_database returns key=value)."""
    name = f"attach_{uuid.uuid4().hex[:10]}"
    create_database(postgres_dsn, name)
    return urlunsplit(urlsplit(postgres_dsn)._replace(path="/" + name))


def sql(dsn: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def literal(vector: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def seed_documents(dsn: str, corpus: tuple[list[str], list[str], np.ndarray]) -> None:
    texts, categories, vectors = corpus
    sql(dsn, SEED_TABLE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for text, category, vector in zip(texts, categories, vectors, strict=True):
            conn.execute("INSERT INTO documents (content, category, embedding) VALUES (%s, %s, %s::vector)",
                         (text, category, literal(vector)))


def checksum(dsn: str, table: str) -> str:
    return sql(dsn, f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t")[0][0]


def brute_force(dsn: str, query: np.ndarray, k: int, where: str = "TRUE",
                table: str = "documents") -> list[tuple[str, float]]:
    """PostgreSQL's own exact answer: (id, cosine similarity), best first."""
    rows = sql(dsn, f"SELECT id::text, embedding <=> %s::vector AS d FROM {table} WHERE {where} "
                    f"ORDER BY d, id LIMIT {k}", (literal(query),))
    return [(r[0], 1.0 - r[1]) for r in rows]


def attach_documents(db: semkit.Database, **options: Any) -> semkit.Collection:
    return db.attach("documents", table="documents", id="id", text="content", vector="embedding",
                     columns=["category"], model="local", **options)


def test_a_seed_table_is_searched_filtered_written_and_left_intact(
        dsn: str, corpus: tuple[list[str], list[str], np.ndarray], model: Any) -> None:
    seed_documents(dsn, corpus)
    before = checksum(dsn, "documents")
    indexes = sql(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'")
    with semkit.connect(dsn) as db:
        col = attach_documents(db)
        assert checksum(dsn, "documents") == before
        assert sql(dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'documents'") == indexes
        assert db.collections() == ["documents"] and len(col) == 60
        assert not sql(dsn, "SELECT 1 FROM pg_tables WHERE tablename LIKE 'semkit_documents%'")

        # Vector search: PostgreSQL's brute force, ids and scores.
        q = np.asarray(model.embed([QUERY], "query"), dtype=np.float32)[0]
        expected = brute_force(dsn, q, 10)
        hits = col.search(QUERY, k=10)
        assert [h.id for h in hits] == [i for i, _ in expected]
        assert np.allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)
        first = sql(dsn, "SELECT content, category FROM documents WHERE id = %s", (int(hits[0].id),))[0]
        assert (hits[0].text, hits[0].metadata) == (first[0], {"category": first[1]})

        # Filters on a column of the table.
        category = hits[0].metadata["category"]
        filtered = col.search(QUERY, k=5, where={"category": category})
        assert [h.id for h in filtered] == [i for i, _ in brute_force(dsn, q, 5, f"category = '{category}'")]
        others = col.count(where={"category": {"$ne": category}})
        assert others == sql(dsn, "SELECT count(*) FROM documents WHERE category <> %s", (category,))[0][0]

        # Keyword search: PostgreSQL full-text search on the text column, no index needed.
        matching = {r[0] for r in sql(dsn, "SELECT id::text FROM documents WHERE to_tsvector('english', "
                                           "content) @@ to_tsquery('english', 'card')")}
        keyword = col.keyword_search("card", k=5)
        assert len(keyword) == min(5, len(matching)) > 0 and {h.id for h in keyword} <= matching

        # Hybrid search through the apps: fused from those two lists.
        hybrid = apps.search(col, QUERY, k=5)
        candidates = {h.id for h in col.search(QUERY, k=50)} | {h.id for h in col.keyword_search(QUERY, k=50)}
        assert len(hybrid) == 5 and {h.id for h in hybrid} <= candidates

        # Upsert: a new row and an updated one, visible to plain SQL.
        col.upsert(ids=["1000"], texts=["I lost my credit card abroad"], metadata=[{"category": "lost_or_stolen_card"}])
        content, cat, distance = sql(dsn, "SELECT content, category, embedding <=> %s::vector FROM documents "
                                          "WHERE id = 1000", (literal(model.embed(["I lost my credit card abroad"],
                                                                                  "document")[0]),))[0]
        assert (content, cat) == ("I lost my credit card abroad", "lost_or_stolen_card") and distance < 1e-5
        col.upsert(ids=["1"], texts=["please close my account"])
        assert sql(dsn, "SELECT content, category FROM documents WHERE id = 1")[0] == (
            "please close my account", corpus[1][0])  # the category column kept
        # semkit advanced the serial's sequence past 1000: plain INSERTs keep working.
        (new_id,) = sql(dsn, "INSERT INTO documents (content, embedding) VALUES ('sql row', %s::vector) RETURNING id",
                        (literal(corpus[2][5]),))[0]
        assert new_id > 1000
        assert col.get([str(new_id)])[0].text == "sql row"

        # Delete by id and by filter, on the table itself.
        assert col.delete(ids=["2", "999999"]) == 1
        assert not sql(dsn, "SELECT 1 FROM documents WHERE id = 2")
        gone = col.delete(where={"category": category})
        assert gone > 0 and not sql(dsn, "SELECT 1 FROM documents WHERE category = %s", (category,))
        assert len(col) == sql(dsn, "SELECT count(*) FROM documents")[0][0] == 62 - 1 - gone

        with pytest.raises(InvalidInput, match="integers written plainly"):
            col.get(["abc"])
        with pytest.raises(InvalidInput, match="cannot store"):
            col.upsert(ids=["3"], texts=["x y"], metadata=[{"tags": ["a"]}])

    # Remembered: a new connection lists it and reopens it with its model; drop forgets it only.
    rows_now = checksum(dsn, "documents")
    with semkit.connect(dsn) as db:
        assert db.collections() == ["documents"]
        again = db.collection("documents")
        assert [h.id for h in again.search(QUERY, k=3)] == [i for i, _ in brute_force(dsn, q, 3)]
        with pytest.raises(CollectionExists):
            db.attach("documents", table="documents", id="id", text="content", vector="embedding", model="local")
        with pytest.raises(InvalidInput, match="attached table"):
            again.reembed("local")
        db.drop("documents")
        assert db.collections() == []
    assert checksum(dsn, "documents") == rows_now


def test_collection_on_a_user_table_points_to_attach(dsn: str, corpus: tuple[list[str], list[str], np.ndarray]) -> None:
    seed_documents(dsn, corpus)
    before = checksum(dsn, "documents")
    with semkit.connect(dsn) as db:
        for name in ("documents", "Documents"):  # "Documents" is what unquoted SQL folds to documents
            with pytest.raises(TableNotAttached) as info:
                db.collection(name, model="local")
            message = str(info.value)
            assert "db.attach(" in message and "id='id'" in message and "vector='embedding'" in message
            assert "text='content'" in message and "semkit attach" in message
        assert db.collections() == []
    assert not sql(dsn, "SELECT 1 FROM pg_tables WHERE tablename ILIKE 'semkit_documents%'")
    assert checksum(dsn, "documents") == before


def test_uuid_ids_a_jsonb_column_and_an_hnsw_index(dsn: str, corpus: tuple[list[str], list[str], np.ndarray],
                                                   model: Any) -> None:
    texts, categories, vectors = corpus
    sql(dsn, "CREATE TABLE kb (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), content text, metadata jsonb, "
             "embedding vector(384))")
    sql(dsn, "CREATE INDEX ON kb USING hnsw (embedding vector_cosine_ops)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n, (text, category, vector) in enumerate(zip(texts[:40], categories, vectors, strict=False)):
            conn.execute("INSERT INTO kb (content, metadata, embedding) VALUES (%s, %s::jsonb, %s::vector)",
                         (text, f'{{"category": "{category}", "n": {n}}}', literal(vector)))
    before = checksum(dsn, "kb")
    with semkit.connect(dsn) as db:
        col = db.attach("kb", table="public.kb", id="id", text="content", vector="embedding", metadata="metadata",
                        model="local")
        assert col.metric == "cosine"  # read from the index's operator class
        q = np.asarray(model.embed([QUERY], "query"), dtype=np.float32)[0]
        exact = col.search(QUERY, k=10, exact=True)
        assert [h.id for h in exact] == [i for i, _ in brute_force(dsn, q, 10, table="kb")]
        approximate = {h.id for h in col.search(QUERY, k=10)}
        assert len(approximate & {h.id for h in exact}) >= 9
        assert db.store.attachment("kb").indexed  # type: ignore[attr-defined]  # unfiltered queries may use it
        assert "on kb t" in db.store.explain("kb", q[None, :], k=5)  # type: ignore[attr-defined]
        first_ten = col.search(QUERY, k=5, where={"n": {"$lt": 10}})
        assert len(first_ten) == 5 and all(h.metadata["n"] < 10 for h in first_ten)
        assert col.count(where={"n": {"$gte": 30}}) == 10
        assert checksum(dsn, "kb") == before

        new = str(uuid.uuid4())
        col.upsert(ids=[new], texts=["how do I activate my new card"], metadata=[{"category": "activate_my_card"}])
        assert sql(dsn, "SELECT content, metadata FROM kb WHERE id = %s", (new,))[0] == (
            "how do I activate my new card", {"category": "activate_my_card"})
        col.upsert(ids=[new], metadata=[{"category": "card_arrival", "n": 99}])  # metadata only, no model call
        assert sql(dsn, "SELECT metadata FROM kb WHERE id = %s", (new,))[0][0] == {"category": "card_arrival", "n": 99}
        with pytest.raises(InvalidInput, match="lower-case hyphenated"):
            col.get([new.upper()])
        scanned = [r.id for batch in col.scan(batch_size=7) for r in batch]
        assert sorted(scanned) == sorted(r[0] for r in sql(dsn, "SELECT id::text FROM kb")) and len(scanned) == 41
        assert col.delete(ids=[new]) == 1 and len(col) == 40


def test_tables_it_cannot_serve_are_refused_with_the_reason(dsn: str) -> None:
    sql(dsn, "CREATE TABLE small (id bigint PRIMARY KEY, body text, embedding vector(3))")
    sql(dsn, "CREATE TABLE novec (id int PRIMARY KEY, body text, embedding real[])")
    sql(dsn, "CREATE TABLE nokey (id int, body text, embedding vector(384))")
    sql(dsn, "CREATE VIEW aview AS SELECT * FROM nokey")
    with semkit.connect(dsn) as db:
        def attach(table: str, **options: Any) -> Any:
            return db.attach("x", table=table, id=options.pop("id", "id"), text="body",
                             vector=options.pop("vector", "embedding"), model="local", **options)

        with pytest.raises(DimensionMismatch, match="3 dimensions"):
            attach("small")
        with pytest.raises(CannotAttach, match="not a pgvector vector"):
            attach("novec")
        with pytest.raises(CannotAttach, match="no primary key or unique constraint"):
            attach("nokey")
        with pytest.raises(CannotAttach, match="not a table"):
            attach("aview")
        with pytest.raises(CannotAttach, match="no column 'vec'"):
            attach("small", vector="vec")
        with pytest.raises(CannotAttach, match="no table"):
            attach("missing")
        assert db.collections() == []
        # Your own vectors (model=None) take the column's size.
        own = db.attach("small", table="small", id="id", text="body", vector="embedding", model=None)
        assert own.dimensions == 3 and own.spec.embedder is None
    with semkit.connect("memory://") as mem, pytest.raises(ConfigError, match="postgresql://"):
        mem.attach("x", table="t", id="id", text="body", vector="embedding", model=None)


def test_text_ids_halfvec_and_a_dot_product_index(dsn: str) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    sql(dsn, "CREATE TABLE items (sku varchar(20) PRIMARY KEY, title text, price int, emb halfvec(8))")
    sql(dsn, "CREATE INDEX items_emb_ip ON items USING hnsw (emb halfvec_ip_ops)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for n, vector in enumerate(vectors):
            conn.execute("INSERT INTO items VALUES (%s, %s, %s, %s::halfvec)", (f"sku-{n:02d}", f"item {n}", n * 10,
                                                                              literal(vector)))
    with semkit.connect(dsn) as db:
        col = db.attach("items", table="items", id="sku", text="title", vector="emb", columns=["price"], model=None)
        assert (col.metric, col.dimensions, col.spec.dtype) == ("dot", 8, "float16")
        q = rng.normal(size=8).astype(np.float32)
        expected = sql(dsn, "SELECT sku, (emb <#> %s::halfvec) * -1 FROM items WHERE price >= 100 "
                            "ORDER BY emb <#> %s::halfvec, sku LIMIT 5", (literal(q), literal(q)))
        hits = col.search(q, k=5, where={"price": {"$gte": 100}}, exact=True)
        assert [(h.id, round(h.score, 2)) for h in hits] == [(i, round(s, 2)) for i, s in expected]
        col.upsert(ids=["new-1"], vectors=[vectors[0] * 2], texts=["a new item"], metadata=[{"price": 5}])
        assert sql(dsn, "SELECT title, price FROM items WHERE sku = 'new-1'") == [("a new item", 5)]
        stored = col.get(["new-1"], include_vectors=True)[0]
        assert stored.metadata == {"price": 5} and np.allclose(stored.vector, vectors[0] * 2, atol=1e-2)
        col.upsert(ids=["sku-01"], metadata=[{"price": 7}])  # metadata only: an UPDATE of the column
        assert sql(dsn, "SELECT title, price FROM items WHERE sku = 'sku-01'") == [("item 1", 7)]
        with pytest.raises(InvalidInput, match="price"):
            col.upsert(ids=["new-2"], vectors=[vectors[1]], metadata=[{"colour": "red"}])


def test_plain_sql_on_semkit_tables_and_the_one_statement_migration(
        dsn: str, corpus: tuple[list[str], list[str], np.ndarray], model: Any) -> None:
    seed_documents(dsn, corpus)
    with semkit.connect(dsn) as db:
        docs = db.collection("docs", model="local")
        # Seed-style SQL on semkit's own table: the id has a default now.
        sql(dsn, "INSERT INTO semkit_docs (content, embedding) VALUES ('from sql', %s::vector)",
            (literal(corpus[2][0] / np.linalg.norm(corpus[2][0])),))
        (row_id,) = sql(dsn, "SELECT id FROM semkit_docs WHERE content = 'from sql'")[0]
        assert str(uuid.UUID(row_id)) == row_id and docs.get([row_id])[0].text == "from sql"
        sql(dsn, "DELETE FROM semkit_docs")
        # The migration from the docs, one statement, with l2_normalize for a cosine collection.
        sql(dsn, "INSERT INTO semkit_docs (id, content, metadata, embedding) "
                 "SELECT id::text, content, jsonb_build_object('category', category), l2_normalize(embedding) "
                 "FROM documents")
        assert len(docs) == 60
        norms = np.linalg.norm(np.stack([r.vector for b in docs.scan(include_vectors=True) for r in b]), axis=1)
        assert np.allclose(norms, 1.0, atol=1e-5)
        q = np.asarray(model.embed([QUERY], "query"), dtype=np.float32)[0]
        assert [h.id for h in docs.search(QUERY, k=10, exact=True)] == [i for i, _ in brute_force(dsn, q, 10)]
        assert [h.id for h in docs.search(QUERY, k=5, where={"category": corpus[1][0]}, exact=True)] == [
            i for i, _ in brute_force(dsn, q, 5, f"category = '{corpus[1][0]}'")]

        # Capitals are kept in the table name (quoted in SQL), never hashed.
        db.collection("MyDocs", model=None, dimensions=3).upsert(ids=["a"], vectors=[[1, 0, 0]])
        assert sql(dsn, 'SELECT id FROM "semkit_MyDocs"') == [("a",)]


def test_keyword_index_only_on_request_and_the_cli(dsn: str, corpus: tuple[list[str], list[str], np.ndarray]) -> None:
    seed_documents(dsn, corpus)
    with semkit.connect(dsn) as db:
        plain = attach_documents(db)
        without = [h.id for h in plain.keyword_search("card arrive", k=5)]
        db.drop("documents")
        indexed = attach_documents(db, create_fts_index=True)
        assert [h.id for h in indexed.keyword_search("card arrive", k=5)] == without and without
        (definition,) = sql(dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'documents_semkit_fts'")[0]
        assert "gin (to_tsvector('english'::regconfig, COALESCE(content, ''::text)))" in definition
        db.drop("documents")

    out = run("attach", "documents", "--table", "documents", "--id", "id", "--text", "content", "--vector",
              "embedding", "--column", "category", "--model", "local", "--db", dsn, "--json")
    assert '"count": 60' in out.stdout
    found = run("search", QUERY, "--db", dsn, "-c", "documents", "--mode", "vector", "-k", "3", "--json").stdout
    with semkit.connect(dsn) as db:
        assert [h.id for h in db.collection("documents").search(QUERY, k=3)] == [
            h["id"] for h in json.loads(found)]
    refused = run("attach", "small", "--table", "nope", "--id", "id", "--text", "t", "--vector", "v", "--model",
                  "local", "--db", dsn, check=False)
    assert refused.returncode != 0 and "no table 'nope'" in refused.stderr and "Traceback" not in refused.stderr
