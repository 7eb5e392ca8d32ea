"""Authentication while the audit chain is sealed, for the reconciliation's approvals only (docs/people.md,
"Sealed chain"; docs/threat-model.md).

A sealed chain takes no record, so `authenticate` cannot write its audit record or the person's row. Here an
approver of the reconciliation proves password AND current code without writing either: the accepted TOTP step
travels in the approval (MACed by the HSM) and is written to the person's row by the reconciliation record's own
transaction (`persist`), which names the person in its detail, so that version of the row is bound to it.

What cannot wait for that record (rate limiting, a code seen twice) is kept in a token data object, the
**ledger** (`tsm.sealed-auth`), not in the database: the database is what a seal distrusts, and the ledger is
out of its administrator's reach. Per person: consecutive failures, the lock-out they caused (LOCK_AFTER
failures lock for LOCK_SECONDS, as outside a seal), every failure since the seal, the newest accepted step.
Names that are not active people share one entry (`?`), so the ledger stays small. It belongs to one seal (the
anchor it was written under): the reconciliation copies the failures into its record, the steps and lock-outs
into the rows, then empties it. Two processes updating it at the same moment may lose one update (SoftHSM2 has
no compare-and-swap on an attribute): a limit of the rate limiting, not of the approvals, which stay single-use.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.orm import Session

from keyservice.audit import Anchor
from keyservice.core import Core
from keyservice.errors import AccountLocked, AuthenticationFailed, InvalidInput, TotpReplayed
from keyservice.people import (
    FAILED,
    LOCK_AFTER,
    LOCK_SECONDS,
    Authenticated,
    Credentials,
    People,
    PersonState,
    Role,
    check_name,
    last_version,
)
from keyservice.people_models import PersonRecord

LEDGER_APPLICATION: Final = "tsm.sealed-auth"
UNKNOWN: Final = "?"
"""The ledger entry of every name that is not an active person."""
NAMES_MAX: Final = 64
"""People the ledger tracks by name; further names share the `?` entry."""


@dataclass
class Tally:
    """One name's authentications since the seal."""

    failures: int = 0
    """Consecutive failures (reset by a success or a lock-out)."""
    total: int = 0
    """Every failure since the seal (what the reconciliation record reports)."""
    locked_until: float = 0.0
    step: int = 0
    """The newest TOTP step accepted (0: none)."""


@dataclass
class Ledger:
    """The ledger of one seal: a tally per name."""

    seal: str
    people: dict[str, Tally] = field(default_factory=dict)

    def encode(self) -> str:
        body = {name: [t.failures, t.total, t.locked_until, t.step] for name, t in sorted(self.people.items())}
        return json.dumps({"seal": self.seal, "people": body}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None, seal: str) -> Ledger:
        """The ledger of `seal` (empty when the stored one belongs to another seal or does not parse)."""
        try:
            body = json.loads(text or "{}")
            if body.get("seal") != seal:
                return cls(seal)
            return cls(seal, {str(n): Tally(int(v[0]), int(v[1]), float(v[2]), int(v[3]))
                              for n, v in body["people"].items()})
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return cls(seal)

    def tally(self, name: str) -> Tally:
        if name not in self.people and (name != UNKNOWN and len(self.people) >= NAMES_MAX):
            name = UNKNOWN
        return self.people.setdefault(name, Tally())

    def failures(self) -> dict[str, int]:
        """Failures per name since the seal (for the reconciliation record)."""
        return {name: t.total for name, t in sorted(self.people.items()) if t.total}

    def rows(self) -> dict[str, tuple[int, float]]:
        """(step, locked_until) of each person whose row the reconciliation writes."""
        return {name: (t.step, t.locked_until) for name, t in sorted(self.people.items())
                if name != UNKNOWN and (t.step or t.locked_until)}


def seal_of(anchor: Anchor) -> str:
    """The identity of the seal the anchor carries."""
    return hashlib.sha256(anchor.encode().encode()).hexdigest()[:32]


def load(core: Core) -> Ledger:
    """The ledger of the current seal (the token object is made the first time)."""
    seal = seal_of(core.audit.anchor())
    core.hsm.make_anchor(LEDGER_APPLICATION, Ledger(seal).encode())
    return Ledger.decode(core.hsm.anchor(LEDGER_APPLICATION), seal)


def save(core: Core, ledger: Ledger) -> None:
    """Write the ledger back to the token."""
    core.hsm.set_anchor(LEDGER_APPLICATION, ledger.encode())


def reset(core: Core) -> None:
    """Empty the ledger once the reconciliation record holds what it said."""
    save(core, Ledger(seal_of(core.audit.anchor())))


def _fail(core: Core, ledger: Ledger, name: str, at: float) -> None:
    tally = ledger.tally(name)
    tally.failures += 1
    tally.total += 1
    if tally.failures >= LOCK_AFTER and name != UNKNOWN:
        tally.failures, tally.locked_until = 0, at + LOCK_SECONDS
    save(core, ledger)


def authenticate(people: People, core: Core, name: str, creds: Credentials, at: float) -> tuple[Authenticated, int]:
    """Password AND code while the chain is sealed, nothing written but the ledger: the person and the TOTP step
    accepted (AuthenticationFailed, TotpReplayed: a step not later than the row's or the ledger's,
    AccountLocked, PersonRecordForged)."""
    ledger = load(core)
    try:
        check_name(name)
        row = people.load(core, name)
    except InvalidInput:
        row = None
    if row is None or row.state != PersonState.ACTIVE.value:
        people.burn(creds.password)  # the same work whether the name exists or not
        _fail(core, ledger, UNKNOWN, at)
        raise AuthenticationFailed(FAILED)
    tally = ledger.tally(name)
    if max(row.locked_until, tally.locked_until) > at:
        raise AccountLocked(f"the account is locked after {LOCK_AFTER} failures; try again later")
    step = people.proof(core, row, creds, at)
    if step is None or step <= max(row.last_step, tally.step):
        _fail(core, ledger, name, at)
        if step is None:
            raise AuthenticationFailed(FAILED)
        raise TotpReplayed("this TOTP code was already used; wait for the next one")
    tally.failures, tally.step = 0, step
    save(core, ledger)
    return Authenticated(name, Role(row.role), at, row.owner), step


def persist(core: Core, db: Session, seq: int, rows: dict[str, tuple[int, float]]) -> None:
    """In the reconciliation record's transaction (record `seq`, whose detail names these people): each person's
    row takes the TOTP step used while sealed and any lock-out, and is signed as that record's version. A row
    that is not the one the key service signed is left as it is (it stays refused)."""
    reconciled = core.signer.reconciled_persons(db)
    for name, (step, locked_until) in rows.items():
        row = db.get(PersonRecord, name)
        if row is None or People.forged(core, row, last_version(core, db, name, reconciled)) is not None:
            continue
        row.last_step = max(row.last_step, step)
        row.locked_until = max(row.locked_until, locked_until)
        People.sign(core, row, seq)
