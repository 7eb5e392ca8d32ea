"""The typed errors every package raises at its edge, gathered for the API (web/problems.py) and the CLI.

Database errors come from SQLAlchemy and the driver; they are named here from the driver's own code: a
write that gave up waiting for another process's lock is `database_busy`, a missing table is
`database_schema`, anything else `database_unavailable` (or `database_error`).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from ceremonies.errors import CeremonyError
from globalplatform.errors import GpError
from hsm_profiles.loader import ProfileError
from keyservice.errors import KeyServiceError
from softhsm.bootstrap import BootstrapError
from storage.config import SettingsError
from storage.permissions import InsecurePermissions
from storage.session import MigrationError
from tsm_core.errors import TsmCoreError
from tsm_core.transport.errors import (
    RelayProtocolError,
    RelaySessionClosed,
    RelaySessionExpired,
    RelaySessionForeign,
    RelaySessionNotFound,
)

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    KeyServiceError, GpError, TsmCoreError, ProfileError, BootstrapError, SQLAlchemyError, MigrationError,
    SettingsError, InsecurePermissions, CeremonyError,
)

SQLITE_BUSY: Final = 5
"""SQLite primary result code SQLITE_BUSY (https://sqlite.org/rescode.html#busy); extended codes keep it in
their low byte."""
PG_LOCK_NOT_AVAILABLE: Final = "55P03"
PG_UNDEFINED_TABLE: Final = "42P01"
"""PostgreSQL SQLSTATEs lock_not_available and undefined_table (PostgreSQL manual, Appendix A)."""
UNAVAILABLE_STATUS: Final = 503
HTTP_STATUS: Final[dict[type[Exception], int]] = {
    RelayProtocolError: 400,
    RelaySessionForeign: 403,
    RelaySessionNotFound: 404,
    RelaySessionExpired: 410,
    RelaySessionClosed: 410,
}
"""HTTP status of errors that carry none of their own: the phone relay's (docs/relay.md)."""

_BUSY = ("database busy: another process holds the write lock on the database, so nothing was changed; "
         "retry, or raise database_busy_timeout")


def _database_error(exc: BaseException) -> DBAPIError | None:
    """The driver error behind `exc`: itself, or the one it was raised from or while handling (an
    `AuditFailure` hides the OperationalError that made the audit write fail)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DBAPIError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _is_busy(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return (isinstance(code, int) and code & 0xFF == SQLITE_BUSY) or \
        getattr(exc.orig, "sqlstate", None) == PG_LOCK_NOT_AVAILABLE


def _is_missing_table(exc: DBAPIError) -> bool:
    return _driver_line(exc).startswith("no such table") or \
        getattr(exc.orig, "sqlstate", None) == PG_UNDEFINED_TABLE


def _driver_line(exc: DBAPIError) -> str:
    text = str(exc.orig).strip() if exc.orig is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def error_code(exc: Exception) -> str:
    """The stable machine-readable code of a typed error (RFC 9457 `type` suffix)."""
    database = _database_error(exc)
    if database is not None and _is_busy(database):
        return "database_busy"
    if isinstance(exc, DBAPIError):
        if _is_missing_table(exc):
            return "database_schema"
        return "database_unavailable" if isinstance(exc, OperationalError | InterfaceError) else "database_error"
    if isinstance(exc, SQLAlchemyError):
        return "database_error"
    return str(getattr(exc, "code", type(exc).__name__))


def error_message(exc: Exception) -> str:
    """One line, without SQL statements, parameters or driver internals, naming the remedy where there is one."""
    code = error_code(exc)
    if code == "database_busy":
        return _BUSY
    if isinstance(exc, DBAPIError):
        line = _driver_line(exc)
        if code == "database_schema":
            return (f"database schema missing or damaged ({line}): `tsm db upgrade` creates it; restore a damaged "
                    "one from a backup")
        if code == "database_unavailable":
            return f"database unavailable: {line}: check database_url and that the database is reachable"
        return f"database error: {line}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_status(exc: Exception) -> int:
    """The HTTP status of a typed error: its own `status`, 503 for the database, else 500."""
    if error_code(exc).startswith("database_"):
        return UNAVAILABLE_STATUS
    mapped = next((status for cls, status in HTTP_STATUS.items() if isinstance(exc, cls)), None)
    if mapped is not None:
        return mapped
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else 500
