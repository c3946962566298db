"""Command groups whose help names each value as it is typed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand
from typer.models import CommandFunctionType


class PlainCommand(TyperCommand):
    """A command whose help names each value as it is typed: `CLIENT_ID`,
    where Typer writes `{CLIENT_ID}` in the usage line and `CLIENT_ID <str>`
    under Arguments. Options name theirs with a `metavar`."""

    # The context and formatter are click's, which Typer may carry a copy of.
    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_value_name(param.metavar, param.name))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_value_name(param.metavar, param.name), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _value_name(metavar: str | None, name: str | None) -> str:
    return metavar or (name or "").upper()


class PlainGroup(typer.Typer):
    """A command group whose commands print plain help (`PlainCommand`)."""

    def command(
        self, *args: Any, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(*args, **kwargs)


def command_group(help_text: str | None) -> typer.Typer:
    """A group of commands with plain help, shown when run bare."""
    # Plain help: Typer's rich layout labels every flag with a type, "<bool>"
    # even for --help, which reads as if the flags took a value.
    return PlainGroup(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
        add_completion=False,
    )
