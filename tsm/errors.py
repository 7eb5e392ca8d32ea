"""The typed errors every package raises at its edge, gathered for the CLI and the API."""

from __future__ import annotations

from alembic.util.exc import CommandError
from sqlalchemy.exc import OperationalError

from cardsim.errors import CardSimError
from hsm_profiles.loader import ProfileError
from keyservice.errors import KeyServiceError
from softhsm.bootstrap import BootstrapError
from storage.config import SettingsError
from tsm_core.errors import TsmCoreError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    KeyServiceError, CardSimError, TsmCoreError, ProfileError, BootstrapError, OperationalError, CommandError,
    SettingsError,
)


def error_code(exc: Exception) -> str:
    """The stable machine-readable code of a typed error (RFC 9457 `type` suffix)."""
    if isinstance(exc, OperationalError):
        return "database_unavailable"
    return str(getattr(exc, "code", type(exc).__name__))


def error_message(exc: Exception) -> str:
    """One line, without SQL statements or driver internals."""
    if isinstance(exc, OperationalError):
        return f"database unavailable: {str(exc.orig).strip().splitlines()[0] if exc.orig else ''}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
