"""Existing PostgreSQL tables served in place as semkit collections (``Database.attach``).

A user's pgvector table (the classic ``documents(id serial primary key, content text,
embedding vector(384))``, a Supabase table with a ``metadata jsonb`` column...) becomes a
collection without copying a row: semkit remembers the attachment — which table, which columns
— in its registry (``semkit_collections``: ``table_name`` is ``attached:<name>`` and the spec's
JSON holds an ``Attachment`` under ``attachment``), and ``PgVectorStore`` hands every
operation on that collection to ``AttachedTable``, which runs it on the user's table.

What maps to what:

- **ids**: the id column may be ``smallint``/``integer``/``bigint`` (serial or identity),
  ``uuid`` or ``text``/``varchar``, with a primary key or a unique constraint on it alone.
  Collection ids are strings: PostgreSQL's text form of the value (``'42'``, a lower-case
  hyphenated uuid). Other spellings (``'042'``, upper-case uuids) are refused, so one record
  never has two ids. Integer ids written by semkit advance the column's sequence past them, so
  plain ``INSERT``\\s that rely on the serial default keep working.
- **metadata**: a ``jsonb`` column (``metadata=``), plus any other columns named in
  ``columns=``, which appear as metadata fields (a NULL column is an absent field). Filters
  work on both; upserted metadata fields named like a listed column are written to that column
  (cast to its type), the rest to the ``jsonb`` column.
- **vectors**: a ``vector(n)`` or ``halfvec(n)`` column, ``n`` equal to the model's dimensions
  (a column without a declared size is checked on its rows). The metric is the one of the
  column's HNSW/IVFFlat index when it has one (``vector_cosine_ops`` → cosine...), else cosine.
  Cosine search is the ``<=>`` operator, so rows stored unnormalised rank correctly; rows
  semkit writes are unit vectors, as in its own tables.
- **keyword search**: a ``tsvector`` column (``fts=``), else ``to_tsvector(config, text)``
  computed per query — an expression index (``fts_index_sql``; ``create_fts_index=True`` or
  ``semkit attach --create-fts-index`` creates it) makes that fast. Nothing else about the
  user's table is ever altered.

Dropping an attached collection forgets the attachment; the table and its rows stay.
Re-embedding one is refused (semkit does not rewrite a table it does not own).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from psycopg import sql

from ..errors import CannotAttach, CollectionExists, DimensionMismatch, InvalidInput
from ..types import Matrix, Metric
from . import base
from .base import CollectionSpec, Neighbors, Record
from .filters import Node
from .pg_read import Knn, copy_record, keyset_scan, occurrences, record_from_row
from .pg_sql import REGISTRY_TABLE, compile_filter, keyword_tsquery, quote_ident, refuse_nul

if TYPE_CHECKING:
    import psycopg

    from .pgvector import PgVectorStore

ATTACHED_PREFIX = "attached:"
"""``table_name`` of an attached collection in the registry: never a real table name, so no
code path that drops a collection's table can reach the user's table."""

IdKind = Literal["integer", "uuid", "text"]
T = TypeVar("T")

_ID_KINDS: dict[str, IdKind] = {
    "int2": "integer", "int4": "integer", "int8": "integer",
    "uuid": "uuid", "text": "text", "varchar": "text", "bpchar": "text",
}
_INTEGER_LIMITS = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_ID_ARRAY = {"integer": "bigint[]", "uuid": "uuid[]", "text": "text[]"}
_OPCLASS_METRIC: dict[str, Metric] = {"cosine_ops": "cosine", "ip_ops": "dot", "l2_ops": "l2"}
_CANONICAL_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


@dataclass(frozen=True)
class Attachment:
    """Which table and columns an attached collection is, as recorded in the registry."""

    schema: str
    table: str
    id: str
    id_type: str
    """``format_type`` of the id column: ``integer``, ``bigint``, ``uuid``, ``text``..."""
    id_kind: IdKind
    text: str
    vector: str
    vector_type: Literal["vector", "halfvec"]
    metadata: str | None
    metadata_not_null: bool
    columns: tuple[tuple[str, str], ...]
    """Columns shown as metadata fields: ``(name, format_type)``."""
    fts: str | None
    text_search_config: str
    indexed: bool
    """Whether the vector column has an HNSW/IVFFlat index for the collection's metric."""
    overriding: bool
    """An ``identity ALWAYS`` id column: explicit ids need ``OVERRIDING SYSTEM VALUE``."""
    sequence: str | None
    """The id column's sequence (serial or identity), advanced past ids semkit writes."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        fields = dict(data)
        fields["columns"] = tuple((str(n), str(t)) for n, t in fields.get("columns") or ())
        return cls(**fields)

    # --- SQL fragments (identifiers quoted; the table is aliased ``t``) ------------------

    @functools.cached_property
    def relation(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @functools.cached_property
    def display(self) -> str:
        """``schema.table`` for messages, quoted only where SQL would need it."""
        return f"{_sql_name(self.schema)}.{_sql_name(self.table)}"

    @functools.cached_property
    def source(self) -> str:
        return f"{self.relation} AS t"

    @functools.cached_property
    def id_column(self) -> str:
        return "t." + quote_ident(self.id)

    @property
    def id_array(self) -> str:
        """The array type ids are bound as: comparing with it keeps the id index usable."""
        return _ID_ARRAY[self.id_kind]

    @functools.cached_property
    def vector_column(self) -> str:
        return "t." + quote_ident(self.vector)

    @functools.cached_property
    def metadata_sql(self) -> str:
        """The record's metadata as one ``jsonb`` object: the filters' target."""
        parts = []
        if self.metadata is not None:
            column = "t." + quote_ident(self.metadata)
            parts.append(column if self.metadata_not_null else f"coalesce({column}, '{{}}'::jsonb)")
        if self.columns:
            pairs = ", ".join(f"{_literal(name)}, t.{quote_ident(name)}" for name, _ in self.columns)
            parts.append(f"jsonb_strip_nulls(jsonb_build_object({pairs}))")
        return " || ".join(parts) if parts else "'{}'::jsonb"

    @functools.cached_property
    def fts_sql(self) -> str:
        if self.fts is not None:
            return "t." + quote_ident(self.fts)
        return _tsvector_expression(self, "t.")

    @functools.cached_property
    def read_columns(self) -> str:
        """``id, text, metadata`` as ``pg_read.record_from_row`` reads them."""
        return f"{self.id_column}::text, t.{quote_ident(self.text)}, {self.metadata_sql}"

    def read_vector(self) -> str:
        return f"{self.vector_column}::vector" if self.vector_type == "halfvec" else self.vector_column

    # --- ids ----------------------------------------------------------------------------

    def check_ids(self, ids: Sequence[str]) -> list[str]:
        """The ids, refused unless each is the text form PostgreSQL gives the id column."""
        for record_id in ids:
            if self.id_kind == "integer":
                limit = _INTEGER_LIMITS.get(self.id_type, 2**63)
                if not _CANONICAL_INTEGER.fullmatch(record_id) or not -limit <= int(record_id) < limit:
                    raise InvalidInput(
                        f"id {record_id!r} is not an id of {self.display}: its column {self.id!r} is "
                        f"{self.id_type}, so ids are integers written plainly, like '42'"
                    )
            elif self.id_kind == "uuid":
                try:
                    canonical = str(uuid.UUID(record_id))
                except ValueError:
                    canonical = None
                if canonical != record_id:
                    hint = f"; write it {canonical!r}" if canonical else ""
                    raise InvalidInput(
                        f"id {record_id!r} is not an id of {self.display}: its column {self.id!r} is "
                        f"uuid, so ids are lower-case hyphenated uuids{hint}"
                    )
        return list(ids)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _tsvector_expression(attachment: Attachment, prefix: str) -> str:
    # One spelling for the query and the index, so the planner matches them.
    return (f"to_tsvector({_literal(attachment.text_search_config)}::regconfig, "
            f"coalesce({prefix}{quote_ident(attachment.text)}, ''::text))")


def fts_index_sql(attachment: Attachment) -> str:
    """The expression index that makes keyword search on an attached table fast (semkit runs
    it only when asked: ``create_fts_index=True``)."""
    name = quote_ident(f"{attachment.table[:40]}_semkit_fts")
    return (f"CREATE INDEX IF NOT EXISTS {name} ON {attachment.relation} "
            f"USING gin (({_tsvector_expression(attachment, '')}))")


# --- attaching: read the catalogue, refuse what cannot be served ------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    number: int
    type: str
    """``format_type``: ``vector(384)``, ``integer``, ``character varying(64)``..."""
    base: str
    """The type's name in ``pg_type``: ``vector``, ``int4``, ``varchar``..."""
    typmod: int
    not_null: bool
    identity: str
    generated: str


