"""Options shared by several commands, written once so their flags and help agree."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ..errors import InvalidFilter

DbOpt = Annotated[str, typer.Option("--db", help="Store: a folder (embedded), postgresql://..., memory://",
                                    envvar="SEMKIT_DB")]
CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]


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
