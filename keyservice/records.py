"""Key records and intents bound to the HSM, so that an administrator of the database cannot forge them.

A key record is signed with HMAC-SHA256 by the HSM-resident audit key over its canonical encoding: every
field, including the sequence number of the audit record that produced this version (`audit_seq`). The
signature is checked before every use of the key (`check`); a record changed in the database is refused with
KeyRecordForged and reported by `tsm keys check`, which also catches a whole row replayed from a backup by
comparing `audit_seq` with the last audit record that changed the key.

An intent (`ks_intents`) is written before the token is touched by a key creation or destruction and removed
with the record's commit; each is signed the same way, so a forged intent cannot make `tsm keys reconcile`
destroy a key. Domain separation: each signed form starts with its own label.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import UTC, datetime
from typing import Final

from pkcs11.mechanisms import Mechanism
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from keyservice.audit import AUDIT_KEY_LABEL, RECONCILE_OPERATION
from keyservice.errors import KeyRecordForged
from keyservice.hsm import Hsm
from keyservice.models import AuditRecord, Intent, KeyRecord
from storage.session import durable

RECORD_DOMAIN: Final = b"tsm.key-record.v1\x00"
INTENT_DOMAIN: Final = b"tsm.intent.v1\x00"
VERIFIED_MAX: Final = 4096


def _utc(value: datetime) -> str:
    """A timestamp as stored by either backend (SQLite drops the zone: naive means UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def record_encoding(rec: KeyRecord) -> bytes:
    """Canonical encoding of every field of a key record (sorted-key compact JSON)."""
    body = {"label": rec.label, "cka_id": rec.cka_id, "algorithm": rec.algorithm, "length": rec.length,
            "usage": rec.usage, "owner": rec.owner, "kvn": rec.kvn, "key_id": rec.key_id, "state": rec.state,
            "kcv": rec.kcv, "kcv_method": rec.kcv_method, "provenance": rec.provenance,
            "created_by": rec.created_by, "created_at": _utc(rec.created_at),
            "state_changed_at": _utc(rec.state_changed_at), "note": rec.note, "exportable": bool(rec.exportable),
            "audit_seq": rec.audit_seq}
    return RECORD_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def intent_encoding(intent: Intent) -> bytes:
    """Canonical encoding of an intent."""
    body = {"id": intent.id, "operation": intent.operation, "label": intent.label, "cka_id": intent.cka_id,
            "actor": intent.actor, "created_at": intent.created_at}
    return INTENT_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class Signer:
    """Signs and checks key records and intents with the audit key, inside the HSM.

    A record checked once is remembered by its exact encoding and MAC (`_verified`, bounded): the HMAC is
    deterministic, so the same bytes with the same MAC need no second HSM call.
    """

    def __init__(self, hsm: Hsm) -> None:
        self._hsm = hsm
        self._verified: dict[bytes, str] = {}

    def _mac(self, data: bytes) -> str:
        with self._hsm.lock:
            return self._hsm.raw.sign(self._hsm.hot_handle(AUDIT_KEY_LABEL), Mechanism.SHA256_HMAC, data).hex()

    def mac(self, encoding: bytes) -> str:
        """HMAC-SHA256 (hex) by the audit key of another signed form (person and quorum rows; each encoding starts
        with its own domain label)."""
        return self._mac(encoding)

    def sign(self, rec: KeyRecord, audit_seq: int) -> None:
        """Bind the record, as it now is, to the audit record `audit_seq` that produced it."""
        rec.audit_seq = audit_seq
        rec.mac = self._mac(record_encoding(rec))

    def forged(self, rec: KeyRecord) -> str | None:
        """Why the record is not the one the key service signed (None when it is)."""
        if not rec.mac:
            return "the record is not signed (written before signing existed, or its signature was removed)"
        encoding = record_encoding(rec)
        known = self._verified.get(encoding)
        if known is not None and hmac.compare_digest(known, rec.mac):
            return None
        if not hmac.compare_digest(self._mac(encoding), rec.mac):
            return "the record's fields are not the ones the key service signed"
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[encoding] = rec.mac
        return None

    def check(self, rec: KeyRecord) -> KeyRecord:
        """The record, or KeyRecordForged naming what to do."""
        why = self.forged(rec)
        if why is not None:
            raise KeyRecordForged(f"key {rec.label!r}: {why}; it is not used (tsm keys check, tsm keys reconcile)")
        return rec

    # ---- intents ------------------------------------------------------------------------------------------

    def begin(self, db: Session, operation: str, label: str, cka_id: str, actor: str) -> str:
        """Add the intent to create or destroy `label` (the caller commits it before the token is touched)."""
        intent = Intent(id=secrets.token_hex(16), operation=operation, label=label, cka_id=cka_id, actor=actor,
                        created_at=datetime.now(UTC).isoformat(timespec="microseconds"), mac="")
        intent.mac = self._mac(intent_encoding(intent))
        durable(db)
        db.add(intent)
        return intent.id

    @staticmethod
    def finish(db: Session, intent_id: str) -> None:
        """Remove an intent (in the caller's transaction)."""
        db.execute(delete(Intent).where(Intent.id == intent_id))

    @staticmethod
    def last_written(db: Session, target: str, operations: frozenset[str]) -> int:
        """The sequence number of the newest ok audit record of `operations` on `target` (0 when none): a signed
        row older than it is a replayed version."""
        seq = db.execute(select(func.max(AuditRecord.seq)).where(AuditRecord.target == target)
                         .where(AuditRecord.outcome == "ok").where(AuditRecord.operation.in_(operations))).scalar()
        return int(seq or 0)

    @staticmethod
    def reconciled_persons(db: Session) -> dict[str, int]:
        """For each person whose row a reconciliation record wrote (its detail's `persons`: the TOTP steps used
        while the chain was sealed, docs/people.md "Sealed chain"), the newest such record."""
        found: dict[str, int] = {}
        rows = db.execute(select(AuditRecord.seq, AuditRecord.detail)
                          .where(AuditRecord.operation == RECONCILE_OPERATION)
                          .where(AuditRecord.outcome == "ok").order_by(AuditRecord.seq))
        for seq, detail in rows:
            try:
                persons = json.loads(detail).get("persons", [])
            except (ValueError, AttributeError):
                continue
            for name in persons if isinstance(persons, list) else []:
                if isinstance(name, str):
                    found[name] = int(seq)
        return found

    def pending(self, db: Session) -> list[tuple[Intent, bool]]:
        """Every intent left behind, and whether its signature holds."""
        intents = db.execute(select(Intent).order_by(Intent.created_at)).scalars().all()
        return [(i, hmac.compare_digest(self._mac(intent_encoding(i)), i.mac)) for i in intents]