def inspect_table(
    conn: psycopg.Connection[Any], store: PgVectorStore, *, table: str, id: str, text: str, vector: str,
    metadata: str | None, columns: Sequence[str], fts: str | None, metric: Metric | None,
    dimensions: int | None,
) -> tuple[Attachment, int, Metric]:
    """The attachment of ``table`` with those columns, its dimensions and metric; or
    ``CannotAttach``/``DimensionMismatch`` saying why the table cannot be served."""
    oid, schema, relname = _resolve(conn, table)
    described = _describe(conn, oid)
    where = f"{quote_ident(schema)}.{quote_ident(relname)}"
    registered = _semkit_tables(conn, store)
    if schema == store.schema and relname in registered:
        raise CannotAttach(f"{where} is semkit's own table of collection {registered[relname]!r}; open it "
                           f"with db.collection({registered[relname]!r})")

    def column(name: str, role: str) -> _Column:
        if name not in described:
            raise CannotAttach(f"{where} has no column {name!r} (for the {role}); its columns: "
                               f"{', '.join(described)}")
        return described[name]

    id_col = column(id, "id")
    id_kind = _ID_KINDS.get(id_col.base)
    if id_kind is None:
        raise CannotAttach(f"the id column {id!r} of {where} is {id_col.type}; semkit serves integer, uuid "
                           "and text ids")
    if id not in _unique_columns(conn, oid):
        raise CannotAttach(
            f"the id column {id!r} of {where} has no primary key or unique constraint, which upserts by id "
            f"need; add one: ALTER TABLE {where} ADD PRIMARY KEY ({quote_ident(id)});"
        )
    text_col = column(text, "text")
    if text_col.base not in ("text", "varchar", "bpchar"):
        raise CannotAttach(f"the text column {text!r} of {where} is {text_col.type}, not text")
    vector_col = column(vector, "vectors")
    if vector_col.base not in ("vector", "halfvec"):
        found = [c.name for c in described.values() if c.base in ("vector", "halfvec")]
        raise CannotAttach(
            f"the column {vector!r} of {where} is {vector_col.type}, not a pgvector vector or halfvec column"
            + (f"; its vector columns: {', '.join(found)}" if found else "; it has no vector column")
        )
    dims = _dimensions(conn, where, vector_col, dimensions)
    metadata_col = None if metadata is None else column(metadata, "metadata")
    if metadata_col is not None and metadata_col.base != "jsonb":
        raise CannotAttach(f"the metadata column {metadata!r} of {where} is {metadata_col.type}; semkit reads "
                           "metadata from a jsonb column (ALTER TABLE ... ALTER COLUMN ... TYPE jsonb)")
    taken = {id, text, vector, metadata}
    extra = []
    for name in columns:
        if name in taken:
            raise CannotAttach(f"column {name!r} is already the id, text, vector or metadata column; "
                               "list other columns in columns=")
        extra.append((name, column(name, "metadata fields").type))
        taken.add(name)
    fts_col = None if fts is None else column(fts, "keyword search")
    if fts_col is not None and fts_col.base != "tsvector":
        raise CannotAttach(f"the keyword-search column {fts!r} of {where} is {fts_col.type}, not tsvector")
    index_metrics = _index_metrics(conn, oid, vector_col.number)
    chosen: Metric = metric or (index_metrics[0] if index_metrics else "cosine")
    sequence = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (where, id)).fetchone()[0]  # type: ignore[index]
    attachment = Attachment(
        schema=schema, table=relname, id=id, id_type=id_col.type, id_kind=id_kind, text=text, vector=vector,
        vector_type="halfvec" if vector_col.base == "halfvec" else "vector",
        metadata=metadata, metadata_not_null=bool(metadata_col and metadata_col.not_null),
        columns=tuple(extra), fts=fts, text_search_config=store.text_search_config,
        indexed=chosen in index_metrics, overriding=id_col.identity == "a", sequence=sequence,
    )
    return attachment, dims, chosen


