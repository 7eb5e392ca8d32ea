"""People who authenticate to the key service (`KeyService.people`; issue 11, docs/people.md).

A person has a name, a role, an argon2id password hash (RFC 9106) and a TOTP secret (RFC 6238, 30-s steps,
6 digits) sealed with AES-GCM by the HSM-resident vault key; the row is signed by the audit key and bound to
the audit record that produced it, so a database administrator can neither change a role, swap a hash, nor put
back an older version (a removed person, a used TOTP step, a failure count). `authenticate` checks password
AND code: a code whose time step is not later than the last accepted one is refused (replay), LOCK_AFTER
consecutive failures lock the account for LOCK_SECONDS. Every outcome is audited (actor: the person; never a
password or a code).

While the bootstrap is open (a fresh installation), people are enrolled without approvals; `close_bootstrap`
(two active officers at least) closes it for good: the mark is a token data object, which the database cannot
remove. After that, enrolment and removal need an approval set (ceremony 6).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum, unique
from typing import TYPE_CHECKING, Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from keyservice import operations, sealing
from keyservice.audit import AuditEntry
from keyservice.core import Clearance, Core
from keyservice.errors import (
    AccountLocked,
    AuthenticationFailed,
    BootstrapClosed,
    BootstrapIncomplete,
    InvalidInput,
    KeyServiceError,
    PersonExists,
    PersonNotFound,
    PersonRecordForged,
    PolicyDenied,
    TotpReplayed,
    WeakPassword,
)
from keyservice.identity import NAME_MAX
from keyservice.people_models import PersonRecord
from keyservice.policy import Operation, Purpose, Request, check_officer

if TYPE_CHECKING:
    from keyservice.approvals import ApprovalSet

VAULT_KEY_LABEL: Final = "tsm.vault-key"
BOOTSTRAP_CLOSED_MARKER: Final = "tsm.bootstrap-closed"
PERSON_DOMAIN: Final = b"tsm.person.v1\x00"
TOTP_CONTEXT: Final = b"tsm.totp-secret.v1\x00"
PASSWORD_MIN: Final = 12
PASSWORD_MAX: Final = 1024
TOTP_STEP: Final = 30
TOTP_WINDOW: Final = 1
"""One step either side of now (RFC 6238 §5.2: clock drift and transmission delay)."""
LOCK_AFTER: Final = 5
LOCK_SECONDS: Final = 900.0
FAILED: Final = "name, password or code is wrong"
ROW_WRITERS: Final = frozenset({Operation.ENROLL.value, Operation.REMOVE_PERSON.value, Operation.AUTHENTICATE.value})
"""Operations whose ok audit record produces a new version of a person's row."""


@unique
class Role(StrEnum):
    """The roles of issue 11 (docs/people.md)."""

    OFFICER = "officer"
    CUSTODIAN = "custodian"
    AUDITOR = "auditor"
    OPERATOR = "operator"
    VENDOR = "vendor"
    SP = "sp"
    ADMIN = "admin"


@unique
class PersonState(StrEnum):
    """A person's state: removed people keep their row (and name) for the audit trail."""

    ACTIVE = "active"
    REMOVED = "removed"


@dataclass(frozen=True)
class Credentials:
    """A password and the current TOTP code; neither is ever shown."""

    password: str = field(repr=False)
    code: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class Enrollment:
    """What an enrolment hands back once: the TOTP provisioning URI and secret for the person's authenticator."""

    name: str
    role: Role
    provisioning_uri: str = field(repr=False)
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Enrollment({self.name!r}, {self.role.value}, secret <hidden>)"

    __str__ = __repr__


@dataclass(frozen=True)
class Authenticated:
    """A person who just proved password and code."""

    name: str
    role: Role
    at: float
    owner: str = ""


@dataclass(frozen=True)
class PersonView:
    """A person as `tsm user list` shows them (no hash, no secret)."""

    name: str
    role: Role
    state: PersonState
    owner: str
    enrolled_at: float
    enrolled_by: str
    locked: bool
    genuine: bool


def check_name(name: str) -> None:
    """A person's name: 1 to NAME_MAX printable characters without surrounding spaces (InvalidInput)."""
    if not name or len(name) > NAME_MAX or not name.isprintable() or name.strip() != name:
        raise InvalidInput(f"a person's name is 1 to {NAME_MAX} printable characters without surrounding spaces")


