"""Inside the barrier: what every sub-facade of the key service shares (never imported above keyservice).

`Core` owns the open HSM session, the database sessions, the audit log and the record signer. It loads a key
record, checks its signature and policy before the HSM is touched (`authorise`), runs a body in a transaction
that also writes the audit record (`audited`), audits refusals (`refuse`), and creates token keys so that
nothing is left half-done (`create_key`: an intent before the token is touched, removed with the record).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Protocol, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from globalplatform.kcv import KcvMethod, default_method
from globalplatform.keys import KeyAlgorithm
from keyservice.audit import AuditEntry, AuditLog, Txn
from keyservice.errors import (
    ApprovalReplayed,
    AuditFailure,
    ConfigurationError,
    KeyExists,
    KeyNotFound,
    KeyServiceError,
    PolicyDenied,
    ServiceSealed,
)
from keyservice.gp.kcv import kcv_hex
from keyservice.hsm import Hsm
from keyservice.inventory import KeyState, KeyUsage, Provenance
from keyservice.models import AuditHead, KeyRecord
from keyservice.operations import OperationSpec
from keyservice.people_models import ApprovalUsed
from keyservice.policy import PRIVILEGED, Operation, Request, check
from keyservice.records import Signer
from keyservice.views import KeyView, NewKey

_BY_LABEL: Final = select(KeyRecord).where(KeyRecord.label == bindparam("label"))  # built once: a hot path
_KEYS = cast(Table, KeyRecord.__table__)
_HEAD = cast(Table, AuditHead.__table__)
_WITH_HEAD: Final = (select(_KEYS, _HEAD.c.seq.label("head_seq"), _HEAD.c.record_hash.label("head_hash"))
                     .join_from(_KEYS, _HEAD, _HEAD.c.id == 1).where(_KEYS.c.label == bindparam("label")))
"""A key record and the audit chain's head in one round trip, without the ORM (`authorise`, a hot path)."""
_KEY_COLUMNS: Final = tuple(c.name for c in _KEYS.columns)
KeyRef = tuple[str, str]
"""(label, KCV) of a key named in an audit record."""
LAB_NOTE: Final = "lab: console officer alone"
"""The detail of a privileged record a lab token's console officer made without approvals."""


@dataclass(frozen=True)
class Clearance:
    """How a privileged call was cleared (keyservice/approvals.py): by approvers, whose approvals are consumed in
    the transaction of its audit record, or on a lab token by the console officer alone, recorded as lab."""

    approvers: tuple[str, ...] = ()
    consumed: tuple[tuple[str, str, str], ...] = ()
    """(nonce, digest, approver) of each approval used."""
    lab: bool = False
    bootstrap: bool = False
    """An enrollment while the bootstrap is open (docs/people.md)."""
    steps: tuple[tuple[str, int], ...] = ()
    """(approver, TOTP step) of approvals given while the audit chain was sealed (keyservice/sealed_auth.py)."""

    def note(self) -> str:
        """What the audit record says about it."""
        if self.lab:
            return LAB_NOTE
        if self.bootstrap:
            return "bootstrap: enrollment before the bootstrap closed"
        return f"approved by {', '.join(self.approvers)}" if self.approvers else ""

    def consume(self, db: Session, seq: int) -> None:
        """Record each approval as used by audit record `seq` (ApprovalReplayed when one already was)."""
        if not self.consumed:
            return
        db.add_all(ApprovalUsed(nonce=nonce, digest=digest, approver=approver, audit_seq=seq)
                   for nonce, digest, approver in self.consumed)
        try:
            with db.begin_nested():
                db.flush()
        except IntegrityError:
            raise ApprovalReplayed("an approval of this set was already used by another operation") from None


NOT_PRIVILEGED: Final = Clearance()


class Gate(Protocol):
    """Verifies the approval set of a privileged call (keyservice/approvals.py)."""

    def clear(self, req: Request, spec: OperationSpec) -> Clearance:
        """The clearance, or the typed refusal (ApprovalRequired, ApprovalInvalid, QuorumNotReached, ...)."""
        ...


def with_note(detail: str, clearance: Clearance) -> str:
    """An audit detail with the clearance's note."""
    note = clearance.note()
    return f"{detail}; {note}" if detail and note else detail or note


