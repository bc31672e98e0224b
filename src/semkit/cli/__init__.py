"""``semkit``: one command per job. Thin: every command calls the public library functions."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from ..errors import SemkitError
from . import embed_cmds, output

app = typer.Typer(
    name="semkit",
    help="Embeddings from any model: generate, store, search, apply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
embed_cmds.register(app)

# Each module adds the commands of one area. Listed explicitly (no plugin discovery) so the
# command set is visible here; a module that is not written yet is simply absent.
_COMMAND_MODULES = ("store_cmds", "search_cmds", "index_cmds", "app_cmds", "eval_cmds", "server_cmds")
for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{_name}":
            raise
        continue
    _module.register(app)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    try:
        app()
    except SemkitError as exc:
        raise SystemExit(_exit(exc)) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _exit(exc: SemkitError) -> int:
    output.fail(exc)
    return 2 if isinstance(exc, (ValueError,)) else 1
