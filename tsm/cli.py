"""The `tsm` command: one root group, each package contributes its own sub-commands.

Every typed project error is printed as one line (`error[<code>]: <message>`) with exit status 2;
tracebacks never reach the terminal.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tsm.errors import EXPECTED_ERRORS, error_code


class TsmGroup(click.Group):
    """Root group that turns the project's typed errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EXPECTED_ERRORS as exc:
            click.echo(f"error[{error_code(exc)}]: {exc}", err=True)
            sys.exit(2)


@click.group(cls=TsmGroup)
@click.version_option(package_name="tsm-hsm")
def main() -> None:
    """Trusted Service Manager built around a PKCS#11 key service."""


def _register() -> None:
    from cardsim.cli import cardsim_group

    main.add_command(cardsim_group)


_register()
