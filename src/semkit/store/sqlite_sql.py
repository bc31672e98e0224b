"""Compile the filter AST (``filters.py``) to an SQLite boolean expression over a JSON column.

The semantics are those of ``filters.matches``. SQLite's JSON functions blur a few things the
reference keeps apart, so every comparison goes through ``json_type`` first:

- ``json_extract`` turns JSON ``true`` into 1, so ``{"flag": 1}`` would match ``true``: a
  number comparison therefore requires ``json_type IN ('integer', 'real')`` and a boolean one
  ``json_type = 'true' | 'false'``.
- A missing path and an explicit ``null`` both extract as SQL NULL; ``json_type`` tells them
  apart (SQL NULL for missing, ``'null'`` for null).
- SQL's three-valued logic would make ``NOT (missing = 1)`` NULL (no match), while ``$ne``
  must match missing fields: each comparison is wrapped in ``COALESCE(..., 0)`` so it is
  strictly 0 or 1 before any ``NOT``.

String ordering matches Python's: SQLite compares TEXT bytewise (BINARY collation) and UTF-8
byte order is code-point order.

Sizes: SQLite limits an expression tree to 1,000 levels and a statement to 32,766 host
parameters. ``$and``/``$or`` lists are therefore joined as balanced trees (depth log2 n), a
``$in`` list is one JSON parameter read through ``json_each`` whatever its length, and JSON
paths (letters, digits, ``_``, ``-`` only, checked by the parser) are written into the SQL as
literals, so a comparison binds at most its one value.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import InvalidFilter
from .filters import And, Compare, Exists, Node, Or

_INT64 = (-(2**63), 2**63 - 1)


_PATH_PART = re.compile(r"[A-Za-z0-9_\-]+")


def json_path(path: tuple[str, ...]) -> str:
    """``("author", "name")`` → ``$."author"."name"`` (quoted, so ``-`` in keys is safe)."""
    return "$" + "".join(f'."{part}"' for part in path)


def _path_literal(path: tuple[str, ...]) -> str:
    # Only characters that need no escaping reach the SQL text; the parser enforces the same.
    for part in path:
        if not _PATH_PART.fullmatch(part):
            raise InvalidFilter(f"field name part {part!r} is not valid; use letters, digits, _ and -")
    return "'" + json_path(path) + "'"


def _balanced(op: str, parts: list[str]) -> str:
    """``a op b op c ...`` as a balanced tree, so SQLite's expression depth grows as log2 n."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    return f"({_balanced(op, parts[:middle])} {op} {_balanced(op, parts[middle:])})"


def compile_filter(node: Node | None, column: str = "metadata") -> tuple[str, list[Any]]:
    """Return ``(sql, params)``: an expression that is 1 for matching rows, 0 otherwise."""
    if node is None:
        return "1", []
    params: list[Any] = []
    sql = _compile(node, column, params)
    return sql, params


def _compile(node: Node, col: str, params: list[Any]) -> str:
    if isinstance(node, And):
        return _balanced("AND", [_compile(c, col, params) for c in node.clauses])
    if isinstance(node, Or):
        return _balanced("OR", [_compile(c, col, params) for c in node.clauses])
    if isinstance(node, Exists):
        return f"(json_type({col}, {_path_literal(node.path)}) IS {'NOT ' if node.present else ''}NULL)"
    if isinstance(node, Compare):
        return _compare(node, col, params)
    raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover - the parser makes only these


def _compare(node: Compare, col: str, params: list[Any]) -> str:
    path = _path_literal(node.path)
    op = node.op
    if op == "$eq":
        return _equal(path, node.value, col, params)
    if op == "$ne":
        return f"(NOT {_equal(path, node.value, col, params)})"
    if op in ("$in", "$nin"):
        either = _member(path, node.value, col, params)
        return either if op == "$in" else f"(NOT {either})"
    sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    value = node.value
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    params.append(_bindable(value))
    return f"COALESCE(json_type({col}, {path}) IN {kinds} AND json_extract({col}, {path}) {sql_op} ?, 0)"


def _equal(path: str, value: Any, col: str, params: list[Any]) -> str:
    """A strict 0/1 expression: the field exists and equals ``value`` with the same JSON kind."""
    if value is None:
        return f"COALESCE(json_type({col}, {path}) = 'null', 0)"
    if isinstance(value, bool):
        return f"COALESCE(json_type({col}, {path}) = '{'true' if value else 'false'}', 0)"
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    params.append(_bindable(value))
    return f"COALESCE(json_type({col}, {path}) IN {kinds} AND json_extract({col}, {path}) = ?, 0)"


def _member(path: str, values: tuple[Any, ...], col: str, params: list[Any]) -> str:
    """``$in``: one ``json_each`` list per JSON kind (strings, numbers), so a list of any length
    binds at most two parameters; null and booleans are plain equalities."""
    strings = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    parts = [_equal(path, v, col, params) for v in dict.fromkeys(v for v in values if v is None or isinstance(v, bool))]
    for kinds, group in (("('text')", strings), ("('integer', 'real')", numbers)):
        if group:
            params.append(json.dumps([_bindable(v) for v in group]))
            parts.append(f"COALESCE(json_type({col}, {path}) IN {kinds} AND json_extract({col}, {path}) "
                         "IN (SELECT value FROM json_each(?)), 0)")
    return _balanced("OR", parts)


def _bindable(value: Any) -> Any:
    # sqlite3 cannot bind ints outside int64; as floats they still compare by value.
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return float(value)
    return value
