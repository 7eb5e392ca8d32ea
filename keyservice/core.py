"""Inside the barrier: what every sub-facade of the key service shares (never imported above keyservice).

`Core` owns the open HSM session, the database sessions and the audit log. It loads a key record and checks
policy before the HSM is touched (`authorise`), runs a body in a transaction that also writes the audit
record (`audited`), audits refusals (`refuse`), and creates token keys so that nothing is left half-done
(`create_key`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from globalplatform.kcv import KcvMethod, default_method
from globalplatform.keys import KeyAlgorithm
from keyservice.audit import AuditEntry, AuditLog
from keyservice.errors import AuditFailure, KeyExists, KeyNotFound, KeyServiceError
from keyservice.gp.kcv import kcv_hex
from keyservice.hsm import Hsm
from keyservice.inventory import KeyState, KeyUsage, Provenance
from keyservice.models import KeyRecord
from keyservice.policy import Operation, Request, check
from keyservice.views import KeyView, NewKey

_BY_LABEL: Final = select(KeyRecord).where(KeyRecord.label == bindparam("label"))  # built once: a hot path
KeyRef = tuple[str, str]
"""(label, KCV) of a key named in an audit record."""


class Core:
    """The open token, the inventory and the audit chain of one process."""

    def __init__(self, hsm: Hsm, sessions: sessionmaker[Session]) -> None:
        self.hsm = hsm
        self.sessions = sessions
        self.audit = AuditLog(hsm, sessions)

    # ---- the envelope of every call ---------------------------------------------------------------------

    @staticmethod
    def entry(req: Request, op: Operation | str, keys: Sequence[KeyRef], outcome: str,
              detail: str = "") -> AuditEntry:
        """The audit entry of one call."""
        return AuditEntry(str(req.caller), str(op), req.purpose.value, req.target, list(keys), outcome, detail)

    @contextmanager
    def audited(self, req: Request, op: Operation, keys: Sequence[KeyRef], detail: str = "") -> Iterator[Session]:
        """Run the body in a transaction that also writes the audit record; a failure is audited instead."""
        try:
            with self.audit.transaction(self.entry(req, op, keys, "ok", detail)) as db:
                yield db
        except KeyServiceError as exc:
            if isinstance(exc, AuditFailure):
                raise
            raise self.refuse(req, op, keys, exc) from None

    def refuse(self, req: Request, op: Operation, keys: Sequence[KeyRef], exc: KeyServiceError) -> KeyServiceError:
        """Audit a refused or failed call and hand back the error to raise."""
        self.audit.append(self.entry(req, op, keys, _outcome(exc), exc.code))
        return exc

    def record(self, db: Session, label: str) -> KeyRecord:
        """The inventory record of `label` (KeyNotFound)."""
        rec = db.execute(_BY_LABEL, {"label": label}).scalar_one_or_none()
        if rec is None:
            raise KeyNotFound(f"no key labelled {label!r} in the inventory")
        return rec

    def authorise(self, req: Request, op: Operation, label: str) -> KeyRecord:
        """Load the record and check policy before the HSM is touched; a refusal is audited and raised."""
        with self.sessions() as db:
            try:
                rec = self.record(db, label)
            except KeyNotFound as exc:
                raise self.refuse(req, op, [(label, "")], exc) from None
        try:
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
                   used: Sequence[KeyRef] = ()) -> KeyView:
        """Check policy, create the token object (`make`), then record it with its audit entry in one transaction.

        `make` returns the handle and the key's final description (an import learns the length only once
        the key is unwrapped). Nothing is left half-done: a token object without its record is destroyed.
        """
        try:
            check(req, op, usage, KeyState.PRE_ACTIVATION)
        except KeyServiceError as exc:
            raise self.refuse(req, op, [*used, (label, "")], exc) from None
        return self.new_key(self.entry(req, op, [], "ok"), label, usage, provenance, make, state, used)

    def new_key(self, entry: AuditEntry, label: str, usage: KeyUsage, provenance: Provenance,
                make: Callable[[bytes], tuple[int, NewKey]], state: KeyState,
                used: Sequence[KeyRef] = ()) -> KeyView:
        """Create and record a key for the call described by `entry` (actor, operation, purpose, target)."""
        try:
            with self.sessions() as db:
                if db.execute(select(KeyRecord.id).where(KeyRecord.label == label)).first():
                    raise KeyExists(f"a key labelled {label!r} is already in the inventory")
            cka_id = secrets.token_bytes(8)
            handle, spec = make(cka_id)
        except KeyServiceError as exc:
            self.audit.append(replace(entry, keys=[*used, (label, "")], outcome=_outcome(exc), detail=exc.code))
            raise
        try:
            method = default_method(spec.algorithm)
            kcv = self.kcv(handle, spec.algorithm, method)
            now = datetime.now(UTC)
            with self.audit.transaction(replace(entry, keys=[*used, (label, kcv)])) as db:
                rec = KeyRecord(label=label, cka_id=cka_id.hex(), algorithm=spec.algorithm.value,
                                length=spec.length, usage=usage.value, owner=spec.owner, kvn=spec.kvn,
                                key_id=spec.key_id, state=state.value, kcv=kcv, kcv_method=method.value,
                                provenance=provenance.value, created_by=entry.actor, created_at=now,
                                state_changed_at=now, note=spec.note, exportable=spec.exportable)
                db.add(rec)
        except KeyServiceError:
            self.hsm.destroy(label)  # nothing half-done: no token object without its record
            raise
        return KeyView.of(rec)


def _outcome(exc: KeyServiceError) -> str:
    return "refused" if exc.status < 500 else "error"
