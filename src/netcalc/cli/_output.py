"""How commands print: JSON when asked, else aligned columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
"""The `--json` option of a command that prints a listing or a secret."""


def print_json(value: Any) -> None:
    """Print `value` as indented JSON."""
    typer.echo(json.dumps(value, indent=2))


def print_columns(header: tuple[str, ...], cells: Sequence[tuple[str, ...]]) -> None:
    """Print a header and rows of cells as aligned columns."""
    lines = [header, *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        typer.echo(
            "  ".join(
                cell.ljust(w) for cell, w in zip(line, widths, strict=True)
            ).rstrip()
        )
