"""The `netcalc` command's own help, read in process."""

from __future__ import annotations

import re
from collections.abc import Iterator

import typer.main
from typer.testing import CliRunner

from netcalc.cli import app

PLACEHOLDER = re.compile(r"\{[A-Z_]+\}|<[a-z][^>]*>")
"""Typer's own way of naming a value, `{CLIENT_ID}` or `<list[str]>`."""


def _walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    yield path
    for name, child in getattr(command, "commands", {}).items():
        yield from _walk(child, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app), ()))
"""Every command and command group, as typed after `netcalc`."""


def help_of(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="netcalc")
    assert result.exit_code == 0, result.output
    return result.output


def test_no_help_names_a_value_in_typers_way() -> None:
    """No command's help wraps a value's name in braces or labels it with a
    Python type."""
    marked = {" ".join(path): PLACEHOLDER.findall(help_of(*path)) for path in COMMANDS}
    assert {command: found for command, found in marked.items() if found} == {}


def test_help_names_arguments_and_options_as_typed() -> None:
    """The usage line names an argument bare, and each option names its value."""
    revoke = help_of("credentials", "revoke")
    assert "Usage: netcalc credentials revoke [OPTIONS] CLIENT_ID\n" in revoke
    assert re.search(r"^  CLIENT_ID  The credentials' client id\.", revoke, re.M)
    create = help_of("credentials", "create")
    for option in ("--account EMAIL", "--scope SCOPE", "--ttl SECONDS"):
        assert f"  {option}  " in create
