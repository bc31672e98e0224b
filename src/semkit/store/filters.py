"""The metadata filter language, parsed once into a small AST that each backend compiles.

Grammar (MongoDB-style, like Chroma/Qdrant/Pinecone users expect)::

    filter   := {clause, ...}                      # several clauses = implicit $and
    clause   := "$and": [filter, ...] | "$or": [filter, ...]
              | field: value                       # shorthand for {"$eq": value}
              | field: {op: value, ...}            # several ops = implicit $and
    op       := $eq $ne $gt $gte $lt $lte $in $nin $exists
    field    := dot path into the metadata JSON ("author.name")

Values are JSON scalars (str, int, float, bool, None); ``$in``/``$nin`` take a non-empty list of
scalars; ``$exists`` takes a bool. Ordering ops take numbers or strings. Anything else raises
``InvalidFilter`` naming the offending part.

Limits, the same for every backend so a filter one accepts the others accept too:
``$and``/``$or`` nest at most ``MAX_DEPTH`` deep, a filter holds at most ``MAX_CLAUSES``
comparisons, a ``$in``/``$nin`` list at most ``MAX_IN_VALUES`` values; strings must be valid
Unicode (no lone surrogates) and numbers finite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidFilter

Scalar = str | int | float | bool | None
CompareOp = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"]

COMPARE_OPS: tuple[str, ...] = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
ORDER_OPS: tuple[str, ...] = ("$gt", "$gte", "$lt", "$lte")
_FIELD = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")

MAX_DEPTH = 32
"""How deep ``$and``/``$or`` may nest."""
MAX_CLAUSES = 4096
"""Comparisons in one filter (a ``$in`` list counts once)."""
MAX_IN_VALUES = 100_000
"""Values in one ``$in``/``$nin`` list."""


@dataclass(frozen=True)
class Compare:
    path: tuple[str, ...]
    op: CompareOp
    value: Any  # a Scalar, or a tuple of Scalars for $in/$nin


@dataclass(frozen=True)
class Exists:
    path: tuple[str, ...]
    present: bool


@dataclass(frozen=True)
class And:
    clauses: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    clauses: tuple[Node, ...]


Node = Compare | Exists | And | Or


def parse(spec: Mapping[str, Any] | str | None) -> Node | None:
    """Parse a filter (a dict, or its JSON text) into an AST; ``None``/``{}`` mean no filter."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise InvalidFilter(f"filter is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidFilter(f"filter nests too deeply; $and/$or may nest at most {MAX_DEPTH} deep") from None
    if isinstance(spec, (And, Or, Compare, Exists)):
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidFilter(
            f"a filter must be an object like {{\"year\": {{\"$gte\": 2020}}}}, got {type(spec).__name__}"
        )
    if not spec:
        return None
    budget = [MAX_CLAUSES]
    return _parse_object(spec, "filter", 0, budget)


def _parse_object(spec: Mapping[str, Any], where: str, depth: int, budget: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"{where}: $and/$or nest more than {MAX_DEPTH} deep; flatten the filter")
    if not isinstance(spec, Mapping):
        raise InvalidFilter(f"{where}: expected an object, got {_show(spec)}")
    if not spec:
        raise InvalidFilter(f"{where}: empty object; remove it or add a condition")
    clauses: list[Node] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise InvalidFilter(f"{where}: keys must be strings, got {_show(key)}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{where}: {key} needs a non-empty list of filters, got {_show(value)}")
            parts = tuple(_parse_object(v, f"{key}[{i}]", depth + 1, budget) for i, v in enumerate(value))
            clauses.append(And(parts) if key == "$and" else Or(parts))
        elif key.startswith("$"):
            raise InvalidFilter(
                f"{where}: unknown operator {key!r} at the top level; only $and/$or go here, "
                "field operators go inside a field: {\"field\": {\"$gt\": 1}}"
            )
        else:
            clauses.append(_parse_field(key, value, budget))
    return clauses[0] if len(clauses) == 1 else And(tuple(clauses))


def _spend(budget: list[int], n: int = 1) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise InvalidFilter(
            f"the filter holds more than {MAX_CLAUSES} comparisons; use $in for many values of one field"
        )


