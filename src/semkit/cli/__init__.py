"""``semkit``: one command per job. Thin: every command calls the public library functions."""

from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..errors import SemkitError
from . import app_cmds, embed_cmds, eval_cmds, index_cmds, output, search_cmds, server_cmds, store_cmds
from .commands import Group


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        output.echo(f"semkit {__version__}")
        ctx.exit()


@click.group(cls=Group, name="semkit", no_args_is_help=True)
@click.option("--verbose", "-v", is_flag=True, help="Log what happens")
@click.option("--version", is_flag=True, callback=_print_version, expose_value=False, is_eager=True,
              help="Print semkit's version and exit")
def app(verbose: bool) -> None:
    """Embeddings from any model: generate, store, search, apply."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


# Each module adds the commands of one area, listed here so the command set is visible in one place.
for _commands in (embed_cmds, store_cmds, search_cmds, index_cmds, app_cmds, eval_cmds, server_cmds):
    _commands.register(app)


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
