"""The `tsm` command: one root group, each package contributes its own sub-commands.

Every typed project error is printed as one line (`error[<code>]: <message>`) with exit status 2;
tracebacks never reach the terminal.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tsm.errors import CLI_ERRORS
from web.errors import error_code, error_message


class TsmGroup(click.Group):
    """Root group that turns the project's typed errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CLI_ERRORS as exc:
            click.echo(f"error[{error_code(exc)}]: {error_message(exc)}", err=True)
            sys.exit(2)


@click.group(cls=TsmGroup)
@click.version_option(package_name="tsm-hsm")
def main() -> None:
    """Trusted Service Manager built around a PKCS#11 key service."""


@main.command("init")
@click.option("--test-token", is_flag=True, help="create the token as a TEST token (lab mode)")
def init(test_token: bool) -> None:
    """Create the embedded default under $TSM_HOME (default ./var); harmless when run again."""
    from storage.config import load_settings
    from tsm.embedded import initialise

    settings = load_settings()
    report = initialise(settings, test_token)
    click.echo(f"home:      {settings.home}")
    click.echo(f"token:     {settings.token_label} ({'created' if report.token_created else 'exists'})"
               f"{' — TEST TOKEN' if report.test_token else ''}")
    click.echo(f"database:  {settings.database_url.split('://', 1)[0]} migrated to head")
    click.echo(f"audit key: kcv {report.audit_key_kcv}")


@main.group("db")
def db_group() -> None:
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the database to a revision."""
    from storage.config import load_settings
    from storage.session import upgrade

    upgrade(load_settings().database_url, revision)
    click.echo(f"database at {revision}")


def _register() -> None:
    from tsm.commands.audit import audit_group
    from tsm.commands.cardsim import cardsim_group
    from tsm.commands.gp import gp_group
    from tsm.commands.hsm import hsm_group
    from tsm.commands.kat import kat_command, selftest_command
    from tsm.commands.keys import keys_group
    from tsm.commands.pcsc import readers_command, relay_client_command
    from tsm.commands.serve import serve

    for command in (keys_group, audit_group, hsm_group, kat_command, selftest_command, cardsim_group, gp_group,
                    readers_command, relay_client_command, serve):
        main.add_command(command)


_register()
