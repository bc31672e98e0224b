"""Options shared by several commands, written once so their flags and help agree."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import DEFAULT_DB
from ..errors import InvalidFilter

db_option = click.option("--db", default=DEFAULT_DB, envvar="SEMKIT_DB", show_envvar=True,
                         help="Store: a folder (embedded), postgresql://..., memory://")
collection_option = click.option("--collection", "-c", default="docs", help="Collection name")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output")
where_option = click.option("--where", help='Metadata filter as JSON: \'{"year": {"$gte": 2020}}\'')


def parse_where(raw: str | None) -> dict[str, Any] | None:
    """The ``--where`` JSON filter as a dict (None when the option is absent)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFilter(f"--where is not valid JSON ({exc.msg}): {raw}") from None
    if not isinstance(value, dict):
        raise InvalidFilter('--where must be a JSON object, e.g. \'{"year": {"$gte": 2020}}\'')
    return value
