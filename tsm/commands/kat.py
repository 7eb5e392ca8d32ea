"""`tsm kat FILE_OR_DIR...` and `tsm selftest`: known-answer vectors through the production code path."""

from __future__ import annotations

import click

from keyservice import kat
from tsm.service import key_service


@click.command("kat")
@click.argument("paths", nargs=-1, required=True)
def kat_command(paths: tuple[str, ...]) -> None:
    """Run known-answer vector files (docs/kat-format.md) on a scratch SoftHSM2 token; exit 1 on any FAIL."""
    raise SystemExit(kat.main(list(paths)))


@click.command("selftest")
def selftest_command() -> None:
    """Run the shipped published vectors through the production code path on the configured token."""
    for line in key_service().run_selftest().lines():
        click.echo(line)
