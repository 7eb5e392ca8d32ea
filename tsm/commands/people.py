"""`tsm user ...`, `tsm bootstrap ...`, `tsm quorum show`: people who authenticate, the bootstrap, the quorum
(docs/people.md, docs/cli.md)."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from keyservice.errors import InvalidInput
from keyservice.people import Credentials, Role
from keyservice.policy import Purpose, Request
from tsm.auth import person_options
from tsm.identity import console_officer
from tsm.output import emit_json, json_option, table
from tsm.service import key_service

ROLES = click.Choice([r.value for r in Role])


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _password(path: Path | None) -> str:
    if path is None and sys.stdin.isatty():
        try:
            return str(click.prompt("password", hide_input=True, confirmation_prompt=True, err=True))
        except click.Abort:
            raise InvalidInput("no password given (use --password-file FILE)") from None
    if path is None:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInput("no password given: type it at the prompt, pipe it on stdin or use --password-file")
        return line
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the password file ({type(exc).__name__})") from None
    if not lines:
        raise InvalidInput("the password file is empty")
    return lines[0]


@click.group("user")
def user_group() -> None:
    """People who authenticate (password + TOTP)."""


@user_group.command("add")
@click.argument("name")
@click.option("--role", type=ROLES, required=True, help="The person's role.")
@click.option("--owner", default=None, help="The vendor or service provider a vendor/sp person acts for.")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File whose first line is the password (default: prompt twice, hidden; or the first line of stdin).")
def user_add(name: str, role: str, owner: str | None, password_file: Path | None) -> None:
    """Enroll a person (while the bootstrap is open; afterwards ceremony 6); prints the TOTP provisioning URI,
    its QR code and the secret ONCE."""
    import segno

    password = _password(password_file)
    req = Request(console_officer(), Purpose.KEY_MANAGEMENT, f"person:{name}"[:256])
    enrollment = key_service().people.enroll(req, name, Role(role), password, owner=owner)
    click.echo(f"enrolled {enrollment.name} ({enrollment.role.value}); add this to the authenticator now, it is "
               "shown once:")
    click.echo(enrollment.provisioning_uri)
    qr = io.StringIO()
    segno.make(enrollment.provisioning_uri, error="m").terminal(out=qr, compact=True)
    click.echo(qr.getvalue(), nl=False)
    click.echo(f"secret {enrollment.secret}")


@user_group.command("list")
@json_option
def user_list(as_json: bool) -> None:
    """Every person: role, state, locked, enrolled at (no hash, no secret)."""
    people = key_service().people.list_people()
    if as_json:
        emit_json(people)
        return
    table(("NAME", "ROLE", "STATE", "LOCKED", "ENROLLED", "BY", "RECORD"),
          [(p.name, p.role.value, p.state.value, "yes" if p.locked else "no", _when(p.enrolled_at), p.enrolled_by,
            "ok" if p.genuine else "FORGED") for p in people])


@click.group("bootstrap")
def bootstrap_group() -> None:
    """The bootstrap: direct enrollment until two officers close it."""


@bootstrap_group.command("close")
@person_options
def bootstrap_close(person: tuple[str, Credentials]) -> None:
    """Close the bootstrap for good (an officer, with two active officers enrolled); enrollment and removal then
    need ceremony 6."""
    name, creds = person
    key_service().people.close_bootstrap(name, creds)
    click.echo(f"bootstrap closed by {name}")


@click.group("quorum")
def quorum_group() -> None:
    """The M-of-N quorum of privileged operations."""


@quorum_group.command("show")
@json_option
def quorum_show(as_json: bool) -> None:
    """M per operation class and per key, where it comes from, and N (active officers)."""
    views = key_service().quorum.show()
    if as_json:
        emit_json(views)
        return
    table(("SCOPE", "M", "N", "SET BY"), [(v.scope, v.m, v.n, v.source) for v in views])
