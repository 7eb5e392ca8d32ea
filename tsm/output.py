"""How `tsm` commands print (docs/cli.md, "Output"): aligned tables with a header row, or JSON for scripts
(`--json`). An empty cell prints as `-`, so that no column is left blank.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text.")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    """Print `value` (dataclasses, lists, dicts) as indented JSON."""
    click.echo(json.dumps(_plain(value), indent=2, sort_keys=False))


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text or "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under a header row, columns aligned; the last column is not padded."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)) + "  " + row[-1]
                   if len(row) > 1 else row[0])
