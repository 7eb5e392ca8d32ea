"""`tsm keys reconcile`: what an officer finds and does after a crash, a rollback or a tampered database.

Findings, each with the action that `apply` takes and audits (one reconciliation record that names them all):

- `audit-rollback`: the database ends before the record the HSM anchors (a restored copy, deleted newest
  records): the records between are lost; the reconciliation record names them (seq and anchored hash) and the
  anchor moves to it, which unseals the service;
- `audit-break`: a record in the middle of the chain is altered or missing: acknowledged by name in the
  reconciliation record (verify keeps reporting it, and passes over it);
- `audit-sealed`: the anchor carries a seal whose cause the database no longer shows: the seal is lifted by the
  reconciliation record, which quotes it;
- `interrupted-generate` / `interrupted-destroy`: an intent left by a process killed mid-way: a creation is
  rolled back (its token object destroyed), a destruction rolled forward when its record already says destroyed
  (the object destroyed) and back otherwise;
- `forged-intent`: an intent whose signature does not hold is deleted and nothing else is done;
- `record-unsigned`: a record written before records were signed: signed as it is, on the officer's word;
- `record-forged` / `record-replayed`: a record the database changed or replayed from a backup: its fields cannot
  be trusted, so the key is marked compromised (and the record signed in that state);
- `orphan-object`: a token key with no record and no intent: reported only (investigate, then destroy it with
  the HSM's own tools).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from keyservice import operations, sealed_auth
from keyservice.audit import RECONCILE_OPERATION, AuditEntry, stored_keys
from keyservice.core import NOT_PRIVILEGED, Clearance, Core
from keyservice.errors import AuditChainBroken
from keyservice.inventory import KeyState
from keyservice.models import AuditHead, AuditRecord, KeyRecord
from keyservice.operations import OperationSpec
from keyservice.policy import Operation, Request

# Operations whose ok record produces a new version of a key record (and binds it by audit_seq).
RECORD_WRITERS: Final = frozenset({Operation.GENERATE.value, Operation.IMPORT_TEST.value,
                                   Operation.IMPORT_WRAPPED.value, Operation.CHANGE_STATE.value,
                                   Operation.DESTROY.value, RECONCILE_OPERATION})
DESTROY_OBJECT: Final = "destroy the token object"


@dataclass(frozen=True)
class Finding:
    """One thing reconcile found, and what it does (or did) about it."""

    kind: str
    subject: str
    detail: str
    action: str
    intent: str = ""
    """The id of the intent the finding is about (intent findings only)."""


def last_writers(core: Core) -> dict[str, int]:
    """For each key label, the last ok audit record that produced a version of its record."""
    last: dict[str, int] = {}
    with core.sessions() as db:
        rows = db.execute(select(AuditRecord).where(AuditRecord.operation.in_(RECORD_WRITERS))
                          .where(AuditRecord.outcome == "ok").order_by(AuditRecord.seq)).scalars()
        for row in rows:
            try:
                keys = stored_keys(row)
            except AuditChainBroken:
                continue
            written = keys if row.operation == RECONCILE_OPERATION else keys[-1:]  # imports name their KEK first
            for label, _ in written:
                last[label] = row.seq
    return last


def record_findings(core: Core) -> list[Finding]:
    """Unsigned, forged and replayed key records."""
    found = []
    writers = last_writers(core)
    with core.sessions() as db:
        records = db.execute(select(KeyRecord).order_by(KeyRecord.label)).scalars().all()
    for rec in records:
        why = core.signer.forged(rec)
        if why is not None:
            kind = "record-unsigned" if not rec.mac else "record-forged"
            action = "sign it as it is" if not rec.mac else "mark the key compromised"
            found.append(Finding(kind, rec.label, why, action))
        elif rec.audit_seq is not None and writers.get(rec.label, rec.audit_seq) > rec.audit_seq:
            found.append(Finding("record-replayed", rec.label,
                                 f"the record is the version of audit record {rec.audit_seq}, but audit record "
                                 f"{writers[rec.label]} changed the key since", "mark the key compromised"))
    return found


def _chain_findings(core: Core) -> list[Finding]:
    anchored = core.audit.anchor()
    with core.sessions() as db:
        head = db.execute(select(AuditHead)).scalar_one()
    found = []
    if anchored.seq > head.seq:
        lost = f"record {anchored.seq}" if anchored.seq == head.seq + 1 else \
            f"records {head.seq + 1} to {anchored.seq}"
        found.append(Finding("audit-rollback", lost,
                             f"the HSM anchors record {anchored.seq} (hash {anchored.hash[:16]}); the database ends "
                             f"at record {head.seq}: {lost} are lost, and with them whatever they recorded (a key "
                             "state change, an import): check the keys and redo what is missing",
                             "record the loss and anchor the reconciliation record"))
    acks = core.audit.acknowledged()
    while True:
        try:
            core.audit.walk(acks)
            break
        except AuditChainBroken as exc:
            if exc.seq in acks or exc.seq > head.seq:
                break
            acks[exc.seq] = str(exc)
            found.append(Finding("audit-break", f"record {exc.seq}", str(exc), "acknowledge it by name"))
    if anchored.sealed and not found:
        found.append(Finding("audit-sealed", f"record {anchored.seq}", anchored.sealed, "lift the seal"))
    return found


def _intent_findings(core: Core) -> list[Finding]:
    found = []
    on_token = {o.label: o for o in core.hsm.objects()}
    with core.sessions() as db:
        pending = core.signer.pending(db)
        records = {r.label: r for r in db.execute(select(KeyRecord)).scalars()}
    for intent, genuine in pending:
        subject = f"{intent.label} ({intent.operation} by {intent.actor} at {intent.created_at[:19]})"
        obj = on_token.get(intent.label)
        ours = obj is not None and obj.cka_id == intent.cka_id
        if not genuine:
            found.append(Finding("forged-intent", subject, "its signature does not hold", "delete the intent",
                                 intent.id))
        elif intent.operation == Operation.DESTROY.value:
            rec = records.get(intent.label)
            if rec is not None and rec.state == KeyState.DESTROYED.value:
                action = DESTROY_OBJECT if ours else "delete the intent"
                found.append(Finding("interrupted-destroy", subject, "the record says destroyed", action, intent.id))
            else:
                found.append(Finding("interrupted-destroy", subject, "the record is still live",
                                     "roll back: the key stays as it is", intent.id))
        elif ours and intent.label not in records:
            found.append(Finding("interrupted-generate", subject, "the token object has no record", DESTROY_OBJECT,
                                 intent.id))
        else:
            found.append(Finding("interrupted-generate", subject, "nothing was left on the token",
                                 "delete the intent", intent.id))
    pending_labels = {i.label for i, _ in pending}
    for label in sorted(on_token.keys() - records.keys() - pending_labels):
        found.append(Finding("orphan-object", label, "a token key with no record and no intent",
                             "none: investigate, then destroy it with the HSM's own tools"))
    return found


def findings(core: Core) -> list[Finding]:
    """Everything reconcile would act on, in the order it acts."""
    return _chain_findings(core) + _intent_findings(core) + record_findings(core)


def described(found: list[Finding]) -> OperationSpec:
    """The canonical description of applying these findings (what approvers approve)."""
    return operations.reconcile([(f.kind, f.subject, f.action) for f in found])


def apply(core: Core, req: Request, found: list[Finding], clearance: Clearance = NOT_PRIVILEGED, *,
          sealed: bool = False) -> int:
    """Take each finding's action; one reconciliation record names them all (and the approvers, whose approvals
    it consumes). Returns its sequence number. After a seal it also reports the failed authentications of the
    sealed period and, in its transaction, writes the TOTP steps used then (and any lock-out) to the people's
    rows, which its detail names (`persons`; keyservice/sealed_auth.py)."""
    lost = [f for f in found if f.kind == "audit-rollback"]
    breaks = [f for f in found if f.kind == "audit-break"]
    lifted = [f for f in found if f.kind == "audit-sealed"]
    with core.sessions() as db, db.begin():
        labels = {i.id: i.label for i, _ in core.signer.pending(db)}
        for finding in (f for f in found if f.intent in labels):
            if finding.action == DESTROY_OBJECT:
                core.hsm.destroy(labels[finding.intent])
            core.signer.finish(db, finding.intent)
    detail: dict[str, object] = {
        "lost": [f.detail for f in lost], "sealed": [f.detail for f in lifted],
        "acknowledged": [{"seq": int(f.subject.split()[-1]), "finding": f.detail} for f in breaks],
        "findings": [{"kind": f.kind, "subject": f.subject, "action": f.action} for f in found
                     if not f.kind.startswith("audit-")]}
    if clearance.note():
        detail["clearance"] = clearance.note()
    ledger = sealed_auth.load(core) if sealed else None
    rows = ledger.rows() if ledger is not None else {}
    for approver, step in clearance.steps:
        rows[approver] = (max(step, rows.get(approver, (0, 0.0))[0]), rows.get(approver, (0, 0.0))[1])
    if rows:
        detail["persons"] = sorted(rows)
    if ledger is not None and ledger.failures():
        detail["sealed_failures"] = ledger.failures()
    touched = [f.subject for f in found if f.kind.startswith("record-")]
    entry = AuditEntry(str(req.caller), RECONCILE_OPERATION, req.purpose.value, req.target,
                       [(label, "") for label in touched], "ok", json.dumps(detail, sort_keys=True))

    def within(db: Session, seq: int) -> None:
        clearance.consume(db, seq)
        sealed_auth.persist(core, db, seq, rows)

    seq = core.audit.reconcile(entry, within)
    if ledger is not None:
        sealed_auth.reset(core)
    if touched:
        with core.sessions() as db, db.begin():
            for finding in (f for f in found if f.kind.startswith("record-")):
                rec = db.execute(select(KeyRecord).where(KeyRecord.label == finding.subject)).scalar_one()
                if finding.kind != "record-unsigned" and rec.state != KeyState.DESTROYED.value:
                    rec.state, rec.state_changed_at = KeyState.COMPROMISED.value, datetime.now(UTC)
                core.signer.sign(rec, seq)
    return seq

