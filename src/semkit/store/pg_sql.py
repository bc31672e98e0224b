"""Filter AST → PostgreSQL ``WHERE`` fragments over a ``metadata jsonb`` column, table naming,
and the text rules every PostgreSQL table shares (identifier quoting, NUL refusal, keyword
queries).

Pure string building (no psycopg import): each fragment uses ``%s`` placeholders and comes with
its parameter list, so values never enter the SQL text.

Why these operators give exactly ``filters.matches()`` semantics:

- ``$eq``/``$in`` use containment, ``metadata @> '{"a": {"b": v}}'``. For a scalar ``v``
  containment is true iff the value at that object path is ``v`` with the same JSON type
  (booleans are not numbers, ``1`` equals ``1.0``, ``null`` matches an explicit null only, an
  array holding ``v`` does not match, and an array never stands in for an object on the path).
  It is also what the GIN index on ``metadata`` accelerates.
- ``$ne``/``$nin`` are the negation, so a missing field matches (as in MongoDB).
- Ordering and ``$exists`` use SQL/JSON paths in *strict* mode: ``$."a"."b"`` only walks through
  objects (lax mode would unwrap arrays), comparisons between different JSON types are
  "unknown" (never true), and strings compare by code point whatever the database collation,
  like Python. ``@?`` returns NULL when a strict path does not exist, so the negated form is
  wrapped in ``coalesce``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from ..errors import InvalidFilter, InvalidInput
from .filters import And, Compare, Exists, Node, Or
from .keyword import query_terms

TABLE_PREFIX = "semkit_"
REGISTRY_TABLE = "semkit_collections"

_PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_ORDER_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def table_name(collection: str) -> str:
    """The table that holds a collection: ``semkit_<name>`` for names of letters, digits and
    ``_`` (up to 40 characters), capitals kept: ``MyDocs`` is ``"semkit_MyDocs"``, which SQL
    names with double quotes, as PostgreSQL wants for any mixed-case identifier (folding it to
    ``semkit_mydocs`` would collide with the collection ``mydocs``).

    Other names (punctuation, spaces, long names) get a readable slug plus a hash, so every
    collection name maps to a distinct identifier within PostgreSQL's 63-byte limit, leaving
    room for the index-name suffixes. Tables made before capitals were kept keep their hashed
    names: the registry records each collection's table.
    """
    candidate = TABLE_PREFIX + collection
    if _PLAIN_NAME.match(collection) and candidate != REGISTRY_TABLE:
        return candidate
    slug = re.sub(r"[^a-z0-9]+", "_", collection.lower()).strip("_")[:24] or "c"
    digest = hashlib.sha256(collection.encode("utf-8")).hexdigest()[:10]
    return f"{TABLE_PREFIX}{slug}_{digest}"


def index_names(table: str) -> dict[str, str]:
    return {
        "pkey": f"{table}_pkey",
        "hnsw": f"{table}_embedding_hnsw",
        "metadata": f"{table}_metadata_gin",
        "fts": f"{table}_fts_gin",
    }


def compile_filter(node: Node | None, column: str = "metadata") -> tuple[str, list[Any]]:
    """SQL boolean expression and its parameters; ``("TRUE", [])`` for no filter."""
    if node is None:
        return "TRUE", []
    params: list[Any] = []
    text = _compile(node, column, params)
    return text, params


def _compile(node: Node, col: str, params: list[Any]) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_compile(c, col, params) for c in node.clauses) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_compile(c, col, params) for c in node.clauses) + ")"
    if isinstance(node, Exists):
        params.append("strict " + _json_path(node.path))
        if node.present:
            return f"({col} @? %s::jsonpath)"
        return f"(NOT coalesce({col} @? %s::jsonpath, false))"
    return _compare(node, col, params)


def _compare(node: Compare, col: str, params: list[Any]) -> str:
    op = node.op
    if op in ("$eq", "$ne"):
        if not _storable(node.value):
            return "FALSE" if op == "$eq" else "TRUE"  # no stored value can equal it
        params.append(_containment(node.path, node.value))
        return f"({col} @> %s::jsonb)" if op == "$eq" else f"(NOT {col} @> %s::jsonb)"
    if op in ("$in", "$nin"):
        docs = [_containment(node.path, v) for v in node.value if _storable(v)]
        if not docs:
            return "FALSE" if op == "$in" else "TRUE"
        params.append(docs)
        return f"({col} @> ANY(%s::jsonb[]))" if op == "$in" else f"(NOT {col} @> ANY(%s::jsonb[]))"
    value = node.value
    path = "strict " + _json_path(node.path)
    if isinstance(value, float) and math.isinf(value):
        # Infinity cannot be stored in JSON: every number is below +inf and above -inf.
        above = (value > 0) == (op in ("$lt", "$lte"))
        if not above:
            return "FALSE"
        params.append(f'{path} ? (@.type() == "number")')
        return f"({col} @? %s::jsonpath)"
    params.append(f"{path} ? (@ {_ORDER_SQL[op]} {_path_literal(value, node)})")
    return f"({col} @? %s::jsonpath)"


def _storable(value: Any) -> bool:
    """False for values no stored metadata can hold (JSON has no Infinity)."""
    return not (isinstance(value, float) and math.isinf(value))


def _containment(path: tuple[str, ...], value: Any) -> str:
    _check_text(value, path)
    doc: Any = value
    for part in reversed(path):
        doc = {part: doc}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _json_path(path: tuple[str, ...]) -> str:
    # Field names are restricted by the parser to [A-Za-z0-9_-], so quoting is enough.
    return "$" + "".join(f'."{part}"' for part in path)


def _path_literal(value: Any, node: Compare) -> str:
    if isinstance(value, str):
        _check_text(value, node.path)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    # repr() keeps every digit of a float ("0.1", "1e-07"); SQL/JSON paths accept that syntax.
    return repr(float(value))


def _check_text(value: Any, path: tuple[str, ...]) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise InvalidFilter(
            f"field {'.'.join(path)!r}: PostgreSQL text cannot hold the NUL character (\\x00); "
            "remove it from the filter value"
        )


# --- text rules shared by semkit's tables and attached ones -------------------------------

_MAX_QUERY_WORDS = 256


def quote_ident(name: str) -> str:
    """SQL identifier quoting (names never hold NUL: collection names are checked)."""
    return '"' + name.replace('"', '""') + '"'


def refuse_nul(value: str, where: str) -> None:
    """The ``prepare_rows`` hook: PostgreSQL's text and jsonb cannot hold NUL characters."""
    if "\x00" in value:
        raise InvalidInput(f"{where} contains a NUL character (\\x00), which PostgreSQL cannot store")


def keyword_tsquery(text: str) -> str | None:
    """The ``to_tsquery`` text of a keyword query, ``None`` when it holds no word.

    Any word may match (OR), like BM25 engines: an AND query (websearch_to_tsquery) finds
    nothing for most natural-language questions. Quoted words go through the same stemming and
    stop-word list as the documents; \\w+ words hold no quote or backslash.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"keyword query must be a string, got {type(text).__name__}")
    if "\x00" in text:
        raise InvalidInput("the keyword query contains a NUL character (\\x00); remove it")
    words = query_terms(text)[:_MAX_QUERY_WORDS]
    return " | ".join(f"'{w}'" for w in words) if words else None


__all__ = ["REGISTRY_TABLE", "TABLE_PREFIX", "compile_filter", "index_names", "keyword_tsquery", "quote_ident",
           "refuse_nul", "table_name"]
