"""One default search everywhere: the library, the CLI, HTTP and the web UI start from the same
mode and parameters."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import semkit.server
from semkit.apps import search as library_search
from semkit.server.schemas import SearchRequest


def _cli_defaults() -> dict[str, Any]:
    from semkit.cli import app

    # What the command receives when no option is given (click's own default resolution).
    return app.commands["search"].make_context("search", []).params


def _ui_defaults() -> dict[str, Any]:
    html = (Path(semkit.server.__file__).parent / "static" / "index.html").read_text(encoding="utf-8")
    select = re.search(r'<select id="mode"[^>]*>(.*?)</select>', html, re.S)
    assert select is not None, "the UI has no mode selector"
    options = re.findall(r'<option value="(\w+)"( selected)?', select.group(1))
    chosen = next((v for v, sel in options if sel), options[0][0])
    k = re.search(r'<input id="k"[^>]*value="(\d+)"', html)
    diversity = re.search(r'<input id="diversity"[^>]*value="([\d.]+)"', html)
    assert k is not None and diversity is not None
    return {"mode": chosen, "k": int(k.group(1)), "diversity": float(diversity.group(1))}


def test_library_cli_http_and_ui_share_the_default_search() -> None:
    library = {name: p.default for name, p in inspect.signature(library_search).parameters.items()}
    cli = _cli_defaults()
    http = {name: field.default for name, field in SearchRequest.model_fields.items()}
    ui = _ui_defaults()

    assert library["mode"] == cli["mode"] == http["mode"] == ui["mode"] == "hybrid"
    assert library["k"] == cli["k"] == http["k"] == ui["k"] == 10
    assert library["fusion"] == cli["fusion"] == http["fusion"] == "convex"
    # Diversity off: the library and CLI take MMR's λ (None = off), HTTP and the UI a diversity (0 = off).
    assert library["mmr"] is None and cli["mmr"] is None and http["diversity"] == ui["diversity"] == 0.0
    assert library["exact"] is cli["exact"] is http["exact"] is False
