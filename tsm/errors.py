"""The typed errors every package raises at its edge, gathered for the CLI and the API."""

from __future__ import annotations

from cardsim.errors import CardSimError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (CardSimError,)


def error_code(exc: Exception) -> str:
    """The stable machine-readable code of a typed error (RFC 9457 `type` suffix)."""
    return str(getattr(exc, "code", type(exc).__name__))
