"""The click classes every semkit command is made of.

Two things plain click does not do, and the commands rely on: arguments carry help (shown in an
``Arguments`` section of ``--help``, on every click version), and repeatable options and
variadic arguments arrive as a list, or None when none were given, never as an empty tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS: dict[str, Any] = {"show_default": True, "max_content_width": 120}


class Argument(click.Argument):
    """A positional argument with a help text."""

    def __init__(self, param_decls: Sequence[str], help: str | None = None, **attrs: Any) -> None:
        super().__init__(param_decls, **attrs)
        self.help = help

    def help_record(self, ctx: click.Context) -> tuple[str, str]:
        return self.make_metavar(ctx), self.help or ""


def argument(*param_decls: str, help: str | None = None, **attrs: Any) -> Callable[[F], F]:
    """``@click.argument`` with ``help=``."""
    return click.argument(*param_decls, cls=Argument, help=help, **attrs)


class Command(click.Command):
    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        rows = [p.help_record(ctx) for p in self.get_params(ctx) if isinstance(p, Argument)]
        if rows:
            with formatter.section("Arguments"):
                formatter.write_dl(rows)
        self.format_options(ctx, formatter)
        self.format_epilog(ctx, formatter)

    def invoke(self, ctx: click.Context) -> Any:
        for param in self.get_params(ctx):
            if param.name and (param.multiple or param.nargs == -1):
                values = ctx.params.get(param.name)
                ctx.params[param.name] = list(values) if values else None
        return super().invoke(ctx)


class Group(click.Group):
    """A group whose commands and subgroups are made of the classes above; without a
    command it prints its help."""

    command_class = Command

    def __init__(self, name: str | None = None, **attrs: Any) -> None:
        attrs.setdefault("context_settings", CONTEXT_SETTINGS)
        super().__init__(name, **attrs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        # In the order they were added, related commands together; groups of subcommands last.
        commands = [name for name, command in self.commands.items() if not isinstance(command, click.Group)]
        return commands + [name for name in self.commands if name not in commands]

    def subgroup(self, name: str, help: str) -> Group:
        group = Group(name, help=help, no_args_is_help=True)
        self.add_command(group)
        return group


Group.group_class = Group
