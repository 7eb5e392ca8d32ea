"""The typed errors every package raises at its edge, gathered for the CLI and the API."""

from __future__ import annotations

from alembic.util.exc import CommandError
from sqlalchemy.exc import OperationalError

from cardsim.errors import CardSimError
from globalplatform.errors import GpError
from hsm_profiles.loader import ProfileError
from keyservice.errors import KeyServiceError
from softhsm.bootstrap import BootstrapError
from storage.config import SettingsError
from tsm_core.errors import TsmCoreError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    KeyServiceError, GpError, CardSimError, TsmCoreError, ProfileError, BootstrapError, OperationalError,
    CommandError, SettingsError,
)
MAX_LINE = 1000
"""An error line is cut here (a huge argument echoed in a message must not flood the terminal)."""


def error_code(exc: Exception) -> str:
    """The stable machine-readable code of a typed error (RFC 9457 `type` suffix)."""
    if isinstance(exc, OperationalError):
        return "database_unavailable"
    if isinstance(exc, CommandError):
        return "migration_error"  # Alembic: e.g. an unknown revision for `tsm db upgrade`
    return str(getattr(exc, "code", type(exc).__name__))


def error_message(exc: Exception) -> str:
    """The first line of the message, without SQL statements or driver internals."""
    if isinstance(exc, OperationalError):
        return f"database unavailable: {str(exc.orig).strip().splitlines()[0] if exc.orig else ''}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def error_line(code: str, message: str) -> str:
    """`error[code]: message` on one line: control characters escaped (no terminal escape sequences, no line
    breaks), cut at MAX_LINE characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)
    line = f"error[{code}]: {text}"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
