"""``semkit``: one command per job. Thin: every command calls the public library functions."""

from __future__ import annotations

import logging
import sys

import typer

from .. import __version__
from ..errors import SemkitError
from . import app_cmds, embed_cmds, eval_cmds, index_cmds, output, search_cmds, server_cmds, store_cmds

app = typer.Typer(
    name="semkit",
    help="Embeddings from any model: generate, store, search, apply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Each module adds the commands of one area, listed here so the command set is visible in one place.
for _commands in (embed_cmds, store_cmds, search_cmds, index_cmds, app_cmds, eval_cmds, server_cmds):
    _commands.register(app)


def _print_version(value: bool) -> None:
    if value:
        output.stdout.print(f"semkit {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print semkit's version and exit"),
) -> None:
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
