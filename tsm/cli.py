"""The `tsm` command: one root group; the commands live in `tsm/commands/` and follow docs/cli.md.

Every typed project error, and every command-line error click finds (unknown command or option, missing
option, a value not of its type), is printed as one line on stderr (`error[<code>]: <message>`, code `usage`
for the command line) with exit status 2; tracebacks never reach the terminal. A group given no command
prints its help.
"""

from __future__ import annotations

import re
import sys
from typing import Any, NoReturn

import click

from tsm.errors import CLI_ERRORS, error_line
from web.errors import error_code, error_message

REVISION = re.compile(r"[0-9A-Za-z_]{1,64}")
"""An Alembic revision `tsm db upgrade` accepts: head, heads or a revision id."""
USAGE = "usage"
"""The error code of a command line that does not parse."""


def fail(code: str, message: str) -> NoReturn:
    """Print the one error line and exit 2."""
    click.echo(error_line(code, message), err=True)
    sys.exit(2)


def _usage(exc: click.UsageError) -> NoReturn:
    """A click usage error as one line (click prints three), or the help of a group given no command."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    hint = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
    fail(USAGE, exc.format_message().rstrip(".") + hint)


class TsmGroup(click.Group):
    """Root group that turns the project's typed errors and click's usage errors into one-line messages."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage(exc)
        except CLI_ERRORS as exc:
            fail(error_code(exc), error_message(exc))


@click.group("tsm", cls=TsmGroup)
@click.version_option(package_name="tsm-hsm")
def main() -> None:
    """Trusted Service Manager built around a PKCS#11 key service."""


@main.command("init")
@click.option("--test-token", is_flag=True, help="Create the token as a TEST token (lab mode).")
def init(test_token: bool) -> None:
    """Create the embedded default under $TSM_HOME (default ./var); harmless when run again."""
    from storage.config import load_settings
    from tsm.embedded import initialise

    settings = load_settings()
    report = initialise(settings, test_token)
    click.echo(f"home       {settings.home}")
    click.echo(f"token      {settings.token_label} ({'created' if report.token_created else 'exists'})"
               f"{' — TEST TOKEN' if report.test_token else ''}")
    click.echo(f"database   {settings.database_url.split('://', 1)[0]} migrated to head")
    click.echo(f"audit-key  kcv {report.audit_key_kcv}")


@main.group("db")
def db_group() -> None:
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True,
              help="Alembic revision to migrate up to: head, or a revision id such as 0002.")
def db_upgrade(revision: str) -> None:
    """Migrate the database up to a revision."""
    if not REVISION.fullmatch(revision):
        raise click.BadParameter(f"{revision!r} is not head or a revision id", param_hint="'--revision'")
    from storage.config import load_settings
    from storage.session import upgrade

    upgrade(load_settings().database_url, revision)
    click.echo(f"database at {revision}")


def _register() -> None:
    from tsm.commands.apikey import apikey_group
    from tsm.commands.app import app_group
    from tsm.commands.audit import audit_group
    from tsm.commands.billing import report_group, tariff_group
    from tsm.commands.cardsim import cardsim_group
    from tsm.commands.ceremony import ceremony_group
    from tsm.commands.demo import demo_command
    from tsm.commands.gp import gp_group
    from tsm.commands.hsm import hsm_group
    from tsm.commands.jobs import job_group, sd_group
    from tsm.commands.kat import kat_command, selftest_command
    from tsm.commands.keys import keys_group
    from tsm.commands.pcsc import readers_command, relay_client_command
    from tsm.commands.people import bootstrap_group, quorum_group, user_group
    from tsm.commands.se import se_group
    from tsm.commands.serve import serve
    from tsm.commands.services import service_group
    from tsm.commands.sp import sp_group, vendor_group
    from tsm.commands.webhook import webhook_group

    for command in (keys_group, audit_group, hsm_group, kat_command, selftest_command, cardsim_group, gp_group,
                    readers_command, relay_client_command, serve, sp_group, vendor_group, se_group, sd_group,
                    app_group, service_group, job_group, tariff_group, report_group, user_group, bootstrap_group,
                    quorum_group, ceremony_group, apikey_group, webhook_group, demo_command):
        main.add_command(command)


_register()