def _parse_field(field: str, value: Any, budget: list[int]) -> Node:
    if not _FIELD.match(field):
        raise InvalidFilter(
            f"field name {field!r} is not valid; use letters, digits, _ and -, with dots for nesting"
        )
    path = tuple(field.split("."))
    if not isinstance(value, Mapping):
        _spend(budget)
        return Compare(path, "$eq", _scalar(value, field, "$eq"))
    if not value:
        raise InvalidFilter(f"field {field!r}: empty operator object; use e.g. {{\"$eq\": 1}}")
    conditions: list[Node] = []
    for op, operand in value.items():
        _spend(budget)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidFilter(f"field {field!r}: $exists takes true or false, got {_show(operand)}")
            conditions.append(Exists(path, operand))
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list) or not operand:
                raise InvalidFilter(f"field {field!r}: {op} takes a non-empty list, got {_show(operand)}")
            if len(operand) > MAX_IN_VALUES:
                raise InvalidFilter(f"field {field!r}: {op} holds {len(operand):,} values; at most {MAX_IN_VALUES:,}")
            items = tuple(_scalar(v, field, op) for v in operand)
            conditions.append(Compare(path, op, items))  # type: ignore[arg-type]
        elif op in COMPARE_OPS:
            scalar = _scalar(operand, field, op)
            if op in ORDER_OPS and (scalar is None or isinstance(scalar, bool)):
                raise InvalidFilter(f"field {field!r}: {op} needs a number or a string, got {_show(operand)}")
            conditions.append(Compare(path, op, scalar))  # type: ignore[arg-type]
        else:
            known = ", ".join((*COMPARE_OPS, "$exists"))
            raise InvalidFilter(f"field {field!r}: unknown operator {op!r}; known: {known}")
    return conditions[0] if len(conditions) == 1 else And(tuple(conditions))


def _scalar(value: Any, field: str, op: str) -> Scalar:
    if value is None or isinstance(value, (str, bool, int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            # JSON (and so every backend's metadata) cannot hold NaN or infinity.
            raise InvalidFilter(f"field {field!r}: {op} cannot compare with {value}; use a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_INT:
            raise InvalidFilter(f"field {field!r}: {op} compares with an integer of about {digits(value)} digits; "
                                "numbers must fit a double (about 1.8e308)")
        if isinstance(value, str) and not valid_unicode(value):
            raise InvalidFilter(f"field {field!r}: {op} compares with a string holding a lone surrogate "
                                "(invalid Unicode); send valid UTF-8")
        return value
    raise InvalidFilter(
        f"field {field!r}: {op} takes a string, number, boolean or null, got {_show(value)}"
    )


LARGEST_INT = int(1.7976931348623157e308)
"""The largest integer a double holds: what every backend's JSON can compare (and store)."""


def digits(value: int) -> int:
    """How many decimal digits an integer has, near enough for a message (``str()`` refuses
    integers of more than 4,300 digits)."""
    return int(abs(value).bit_length() * 0.30103) + 1


def valid_unicode(text: str) -> bool:
    """False for strings holding lone surrogates, which no backend can store or send as UTF-8."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    except (RecursionError, ValueError):
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


# --- reference evaluation (the in-memory store and post-filtering use it) -----------------

_MISSING = object()


def lookup(metadata: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = metadata
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def matches(node: Node | None, metadata: Mapping[str, Any]) -> bool:
    """Evaluate a filter against one metadata dict: the semantics every backend must match.

    - A missing field never satisfies a comparison, except ``$ne`` and ``$nin`` (which match
      missing fields, as in MongoDB).
    - ``$eq null`` matches an explicit null only.
    - Ordering compares numbers with numbers and strings with strings; mixed types don't match.
    - Booleans are not numbers: ``{"flag": 1}`` does not match ``true``.
    - Lists and objects in the metadata never equal a scalar (no "array contains" matching),
      so only ``$ne``/``$nin``/``$exists`` match them.
    """
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(c, metadata) for c in node.clauses)
    if isinstance(node, Or):
        return any(matches(c, metadata) for c in node.clauses)
    value = lookup(metadata, node.path)
    if isinstance(node, Exists):
        return (value is not _MISSING) == node.present
    op = node.op
    if op == "$eq":
        return value is not _MISSING and _equal(value, node.value)
    if op == "$ne":
        return value is _MISSING or not _equal(value, node.value)
    if op == "$in":
        return value is not _MISSING and any(_equal(value, v) for v in node.value)
    if op == "$nin":
        return value is _MISSING or not any(_equal(value, v) for v in node.value)
    if value is _MISSING or not _comparable(value, node.value):
        return False
    if op == "$gt":
        return bool(value > node.value)
    if op == "$gte":
        return bool(value >= node.value)
    if op == "$lt":
        return bool(value < node.value)
    return bool(value <= node.value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _equal(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and a == b


def _comparable(a: Any, b: Any) -> bool:
    return _kind(a) == _kind(b) and _kind(a) in ("number", "string")