def _resolve(conn: psycopg.Connection[Any], table: str) -> tuple[int, str, str]:
    """``table`` as SQL would name it (``documents``, ``public.documents``, ``"MyTable"``)."""
    try:
        row = conn.execute(
            "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)", (table,),
        ).fetchone()
    except Exception as exc:  # an unparsable name: PostgreSQL's own words say why
        raise CannotAttach(f"{table!r} is not a table name: {str(exc).strip()}") from None
    if row is None:
        raise CannotAttach(f"no table {table!r} in the database's search_path; name it as SQL would "
                           "(schema.table, with double quotes around mixed-case names)")
    if row[3] not in ("r", "p"):
        raise CannotAttach(f"{table!r} is not a table (a view or another kind of relation); attach the "
                           "table it reads from")
    return int(row[0]), str(row[1]), str(row[2])


def _describe(conn: psycopg.Connection[Any], oid: int) -> dict[str, _Column]:
    rows = conn.execute(
        "SELECT a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod, "
        "a.attnotnull, a.attidentity, a.attgenerated FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", (oid,),
    ).fetchall()
    return {r[0]: _Column(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows}


def _unique_columns(conn: psycopg.Connection[Any], oid: int) -> set[str]:
    """Columns with a primary key or a unique index on them alone (what ON CONFLICT needs)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = i.indkey[0] WHERE i.indrelid = %s AND i.indisunique AND i.indimmediate "
        "AND i.indnkeyatts = 1 AND i.indpred IS NULL AND i.indexprs IS NULL", (oid,),
    ).fetchall()
    return {r[0] for r in rows}


def _index_metrics(conn: psycopg.Connection[Any], oid: int, attnum: int) -> list[Metric]:
    """The metrics the column's ANN indexes serve, from their operator classes."""
    rows = conn.execute(
        "SELECT o.opcname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_am am ON am.oid = ic.relam JOIN pg_opclass o ON o.oid = i.indclass[0] "
        "WHERE i.indrelid = %s AND i.indkey[0] = %s AND i.indnkeyatts = 1 AND i.indpred IS NULL "
        "AND am.amname IN ('hnsw', 'ivfflat') ORDER BY ic.relname", (oid, attnum),
    ).fetchall()
    found: list[Metric] = []
    for (opclass,) in rows:
        metric = next((m for suffix, m in _OPCLASS_METRIC.items() if opclass.endswith("_" + suffix)), None)
        if metric is not None and metric not in found:
            found.append(metric)
    return found


def _dimensions(conn: psycopg.Connection[Any], where: str, column: _Column, wanted: int | None) -> int:
    """The vector column's dimensions, checked against the model's (``wanted``)."""
    if column.typmod > 0:
        declared = column.typmod
    else:
        # vector without a size: every row must have the same one.
        low, high = conn.execute(
            f"SELECT min(vector_dims(t.{quote_ident(column.name)})), max(vector_dims(t.{quote_ident(column.name)})) "
            f"FROM {where} AS t"
        ).fetchone()  # type: ignore[misc]
        if low != high:
            raise CannotAttach(f"the vectors in {where}.{column.name} have {low} to {high} dimensions; a collection "
                               "holds vectors of one size")
        if low is None and wanted is None:
            raise CannotAttach(f"{where}.{column.name} declares no size and holds no rows; pass the model whose "
                               "vectors it will hold")
        declared = int(low) if low is not None else int(wanted)  # type: ignore[arg-type]
    if wanted is not None and wanted != declared:
        raise DimensionMismatch(declared, wanted, f"table {where} (column {column.name!r} is {column.type}; "
                                                  "attach it with the model that made its vectors)")
    return declared


def _semkit_tables(conn: psycopg.Connection[Any], store: PgVectorStore) -> dict[str, str]:
    """semkit's own tables in the store's schema (the registry and the collections' tables)."""
    registry = f"{quote_ident(store.schema)}.{REGISTRY_TABLE}"
    rows = conn.execute(f"SELECT table_name, name FROM {registry}").fetchall()
    return {REGISTRY_TABLE: "(the registry)", **{r[0]: r[1] for r in rows}}


def foreign_table(conn: psycopg.Connection[Any], store: PgVectorStore, name: str) -> tuple[int, str] | None:
    """The table that ``name`` names in SQL (the search_path, or the store's schema) when it is
    not one of semkit's — creating a collection of that name would hide it behind an empty
    one — as its oid and its name for messages."""
    candidates = [quote_ident(name), f"{quote_ident(store.schema)}.{quote_ident(name)}"]
    if name != name.lower():
        candidates.append(quote_ident(name.lower()))  # what an unquoted name in SQL folds to
    own = _semkit_tables(conn, store)
    for candidate in candidates:
        row = conn.execute(
            "SELECT c.oid, n.nspname, c.relname, c.oid = to_regclass(quote_ident(c.relname)) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema')", (candidate,),
        ).fetchone()
        if row is not None and not (row[1] == store.schema and row[2] in own):
            # Schema-qualified only when the search_path does not find it by its name alone.
            parts = (row[2],) if row[3] else (row[1], row[2])
            return int(row[0]), ".".join(_sql_name(p) for p in parts)
    return None


def _sql_name(name: str) -> str:
    """An identifier as SQL text, quoted only when it has to be."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else quote_ident(name)


def attach_hint(conn: psycopg.Connection[Any], name: str, oid: int, table: str) -> str:
    """The ``attach`` call that would serve table ``oid``, its columns guessed from their types."""
    described = _describe(conn, oid)
    unique = _unique_columns(conn, oid)

    def first(kinds: tuple[str, ...], exclude: frozenset[str] = frozenset()) -> _Column | None:
        return next((c for c in described.values() if c.base in kinds and c.name not in exclude), None)

    id_col = next((c for c in described if c in unique), None) or "ID_COLUMN"
    text_col = first(("text", "varchar"), frozenset({id_col}))
    vector_col = first(("vector", "halfvec"))
    metadata_col = first(("jsonb",))
    text = text_col.name if text_col else "TEXT_COLUMN"
    vector = vector_col.name if vector_col else "VECTOR_COLUMN"
    # The bundled model makes 384-dimensional vectors; other sizes come from another model.
    model = "local" if vector_col is not None and vector_col.typmod == 384 else "MODEL"
    meta = f", metadata={metadata_col.name!r}" if metadata_col else ""
    cli_meta = f" --metadata {metadata_col.name}" if metadata_col else ""
    return (f"db.attach({name!r}, table={table!r}, id={id_col!r}, text={text!r}, vector={vector!r}{meta}, "
            f"model={model!r}) or: semkit attach {name} --table '{table}' --id {id_col} --text {text} "
            f"--vector {vector}{cli_meta} --model {model} --db URI")


# --- serving: every collection operation, on the user's table ---------------------------


@dataclass(frozen=True)
class _Target:
    """What ``pg_read.Knn`` reads of a collection, for an attached table."""

    spec: CollectionSpec
    qualified: str
    vector_type: str
    indexable: bool


class _AttachedKnn(Knn):
    """``Knn`` (HNSW or exact, iterative scans, the exact retry) over the user's columns."""

    def __init__(self, store: PgVectorStore, spec: CollectionSpec, attachment: Attachment, where: Node | None,
                 k: int, ef: int | None) -> None:
        target = _Target(spec, attachment.source, attachment.vector_type, attachment.indexed)
        super().__init__(store, target, None, k, ef)  # type: ignore[arg-type]
        self.where, self.attachment = where, attachment
        self.clause, self.params = compile_filter(where, attachment.metadata_sql)
        self.id_column, self.id_cast = attachment.id_column, "::text"
        self.vector_column = attachment.vector_column

    def with_records(self, include_vectors: bool) -> Knn:
        """The hits' text and metadata from the user's columns, read by the k-NN statement."""
        a = self.attachment
        self.record_columns = (f", t.{quote_ident(a.text)}, {a.metadata_sql}"
                               + (f", {a.read_vector()}" if include_vectors else ""))
        self.record_vectors = include_vectors
        return self


class AttachedTable:
    """The ``VectorStore`` operations of one attached collection (``PgVectorStore`` delegates)."""

    def __init__(self, store: PgVectorStore, spec: CollectionSpec, attachment: Attachment) -> None:
        self.store, self.spec, self.attachment = store, spec, attachment
        self.name = spec.name

    def _session(self, action: str) -> Any:
        return self.store._session(f"{action} {self.name!r} (table {self.attachment.display})", self.name)

    # --- writes -------------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: Matrix, texts: Sequence[str | None] | None,
               metadata: Sequence[Mapping[str, Any]] | None) -> None:
        a = self.attachment
        rows = base.prepare_rows(self.spec, ids, vectors, texts, metadata, check_string=refuse_nul)
        if not rows.ids:
            return
        a.check_ids(rows.ids)
        self._check_fields(rows.ids, rows.metadata)
        targets = [quote_ident(a.id), quote_ident(a.text), quote_ident(a.vector)]
        values = [f"s.id::{a.id_type}", "s.content",
                  "s.embedding::halfvec" if a.vector_type == "halfvec" else "s.embedding"]
        meta = "s.metadata::jsonb"
        if a.metadata is not None:
            targets.append(quote_ident(a.metadata))
            values.append(self._own_fields(meta))
        for name, type_ in a.columns:
            targets.append(quote_ident(name))
            values.append(_field(meta, name, type_))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in targets[1:])
        insert = (
            f"INSERT INTO {a.relation} ({', '.join(targets)}) "
            f"{'OVERRIDING SYSTEM VALUE ' if a.overriding else ''}"
            f"SELECT {', '.join(values)} FROM semkit_attach_stage s "
            f"ON CONFLICT ({quote_ident(a.id)}) DO UPDATE SET {updates}"
        )
        with self._session("writing to") as conn, conn.transaction():
            conn.execute("CREATE TEMP TABLE semkit_attach_stage (id text, content text, metadata text, "
                         "embedding vector) ON COMMIT DROP")
            with conn.cursor() as cur:
                with cur.copy("COPY semkit_attach_stage FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "text", "text", "vector"])
                    for row in zip(rows.ids, rows.texts, rows.metadata, rows.vectors, strict=True):
                        copy.write_row(row)
                cur.execute(insert)
            if a.sequence is not None and a.id_kind == "integer":
                # Plain INSERTs take ids from the sequence: it must not hand out one semkit wrote.
                largest = max(int(i) for i in rows.ids)
                conn.execute("SELECT setval(%s::regclass, %s) WHERE %s > coalesce(pg_sequence_last_value("
                             "%s::regclass), 0)", (a.sequence, largest, largest, a.sequence))

    def update_metadata(self, ids: Sequence[str], metadata: Sequence[Mapping[str, Any]]) -> int:
        a = self.attachment
        ids, texts = base.prepare_metadata_update(ids, metadata, check_string=refuse_nul)
        if not ids:
            return 0
        a.check_ids(ids)
        self._check_fields(ids, texts)
        assignments = [f"{quote_ident(a.metadata)} = {self._own_fields('u.m')}"] if a.metadata else []
        assignments += [f"{quote_ident(n)} = {_field('u.m', n, t)}" for n, t in a.columns]
        source = "unnest(%s::text[], %s::jsonb[]) AS u(id, m)"
        if not assignments:  # nothing to store: report which records exist, write nothing
            query = f"SELECT count(*) FROM {a.source}, {source} WHERE {a.id_column} = u.id::{a.id_type}"
            with self._session("updating metadata in") as conn:
                return int(conn.execute(query, (ids, texts)).fetchone()[0])  # type: ignore[index]
        query = (f"UPDATE {a.source} SET {', '.join(assignments)} FROM {source} "
                 f"WHERE {a.id_column} = u.id::{a.id_type}")
        with self._session("updating metadata in") as conn:
            return conn.execute(query, (ids, texts)).rowcount

    def _own_fields(self, meta: str) -> str:
        """The metadata fields that go to the jsonb column: all but those of listed columns."""
        names = [n for n, _ in self.attachment.columns]
        return f"({meta} - ARRAY[{', '.join(_literal(n) for n in names)}]::text[])" if names else meta

    def _check_fields(self, ids: Sequence[str], metadata: Sequence[str]) -> None:
        a = self.attachment
        if a.metadata is not None:
            return
        allowed = {n for n, _ in a.columns}
        for record_id, text in zip(ids, metadata, strict=True):
            unknown = sorted(set(json.loads(text)) - allowed)
            if unknown:
                listed = f"its metadata columns are {', '.join(sorted(allowed))}" if allowed else "it has none"
                raise InvalidInput(
                    f"metadata for id {record_id!r} has field(s) {', '.join(unknown)} that {a.display} cannot "
                    f"store ({listed}); attach it with metadata= (a jsonb column) or columns=[...] to store them"
                )

    def delete(self, ids: Sequence[str] | None, where: Node | None) -> int:
        a = self.attachment
        base.check_delete(ids, where)
        clause, params = compile_filter(where, a.metadata_sql)
        if ids is not None:
            ids = a.check_ids(list(ids))
            if not ids:
                return 0
            clause = f"{a.id_column} = ANY(%s::{a.id_array}) AND {clause}"
            params = [ids, *params]
        with self._session("deleting from") as conn:
            return conn.execute(f"DELETE FROM {a.source} WHERE {clause}", params).rowcount

    # --- reads --------------------------------------------------------------------------

    def get(self, ids: Sequence[str], include_vectors: bool) -> list[Record]:
        a = self.attachment
        ids = a.check_ids(list(ids))
        if not ids:
            return []
        columns = a.read_columns + (f", {a.read_vector()}" if include_vectors else "")
        query = f"SELECT {columns} FROM {a.source} WHERE {a.id_column} = ANY(%s::{a.id_array})"
        with self._session("reading from") as conn:
            found = {row[0]: record_from_row(row, include_vectors) for row in conn.execute(query, (ids,))}
        return [found[i] if j == 0 else copy_record(found[i]) for i, j in occurrences(ids) if i in found]

    def texts(self, ids: Sequence[str]) -> dict[str, str | None]:
        a = self.attachment
        ids = a.check_ids(list(ids))
        if not ids:
            return {}
        query = (f"SELECT {a.id_column}::text, t.{quote_ident(a.text)} FROM {a.source} "
                 f"WHERE {a.id_column} = ANY(%s::{a.id_array})")
        with self._session("reading texts from") as conn:
            return {row[0]: row[1] for row in conn.execute(query, (ids,))}

    def count(self, where: Node | None) -> int:
        a = self.attachment
        clause, params = compile_filter(where, a.metadata_sql)
        with self._session("counting") as conn:
            return int(conn.execute(f"SELECT count(*) FROM {a.source} WHERE {clause}", params).fetchone()[0])  # type: ignore[index]

    def scan(self, batch_size: int, include_vectors: bool, where: Node | None) -> Iterator[list[Record]]:
        a = self.attachment
        base.check_batch_size(batch_size)
        clause, params = compile_filter(where, a.metadata_sql)
        columns = a.read_columns + (f", {a.read_vector()}" if include_vectors else "")
        # Keyset pagination in the id column's own order.
        first = f"SELECT {columns} FROM {a.source} WHERE {clause} ORDER BY {a.id_column} LIMIT %s"
        after = (f"SELECT {columns} FROM {a.source} WHERE {a.id_column} > %s::{a.id_type} AND {clause} "
                 f"ORDER BY {a.id_column} LIMIT %s")

        def fetch(conn: psycopg.Connection[Any], last: str | None) -> list[tuple[Any, ...]]:
            if last is None:
                return conn.execute(first, [*params, batch_size]).fetchall()
            return conn.execute(after, [last, *params, batch_size]).fetchall()

        return keyset_scan(lambda: self._session("scanning"), fetch, batch_size, include_vectors)

    # Searches go through ``store._search``: to a read replica when the store has any, with
    # the same lag, read-your-writes and fallback rules as semkit's own tables (pg_replicas).

    def _search(self, action: str, run: Callable[[psycopg.Connection[Any]], T]) -> T:
        return self.store._search(f"{action} {self.name!r} (table {self.attachment.display})",  # type: ignore[no-any-return]
                                  self.name, run)

    def query(self, queries: np.ndarray, k: int, where: Node | None, exact: bool,
              ef: int | None) -> list[Neighbors]:
        knn = _AttachedKnn(self.store, self.spec, self.attachment, where, k, ef)
        return self._search("querying", lambda conn: knn.answer(conn, queries, exact))

    def query_records(self, queries: np.ndarray, k: int, where: Node | None, exact: bool, ef: int | None,
                      include_vectors: bool) -> list[list[tuple[Record, float]]]:
        """``query`` with the hits' records, in the same statement: one round trip, and the
        records come from the server that ranked them (a replica, or the primary)."""
        knn = _AttachedKnn(self.store, self.spec, self.attachment, where, k, ef).with_records(include_vectors)
        return self._search("querying", lambda conn: knn.answer_records(conn, queries, exact))

    def explain(self, queries: np.ndarray, k: int, where: Node | None, exact: bool, ef: int | None,
                analyze: bool) -> str:
        knn = _AttachedKnn(self.store, self.spec, self.attachment, where, k, ef)
        with self._session("explaining a query on") as conn:
            return knn.plan(conn, queries, exact, analyze)

    def keyword_query(self, text: str, k: int, where: Node | None) -> Neighbors:
        a = self.attachment
        base.check_k(k)
        tsquery = keyword_tsquery(text)
        if tsquery is None:
            return Neighbors([], np.zeros(0, dtype=np.float32))
        clause, params = compile_filter(where, a.metadata_sql)
        query = (f"SELECT {a.id_column}::text, ts_rank({a.fts_sql}, q, 1) AS score FROM {a.source}, "
                 f"to_tsquery({_literal(a.text_search_config)}::regconfig, %s) q "
                 f"WHERE {a.fts_sql} @@ q AND {clause} ORDER BY score DESC, {a.id_column} LIMIT %s")
        rows = self._search("keyword search in",
                            lambda conn: conn.execute(query, [tsquery, *params, int(k)]).fetchall())
        return Neighbors([r[0] for r in rows], np.asarray([r[1] for r in rows], dtype=np.float32))


def _field(meta: str, name: str, type_: str) -> str:
    """A metadata field cast to its column's type (JSON for json/jsonb columns)."""
    if type_ in ("json", "jsonb"):
        return f"({meta} -> {_literal(name)})::{type_}"
    return f"({meta} ->> {_literal(name)})::{type_}"


# --- the registry row ---------------------------------------------------------------------


def recorded_attachment(spec_json: Mapping[str, Any]) -> Attachment | None:
    """The attachment a registry row's spec records (``None``: one of semkit's own tables).

    It sits in the spec's JSON under ``attachment``, which ``CollectionSpec.from_json``
    ignores: the registry keeps its layout, and older semkit versions read such a row as a
    collection whose table (``attached:<name>``) does not exist — never as the user's table.
    """
    data = spec_json.get("attachment")
    return None if data is None else Attachment.from_json(data)


def register(conn: psycopg.Connection[Any], store: PgVectorStore, spec: CollectionSpec,
             attachment: Attachment) -> CollectionSpec:
    """Record the attachment (idempotent for the same table and columns); the spec in force."""
    registry = sql.SQL("{}.{}").format(sql.Identifier(store.schema), sql.Identifier(REGISTRY_TABLE))
    row = conn.execute(sql.SQL("SELECT spec FROM {} WHERE name = %s").format(registry), (spec.name,)).fetchone()
    if row is not None:
        recorded = recorded_attachment(row[0])
        if recorded == attachment and CollectionSpec.from_json(row[0]).fingerprint() == spec.fingerprint():
            return CollectionSpec.from_json(row[0])
        what = f"attached to {recorded.display}" if recorded else "a semkit table"
        raise CollectionExists(
            f"collection {spec.name!r} already exists ({what}); choose another name, or forget it first with "
            f"db.drop({spec.name!r}) (for an attached table that leaves the table and its rows alone)"
        )
    conn.execute(
        sql.SQL("INSERT INTO {} (name, table_name, spec, text_search_config) VALUES (%s, %s, %s, %s)").format(registry),
        (spec.name, ATTACHED_PREFIX + spec.name, json.dumps({**spec.to_json(), "attachment": attachment.to_json()}),
         attachment.text_search_config),
    )
    return spec


__all__ = ["ATTACHED_PREFIX", "AttachedTable", "Attachment", "fts_index_sql"]
