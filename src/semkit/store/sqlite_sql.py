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
"""

from __future__ import annotations

from typing import Any

from .filters import And, Compare, Exists, Node, Or

_INT64 = (-(2**63), 2**63 - 1)


def json_path(path: tuple[str, ...]) -> str:
    """``("author", "name")`` → ``$."author"."name"`` (quoted, so ``-`` in keys is safe)."""
    return "$" + "".join(f'."{part}"' for part in path)


def compile_filter(node: Node | None, column: str = "metadata") -> tuple[str, list[Any]]:
    """Return ``(sql, params)``: an expression that is 1 for matching rows, 0 otherwise."""
    if node is None:
        return "1", []
    params: list[Any] = []
    sql = _compile(node, column, params)
    return sql, params


def _compile(node: Node, col: str, params: list[Any]) -> str:
    if isinstance(node, And):
        return "(" + " AND ".join(_compile(c, col, params) for c in node.clauses) + ")"
    if isinstance(node, Or):
        return "(" + " OR ".join(_compile(c, col, params) for c in node.clauses) + ")"
    if isinstance(node, Exists):
        params.append(json_path(node.path))
        return f"(json_type({col}, ?) IS {'NOT ' if node.present else ''}NULL)"
    if isinstance(node, Compare):
        return _compare(node, col, params)
    raise TypeError(f"not a filter node: {node!r}")  # pragma: no cover - the parser makes only these


def _compare(node: Compare, col: str, params: list[Any]) -> str:
    path = json_path(node.path)
    op = node.op
    if op == "$eq":
        return _equal(path, node.value, col, params)
    if op == "$ne":
        return f"(NOT {_equal(path, node.value, col, params)})"
    if op in ("$in", "$nin"):
        either = "(" + " OR ".join(_equal(path, v, col, params) for v in node.value) + ")"
        return either if op == "$in" else f"(NOT {either})"
    sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[op]
    value = node.value
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    params.extend([path, path, _bindable(value)])
    return f"COALESCE(json_type({col}, ?) IN {kinds} AND json_extract({col}, ?) {sql_op} ?, 0)"


def _equal(path: str, value: Any, col: str, params: list[Any]) -> str:
    """A strict 0/1 expression: the field exists and equals ``value`` with the same JSON kind."""
    if value is None:
        params.append(path)
        return f"COALESCE(json_type({col}, ?) = 'null', 0)"
    if isinstance(value, bool):
        params.append(path)
        return f"COALESCE(json_type({col}, ?) = '{'true' if value else 'false'}', 0)"
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    params.extend([path, path, _bindable(value)])
    return f"COALESCE(json_type({col}, ?) IN {kinds} AND json_extract({col}, ?) = ?, 0)"


def _bindable(value: Any) -> Any:
    # sqlite3 cannot bind ints outside int64; as floats they still compare by value.
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return float(value)
    return value
