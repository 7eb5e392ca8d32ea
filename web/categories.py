"""The `category` and `retryable` members of every problem document (docs/api.md, "Errors").

Categories: SYSTEM (the TSM itself: HSM, database, configuration), SE (the secure element or the way to it),
APP (an app or service instance and its life cycle), SD (a security domain: its keys or security level),
APDU (a command the card refused or an answer that does not parse), USER (the request as given), SECURITY
(authentication, authorisation, a cryptogram or MAC that does not verify). `retryable` says whether sending the
same request again later may succeed; the first matching row of CLASSES decides.
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final

from globalplatform.errors import GpError
from keyservice.errors import (
    AuditChainBroken,
    CryptogramMismatch,
    HsmUnavailable,
    KcvMismatch,
    KeyRecordForged,
    KeyServiceError,
    MacMismatch,
    PolicyDenied,
    UnwrapFailed,
)
from tsm_core.errors import Forbidden
from tsm_core.flows.errors import CardCryptogramMismatch, KeyVersionNotFound, SecurityLevelNotAllowed, WrongCard
from tsm_core.jobs.engine import SeBusy
from tsm_core.jobs.stepcontext import DoesNotFit
from tsm_core.lifecycle.service import JobFailed
from tsm_core.lifecycle.states import InvalidTransition
from tsm_core.transport.errors import RelayProtocolError, RelaySessionIdInvalid, TransportError


@unique
class Category(StrEnum):
    """Where a problem lies (issue 12's error categories)."""

    SYSTEM = "SYSTEM"
    SE = "SE"
    APP = "APP"
    SD = "SD"
    APDU = "APDU"
    USER = "USER"
    SECURITY = "SECURITY"


CLASSES: Final[tuple[tuple[type[Exception], Category, bool], ...]] = (
    (Forbidden, Category.SECURITY, False),
    (PolicyDenied, Category.SECURITY, False),
    (CardCryptogramMismatch, Category.SECURITY, False),
    (CryptogramMismatch, Category.SECURITY, False),
    (MacMismatch, Category.SECURITY, False),
    (UnwrapFailed, Category.SECURITY, False),
    (KcvMismatch, Category.SECURITY, False),
    (KeyRecordForged, Category.SECURITY, False),
    (AuditChainBroken, Category.SECURITY, False),
    (RelayProtocolError, Category.USER, False),
    (RelaySessionIdInvalid, Category.USER, False),
    (TransportError, Category.SE, True),
    (WrongCard, Category.SE, False),
    (SeBusy, Category.SE, True),
    (DoesNotFit, Category.SE, False),
    (KeyVersionNotFound, Category.SD, False),
    (SecurityLevelNotAllowed, Category.SD, False),
    (InvalidTransition, Category.APP, False),
    (JobFailed, Category.APP, True),
    (GpError, Category.APDU, False),
    (HsmUnavailable, Category.SYSTEM, True),
    (KeyServiceError, Category.SYSTEM, False),
)
RETRYABLE_CODES: Final = frozenset({"database_busy", "database_unavailable"})
RETRYABLE_STATUS: Final = frozenset({429, 502, 503, 504})
STATUS_CATEGORY: Final = {401: Category.SECURITY, 403: Category.SECURITY}


def of_status(status: int, code: str = "") -> tuple[Category, bool]:
    """The category of a problem known by its status (and code) alone: SYSTEM for 5xx, SECURITY for 401/403,
    USER otherwise."""
    category = Category.SYSTEM if status >= 500 else STATUS_CATEGORY.get(status, Category.USER)
    return category, status in RETRYABLE_STATUS or code in RETRYABLE_CODES


def of_error(exc: Exception, status: int, code: str) -> tuple[Category, bool]:
    """The category of a typed error, and whether a retry may help."""
    for cls, category, retryable in CLASSES:
        if isinstance(exc, cls):
            return category, retryable
    return of_status(status, code)