def check_password(name: str, password: str) -> None:
    """The password policy: PASSWORD_MIN characters at least, and not the name (WeakPassword)."""
    if len(password) < PASSWORD_MIN or len(password) > PASSWORD_MAX:
        raise WeakPassword(f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters long")
    if password.casefold() == name.casefold():
        raise WeakPassword("a password may not be the person's name")


def person_encoding(row: PersonRecord) -> bytes:
    """Canonical encoding of every field of a person's row but its MAC."""
    body = {"name": row.name, "role": row.role, "owner": row.owner, "state": row.state,
            "password_hash": row.password_hash, "totp_sealed": row.totp_sealed, "enrolled_at": row.enrolled_at,
            "enrolled_by": row.enrolled_by, "removed_at": row.removed_at, "last_step": row.last_step,
            "failures": row.failures, "locked_until": row.locked_until, "audit_seq": row.audit_seq}
    return PERSON_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _target(name: str) -> str:
    return f"person:{name}"


def last_version(core: Core, db: Session, name: str, reconciled: dict[str, int] | None = None) -> int:
    """The audit record that produced the newest version of `name`'s row: an ok enrolment, removal or
    authentication, or a reconciliation that recorded TOTP steps used while the chain was sealed."""
    written = core.signer.last_written(db, _target(name), ROW_WRITERS)
    return max(written, (core.signer.reconciled_persons(db) if reconciled is None else reconciled).get(name, 0))


class People:
    """Enrolment, authentication and removal of people; the bootstrap."""

    def __init__(self, core: Callable[[], Core], clock: Callable[[], float]) -> None:
        self._core = core
        self._clock = clock
        self._hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory parameters (argon2-cffi defaults)
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    # ---- rows ---------------------------------------------------------------------------------------------

    @staticmethod
    def sign(core: Core, row: PersonRecord, seq: int) -> None:
        row.audit_seq = seq
        row.mac = core.signer.mac(person_encoding(row))

    @staticmethod
    def forged(core: Core, db_row: PersonRecord, last_written: int) -> str | None:
        """Why a row is not the one the key service signed last (None when it is)."""
        if not hmac.compare_digest(core.signer.mac(person_encoding(db_row)), db_row.mac or ""):
            return "the record's fields are not the ones the key service signed"
        if db_row.audit_seq < last_written:
            return f"the record is an older version (audit record {db_row.audit_seq}; the last is {last_written})"
        return None

    def load(self, core: Core, name: str) -> PersonRecord | None:
        """The row of `name`, its signature and version checked (PersonRecordForged), or None."""
        with core.sessions() as db:
            row = db.get(PersonRecord, name)
            if row is None:
                return None
            why = self.forged(core, row, last_version(core, db, name))
        if why is not None:
            raise PersonRecordForged(f"person {name!r}: {why}; they cannot authenticate until an officer "
                                     "re-enrolls them")
        return row

    def person(self, name: str) -> PersonView:
        """One person (PersonNotFound), the row's signature checked."""
        core = self._core()
        row = self.load(core, name)
        if row is None:
            raise PersonNotFound(f"no person named {name!r}")
        return self._view(row, True)

    def _view(self, row: PersonRecord, genuine: bool) -> PersonView:
        return PersonView(row.name, Role(row.role), PersonState(row.state), row.owner, row.enrolled_at,
                          row.enrolled_by, row.locked_until > self._clock(), genuine)

    def list_people(self) -> list[PersonView]:
        """Every person, removed ones included, with whether the row is genuine."""
        core = self._core()
        with core.sessions() as db:
            rows = db.execute(select(PersonRecord).order_by(PersonRecord.name)).scalars().all()
            reconciled = core.signer.reconciled_persons(db)
            return [self._view(r, self.forged(core, r, last_version(core, db, r.name, reconciled)) is None)
                    for r in rows]

    def eligible(self, roles: frozenset[Role]) -> list[str]:
        """Names of the active people of `roles` whose rows are genuine (the N of a quorum)."""
        return [p.name for p in self.list_people() if p.genuine and p.state is PersonState.ACTIVE and p.role in roles]

    # ---- enrolment and removal ----------------------------------------------------------------------------

    def bootstrap_open(self) -> bool:
        """Whether people can still be enrolled without approvals (no bootstrap-closed mark on the token)."""
        return not self._core().hsm.has_marker(BOOTSTRAP_CLOSED_MARKER)

    def _clearance(self, core: Core, req: Request, spec: operations.OperationSpec) -> Clearance:
        if self.bootstrap_open():
            return Clearance(bootstrap=True)
        return core.clear(req, spec, [])

    def enroll(self, req: Request, name: str, role: Role, password: str, *, approvals: ApprovalSet | None = None,
               owner: str | None = None) -> Enrollment:
        """Enroll a person: argon2id hash, a new TOTP secret sealed in the HSM; the secret and its provisioning URI
        are returned once. Officers only; approvals needed once the bootstrap is closed."""
        check_name(name)
        role = Role(role)
        check_password(name, password)
        if owner is not None and (len(owner) > 128 or not owner.isprintable()):
            raise InvalidInput("an owner is at most 128 printable characters")
        core = self._core()
        if approvals is not None:
            req = replace(req, approvals=approvals)
        req = replace(req, target=_target(name))
        try:
            check_officer(req, Operation.ENROLL)
        except KeyServiceError as exc:
            raise core.refuse(req, Operation.ENROLL, [], exc) from None
        clearance = self._clearance(core, req, operations.enroll(name, role.value, owner))
        secret = pyotp.random_base32()
        sealed = sealing.seal(core.hsm, core.hsm.hot_handle(VAULT_KEY_LABEL), secret.encode(), TOTP_CONTEXT +
                              name.encode())
        digest = self._hasher.hash(password)
        with core.audited(req, Operation.ENROLL, [], f"role={role.value}", clearance) as txn:
            if txn.db.get(PersonRecord, name) is not None:
                raise PersonExists(f"a person named {name!r} is already enrolled")
            row = PersonRecord(name=name, role=role.value, owner=owner or "", state=PersonState.ACTIVE.value,
                               password_hash=digest, totp_sealed=sealed.hex(), enrolled_at=self._clock(),
                               enrolled_by=str(req.caller), removed_at=None, last_step=0, failures=0,
                               locked_until=0.0)
            self.sign(core, row, txn.seq)
            txn.db.add(row)
        uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="TSM")
        return Enrollment(name, role, uri, secret)

    def remove(self, req: Request, name: str, *, approvals: ApprovalSet | None = None) -> PersonView:
        """Remove a person (the row stays, state removed; they can no longer authenticate or approve)."""
        core = self._core()
        if approvals is not None:
            req = replace(req, approvals=approvals)
        req = replace(req, target=_target(name))
        try:
            check_officer(req, Operation.REMOVE_PERSON)
            row = self.load(core, name)
            if row is None or row.state != PersonState.ACTIVE.value:
                raise PersonNotFound(f"no active person named {name!r}")
        except KeyServiceError as exc:
            raise core.refuse(req, Operation.REMOVE_PERSON, [], exc) from None
        clearance = self._clearance(core, req, operations.remove(name))
        with core.audited(req, Operation.REMOVE_PERSON, [], f"role={row.role}", clearance) as txn:
            row = txn.db.get(PersonRecord, name)
            if row is None:
                raise PersonNotFound(f"no active person named {name!r}")
            row.state, row.removed_at = PersonState.REMOVED.value, self._clock()
            self.sign(core, row, txn.seq)
        return self._view(row, True)

    # ---- authentication -----------------------------------------------------------------------------------

    def authenticate(self, name: str, creds: Credentials, *, now: float | None = None) -> Authenticated:
        """Password AND current TOTP code (AuthenticationFailed, TotpReplayed, AccountLocked,
        PersonRecordForged); audited whatever the outcome."""
        at = self._clock() if now is None else now
        core = self._core()
        try:
            check_name(name)
        except InvalidInput:
            self.burn(creds.password)
            core.audit.append(AuditEntry("unknown", Operation.AUTHENTICATE.value, Purpose.AUTHENTICATION.value,
                                         "person:?", [], "refused", f"{AuthenticationFailed.code}: invalid name"))
            raise AuthenticationFailed(FAILED) from None
        entry = AuditEntry(name, Operation.AUTHENTICATE.value, Purpose.AUTHENTICATION.value, _target(name), [],
                           "refused")
        try:
            row = self.load(core, name)
        except PersonRecordForged as exc:
            core.audit.append(replace(entry, detail=exc.code))
            raise
        if row is None or row.state != PersonState.ACTIVE.value:
            self.burn(creds.password)  # the same work whether the name exists or not
            core.audit.append(replace(entry, detail=f"{AuthenticationFailed.code}: no active person"))
            raise AuthenticationFailed(FAILED)
        if row.locked_until > at:
            core.audit.append(replace(entry, detail=AccountLocked.code))
            raise AccountLocked(f"the account is locked after {LOCK_AFTER} failures; try again later")
        step = self.proof(core, row, creds, at)
        error: AuthenticationFailed | None = None
        if step is None:
            error = AuthenticationFailed(FAILED)
        elif step <= row.last_step:
            error = TotpReplayed("this TOTP code was already used; wait for the next one")
        with core.audit.transaction(replace(entry, outcome="ok" if error is None else "refused",
                                            detail="" if error is None else error.code)) as txn:
            fresh = txn.db.get(PersonRecord, name)
            if fresh is None:
                raise PersonNotFound(f"no person named {name!r}")
            if error is None and step is not None:
                fresh.last_step, fresh.failures, fresh.locked_until = step, 0, 0.0
            else:
                fresh.failures += 1
                if fresh.failures >= LOCK_AFTER:
                    fresh.failures, fresh.locked_until = 0, at + LOCK_SECONDS
            self.sign(core, fresh, txn.seq)
        if error is not None:
            raise error
        return Authenticated(name, Role(row.role), at, row.owner)

    def proof(self, core: Core, row: PersonRecord, creds: Credentials, at: float) -> int | None:
        """The TOTP time step of a correct password and code for `row`, or None (nothing is written)."""
        return self._step(core, row, creds.code, at) if self._password_ok(row.password_hash, creds.password) else None

    def burn(self, password: str) -> None:
        """The work of a password check for a name that has no active row (no timing oracle)."""
        self._password_ok(self._dummy, password)

    def _password_ok(self, digest: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(digest, password))
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    def _step(core: Core, row: PersonRecord, code: str, at: float) -> int | None:
        """The time step (RFC 6238 §4.2) within the window whose code is `code`, or None."""
        if not (len(code) == 6 and code.isdigit()):
            return None
        secret = sealing.unseal(core.hsm, core.hsm.hot_handle(VAULT_KEY_LABEL), bytes.fromhex(row.totp_sealed),
                                TOTP_CONTEXT + row.name.encode()).decode()
        totp = pyotp.TOTP(secret, interval=TOTP_STEP)
        now_step = int(at // TOTP_STEP)
        for step in range(now_step + TOTP_WINDOW, now_step - TOTP_WINDOW - 1, -1):
            if hmac.compare_digest(totp.at(step * TOTP_STEP), code):
                return step
        return None

    # ---- bootstrap ----------------------------------------------------------------------------------------

    def close_bootstrap(self, name: str, creds: Credentials, *, now: float | None = None) -> None:
        """Close the bootstrap for good (BootstrapClosed, BootstrapIncomplete): the closing officer authenticates,
        at least two active officers must be enrolled; audited."""
        core = self._core()
        who = self.authenticate(name, creds, now=now)
        entry = AuditEntry(name, Operation.CLOSE_BOOTSTRAP.value, Purpose.AUTHENTICATION.value, "bootstrap", [],
                           "ok")
        try:
            if who.role is not Role.OFFICER:
                raise PolicyDenied(f"only an officer closes the bootstrap ({name} is {who.role.value})")
            if not self.bootstrap_open():
                raise BootstrapClosed("the bootstrap is already closed")
            officers = self.eligible(frozenset({Role.OFFICER}))
            if len(officers) < 2:
                raise BootstrapIncomplete(f"closing the bootstrap needs two active officers; {len(officers)} "
                                          "enrolled")
        except KeyServiceError as exc:
            core.audit.append(replace(entry, outcome="refused", detail=exc.code))
            raise
        with core.audit.transaction(replace(entry, detail=f"officers={','.join(officers)}"), anchor=True):
            core.hsm.put_marker(BOOTSTRAP_CLOSED_MARKER)
