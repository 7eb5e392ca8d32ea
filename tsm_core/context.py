"""What every TSM service function works with: the database, the key-service facade and who is asking.

The edge (the `tsm` command, the web app) builds one `Tsm` per command or request; the service functions in
`tsm_core.registry`, `tsm_core.catalog` and `tsm_core.jobs` take it first. Database transactions are kept short
and are never held across a card exchange or a key-service call (the key service writes its audit records in
transactions of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from keyservice.identity import Caller
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService
from tsm_core.tenancy import ISSUER, Scope


@dataclass(frozen=True)
class Tsm:
    """The database sessions, the unsealed key service, the caller on whose behalf the TSM acts and the tenancy
    it acts for (tsm_core/tenancy.py)."""

    sessions: sessionmaker[Session]
    keys: KeyService
    caller: Caller
    scope: Scope = ISSUER

    def request(self, purpose: Purpose, target: str) -> Request:
        """A key-service request for this caller (target: SE id, job id, SP name)."""
        return Request(self.caller, purpose, target)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One short transaction, committed when the block ends normally."""
        with self.sessions() as db, db.begin():
            yield db


def now() -> datetime:
    """The current time, timezone-aware (UTC), as every table stores it."""
    return datetime.now(UTC)
