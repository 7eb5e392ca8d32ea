"""`--as NAME` and `--credentials FILE`: who acts, proved by password and current TOTP code (issue 11).

The two secrets are read from the file named by `--credentials` (two lines: the password, then the current
TOTP code) or, without it, from stdin (two lines; prompted, hidden, on a terminal); never from an argument value
or the environment, which other users of the machine can read (`ps`, `/proc`). The key service checks them
(`KeyService.people.authenticate`); this module only collects them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from keyservice.errors import InvalidInput
from keyservice.people import Credentials

F = TypeVar("F", bound=Callable[..., Any])
LINE_MAX: Final = 1024

as_option = click.option("--as", "as_name", required=True, metavar="NAME",
                         help="The person who acts; authenticated by password and TOTP code.")
credentials_option = click.option(
    "--credentials", "credentials_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="File with two lines: password, then the current TOTP code (default: read them from stdin).")


def _line(text: str) -> str:
    value = text.rstrip("\r\n")
    if not value or len(value) > LINE_MAX:
        raise InvalidInput("credentials are two non-empty lines: the password, then the current TOTP code")
    return value


def read_credentials(path: Path | None) -> Credentials:
    """The password and code from `path`, from a terminal prompt (hidden), or from two lines of stdin."""
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the credentials file ({type(exc).__name__})") from None
        if len(lines) < 2:
            raise InvalidInput("the credentials file holds two lines: the password, then the current TOTP code")
        return Credentials(_line(lines[0]), _line(lines[1]).strip())
    if sys.stdin.isatty():
        try:
            return Credentials(_line(click.prompt("password", hide_input=True, err=True)),
                               _line(click.prompt("TOTP code", hide_input=True, err=True)).strip())
        except click.Abort:
            raise InvalidInput("no credentials given") from None
    return Credentials(_line(sys.stdin.readline()), _line(sys.stdin.readline()).strip())


def person_options(command: F) -> F:
    """`--as NAME` and `--credentials FILE`; the command receives `person` = (name, Credentials)."""

    @as_option
    @credentials_option
    @wraps(command)
    def wrapper(*args: Any, as_name: str, credentials_file: Path | None, **kwargs: Any) -> Any:
        return command(*args, person=(as_name, read_credentials(credentials_file)), **kwargs)

    return wrapper  # type: ignore[return-value]
