"""How `tsm` commands print: aligned tables with a header row, or JSON for scripts (`--json`)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


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


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under a header row, columns aligned; the last column is not padded."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)) + "  " + row[-1]
                   if len(row) > 1 else row[0])


def hex_byte(value: str, what: str) -> int:
    """A byte written in hex as GP documents write it ("30", "0x30", "7F")."""
    text = value.strip().lower().removeprefix("0x")
    if not 1 <= len(text) <= 2 or any(c not in "0123456789abcdef" for c in text):
        raise click.BadParameter(f"{value!r} is not one hex byte (00..FF, e.g. 30 or 0x30)", param_hint=what)
    return int(text, 16)


class HexByte(click.ParamType[int]):
    """A one-byte value in hex, `0x` accepted (key version numbers, key ids, security levels)."""

    name = "HEX-BYTE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        return hex_byte(str(value), param.opts[0] if param is not None else "value")