class Core:
    """The open token, the inventory and the audit chain of one process."""

    def __init__(self, hsm: Hsm, sessions: sessionmaker[Session]) -> None:
        self.hsm = hsm
        self.sessions = sessions
        self.audit = AuditLog(hsm, sessions)
        self.signer = Signer(hsm)
        self.clock: Callable[[], float] = time.time
        self.gate: Gate | None = None

    def clear(self, req: Request, spec: OperationSpec, keys: Sequence[KeyRef], *, audited: bool = True) -> Clearance:
        """The approvals of a privileged call verified against `spec` (recomputed from the call's own arguments);
        a refusal is audited and raised (raised only, unless `audited`: a sealed chain takes no record)."""
        if self.gate is None:
            raise ConfigurationError("the key service has no approval gate")
        try:
            return self.gate.clear(req, spec)
        except KeyServiceError as exc:
            if not audited:
                raise
            raise self.refuse(req, spec.operation, keys, exc) from None

    # ---- the envelope of every call ---------------------------------------------------------------------

    @staticmethod
    def entry(req: Request, op: Operation | str, keys: Sequence[KeyRef], outcome: str,
              detail: str = "") -> AuditEntry:
        """The audit entry of one call."""
        return AuditEntry(str(req.caller), str(op), req.purpose.value, req.target, list(keys), outcome, detail)

    @contextmanager
    def audited(self, req: Request, op: Operation, keys: Sequence[KeyRef], detail: str = "",
                clearance: Clearance = NOT_PRIVILEGED) -> Iterator[Txn]:
        """Run the body in a transaction that also writes the audit record (and consumes the clearance's
        approvals); a failure is audited instead (a sealed chain takes no record at all)."""
        try:
            with self.audit.transaction(self.entry(req, op, keys, "ok", with_note(detail, clearance)),
                                        anchor=op in PRIVILEGED) as txn:
                clearance.consume(txn.db, txn.seq)
                yield txn
        except KeyServiceError as exc:
            if isinstance(exc, AuditFailure | ServiceSealed):
                raise
            raise self.refuse(req, op, keys, exc) from None

    def refuse(self, req: Request, op: Operation, keys: Sequence[KeyRef], exc: KeyServiceError) -> KeyServiceError:
        """Audit a refused or failed call and hand back the error to raise."""
        self.audit.append(self.entry(req, op, keys, _outcome(exc), exc.code))
        return exc

    def record(self, db: Session, label: str, *, signed: bool = True) -> KeyRecord:
        """The inventory record of `label` (KeyNotFound), its signature checked (KeyRecordForged) unless the
        caller only shows it."""
        rec = db.execute(_BY_LABEL, {"label": label}).scalar_one_or_none()
        if rec is None:
            raise KeyNotFound(f"no key labelled {label!r} in the inventory")
        return self.signer.check(rec) if signed else rec

    def authorise(self, req: Request, op: Operation, label: str, *, chain: bool = False,
                  usages: frozenset[KeyUsage] | None = None) -> KeyRecord:
        """Load the record and check its signature and policy before the HSM is touched; a refusal is audited
        and raised. With `chain`, the audit chain's head is checked in the same session first (AuditSealed).
        `usages` narrows the call to keys of those usage classes (PolicyDenied for another usage the policy
        would let through the same operation, e.g. a KMC for an application key's STORE DATA)."""
        with self.audit.reader() as db:
            found = db.connection().execute(_WITH_HEAD, {"label": label}).first()
            if chain and (found is None or not self.audit.knows_head(found.head_seq, found.head_hash)):
                self.audit.require_open(db)
        try:
            if found is None:
                raise KeyNotFound(f"no key labelled {label!r} in the inventory")
            rec = self.signer.check(KeyRecord(**{name: getattr(found, name) for name in _KEY_COLUMNS}))
        except KeyServiceError as exc:
            raise self.refuse(req, op, [(label, "")], exc) from None
        try:
            if usages is not None and rec.usage not in usages:
                raise PolicyDenied(f"{op} here takes {' or '.join(sorted(usages))} keys; {rec.label} is {rec.usage}")
            check(req, op, KeyUsage(rec.usage), KeyState(rec.state))
        except KeyServiceError as exc:
            raise self.refuse(req, op, [(rec.label, rec.kcv)], exc) from None
        return rec

    # ---- keys -------------------------------------------------------------------------------------------

    def kcv(self, handle: int, algorithm: KeyAlgorithm, method: KcvMethod | None = None, length: int = 3) -> str:
        """The KCV of a key object, by the given method or the algorithm's default."""
        return kcv_hex(self.hsm, handle, algorithm, method or default_method(algorithm), length)

    def create_key(self, req: Request, op: Operation, label: str, usage: KeyUsage, provenance: Provenance,
                   make: Callable[[bytes], tuple[int, NewKey]], state: KeyState = KeyState.PRE_ACTIVATION,
                   used: Sequence[KeyRef] = (), *, described: OperationSpec) -> KeyView:
        """Check policy and the approvals for `described`, create the token object (`make`), then record it with
        its audit entry in one transaction.

        `make` returns the handle and the key's final description (an import learns the length only once
        the key is unwrapped). Nothing is left half-done: a token object without its record is destroyed.
        """
        try:
            check(req, op, usage, KeyState.PRE_ACTIVATION)
        except KeyServiceError as exc:
            raise self.refuse(req, op, [*used, (label, "")], exc) from None
        clearance = self.clear(req, described, [*used, (label, "")])
        return self.new_key(self.entry(req, op, [], "ok", clearance.note()), label, usage, provenance, make, state,
                            used, clearance=clearance)

    def new_key(self, entry: AuditEntry, label: str, usage: KeyUsage, provenance: Provenance,
                make: Callable[[bytes], tuple[int, NewKey]], state: KeyState,
                used: Sequence[KeyRef] = (), *, with_intent: bool = True,
                clearance: Clearance = NOT_PRIVILEGED) -> KeyView:
        """Create and record a key for the call described by `entry` (actor, operation, purpose, target).

        Steps, each interruption of which `tsm keys reconcile` rolls back: the intent is committed, the token
        object is made, then the record, its audit record and the intent's removal commit together. The audit
        key itself, which signs intents, is made without one (`with_intent` false, at initialisation).
        """
        cka_id = secrets.token_bytes(8)
        intent = ""
        try:
            with self.sessions() as db, db.begin():
                if db.execute(select(KeyRecord.id).where(KeyRecord.label == label)).first():
                    raise KeyExists(f"a key labelled {label!r} is already in the inventory")
                if with_intent:
                    intent = self.signer.begin(db, entry.operation, label, cka_id.hex(), entry.actor)
        except KeyServiceError as exc:
            self.audit.append(replace(entry, keys=[*used, (label, "")], outcome=_outcome(exc), detail=exc.code))
            raise
        try:
            handle, spec = make(cka_id)
        except KeyServiceError as exc:
            self._drop_intent(intent)
            self.audit.append(replace(entry, keys=[*used, (label, "")], outcome=_outcome(exc), detail=exc.code))
            raise
        try:
            method = default_method(spec.algorithm)
            kcv = self.kcv(handle, spec.algorithm, method)
            now = datetime.now(UTC)
            with self.audit.transaction(replace(entry, keys=[*used, (label, kcv)]), anchor=True) as txn:
                clearance.consume(txn.db, txn.seq)
                rec = KeyRecord(label=label, cka_id=cka_id.hex(), algorithm=spec.algorithm.value,
                                length=spec.length, usage=usage.value, owner=spec.owner, kvn=spec.kvn,
                                key_id=spec.key_id, state=state.value, kcv=kcv, kcv_method=method.value,
                                provenance=provenance.value, created_by=entry.actor, created_at=now,
                                state_changed_at=now, note=spec.note, exportable=spec.exportable)
                self.signer.sign(rec, txn.seq)
                txn.db.add(rec)
                if intent:
                    self.signer.finish(txn.db, intent)
        except KeyServiceError:
            self.hsm.destroy(label)  # nothing half-done: no token object without its record
            self._drop_intent(intent)
            raise
        return KeyView.of(rec)

    def _drop_intent(self, intent: str) -> None:
        if not intent:
            return
        with self.sessions() as db, db.begin():
            self.signer.finish(db, intent)


def _outcome(exc: KeyServiceError) -> str:
    return "refused" if exc.status < 500 else "error"
