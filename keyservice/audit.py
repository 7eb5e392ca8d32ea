"""The audit chain: append-only records linked by SHA-256 and MACed by an HSM-resident key.

Each record's canonical encoding (version 1, below; it never changes) includes its sequence number and the
previous record's hash; `mac` = HMAC-SHA256 over the record hash with the non-extractable audit key. The
chain head (seq:hash) is mirrored into a token data object, so truncating the table or restoring an old
database is detected as well. Records hold labels, KCVs, purposes and targets, never key material.
An append that fails raises AuditFailure and the covered operation fails with it (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, cast

from pkcs11.mechanisms import Mechanism
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keyservice.errors import AuditChainBroken, AuditFailure, KeyServiceError
from keyservice.hsm import Hsm
from keyservice.models import AuditHead, AuditRecord
from keyservice.views import VerifyReport

AUDIT_KEY_LABEL: Final = "tsm.audit-key"
ANCHOR_APPLICATION: Final = "tsm.audit-head"
ENCODING_VERSION: Final = 1
GENESIS: Final = "0" * 64
_HEAD_ID: Final = 1


# Statements built once (building and cache-keying them per append cost more than the database work).
# Bumping the head row first serialises appends (row lock on PostgreSQL, write lock on SQLite) and returns
# the new sequence number with the previous record's hash, not yet replaced.
_HEAD = cast(Table, AuditHead.__table__)
_BUMP_HEAD: Final = (update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(seq=_HEAD.c.seq + 1)
                     .returning(_HEAD.c.seq, _HEAD.c.record_hash))
_SET_HEAD_HASH: Final = update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(record_hash=bindparam("new_hash"))
_INSERT_RECORD: Final = insert(cast(Table, AuditRecord.__table__))


@dataclass(frozen=True)
class AuditEntry:
    """What one key-service call did: who, what, why, on what, with which keys, and how it ended."""

    actor: str
    operation: str
    purpose: str
    target: str
    keys: Sequence[tuple[str, str]]
    outcome: str
    detail: str = ""


def canonical(seq: int, ts: str, entry: AuditEntry, prev_hash: str) -> bytes:
    """Encoding version 1 of a record: sorted-key compact JSON, ASCII only."""
    body = {
        "v": ENCODING_VERSION, "seq": seq, "ts": ts, "actor": entry.actor, "operation": entry.operation,
        "purpose": entry.purpose, "target": entry.target, "keys": [list(k) for k in entry.keys],
        "outcome": entry.outcome, "detail": entry.detail, "prev": prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _entry(row: AuditRecord) -> AuditEntry:
    return AuditEntry(row.actor, row.operation, row.purpose, row.target,
                      [(str(k[0]), str(k[1])) for k in json.loads(row.keys)], row.outcome, row.detail)


class AuditLog:
    """Appends to and verifies the chain stored in `ks_audit`."""

    def __init__(self, hsm: Hsm, sessions: sessionmaker[Session]) -> None:
        self._hsm = hsm
        self._sessions = sessions

    def _mac(self, record_hash: bytes) -> bytes:
        with self._hsm.lock:
            return self._hsm.raw.sign(self._hsm.hot_handle(AUDIT_KEY_LABEL), Mechanism.SHA256_HMAC, record_hash)

    @contextmanager
    def transaction(self, entry: AuditEntry) -> Iterator[Session]:
        """A DB transaction that commits the caller's changes together with the audit record for `entry`.

        Raises AuditFailure if the record cannot be written; the caller's changes are then rolled back.
        """
        try:
            with self._sessions() as db, db.begin():
                yield db
                try:
                    self._append(db, entry)
                except (KeyServiceError, SQLAlchemyError) as exc:
                    raise AuditFailure(f"audit record could not be written ({type(exc).__name__})") from None
        except SQLAlchemyError as exc:
            raise AuditFailure(f"audit record could not be committed ({type(exc).__name__})") from None

    def append(self, entry: AuditEntry) -> None:
        """Append one record in its own transaction."""
        with self.transaction(entry):
            pass

    def _append(self, db: Session, entry: AuditEntry) -> None:
        conn = db.connection()
        seq, prev = conn.execute(_BUMP_HEAD).one()
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        digest = hashlib.sha256(canonical(seq, ts, entry, prev)).digest()
        mac = self._mac(digest)
        conn.execute(_INSERT_RECORD, {
            "seq": seq, "ts": ts, "actor": entry.actor, "operation": entry.operation, "purpose": entry.purpose,
            "target": entry.target, "keys": json.dumps([list(k) for k in entry.keys]), "outcome": entry.outcome,
            "detail": entry.detail, "prev_hash": prev, "record_hash": digest.hex(), "mac": mac.hex()})
        conn.execute(_SET_HEAD_HASH, {"new_hash": digest.hex()})
        self._hsm.set_anchor(ANCHOR_APPLICATION, f"{seq}:{digest.hex()}")

    def records(self, limit: int = 50) -> list[AuditRecord]:
        """The newest `limit` records, newest first."""
        with self._sessions() as db:
            return list(db.execute(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)).scalars())

    def check_head(self) -> VerifyReport:
        """The cheap check for health probes: the newest record's hash and MAC, the head row and the HSM anchor
        agree. `verify` walks the whole chain."""
        anchor = self._hsm.anchor(ANCHOR_APPLICATION)
        anchored_seq, _, anchored_hash = (anchor or "0:" + GENESIS).partition(":")
        with self._sessions() as db:
            head = db.execute(select(AuditHead).where(AuditHead.id == _HEAD_ID)).scalar_one()
            last = db.execute(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).scalar_one_or_none()
        if last is None:
            if head.seq or int(anchored_seq):
                raise AuditChainBroken("the audit table is empty but the chain head is not", 1)
            return VerifyReport(0, 0, GENESIS)
        digest = hashlib.sha256(canonical(last.seq, last.ts, _entry(last), last.prev_hash)).digest()
        if not hmac.compare_digest(digest.hex(), last.record_hash) or \
                not hmac.compare_digest(self._mac(digest).hex(), last.mac):
            raise AuditChainBroken(f"record {last.seq} was altered", last.seq)
        if (head.seq, head.record_hash) != (last.seq, last.record_hash) or int(anchored_seq) != last.seq or \
                not hmac.compare_digest(anchored_hash, last.record_hash):
            raise AuditChainBroken(f"the newest record {last.seq} does not match the chain head or the HSM anchor "
                                   f"(head {head.seq}, anchor {anchored_seq})", last.seq)
        return VerifyReport(last.seq, last.seq, last.record_hash)

    def verify(self) -> VerifyReport:
        """Check every link, hash and MAC, then the head row and the HSM anchor; name the first bad record."""
        anchor = self._hsm.anchor(ANCHOR_APPLICATION)
        anchored_seq, _, anchored_hash = (anchor or "0:").partition(":")
        expected_seq, prev = 1, GENESIS
        with self._sessions() as db:
            for row in db.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars():
                if row.seq != expected_seq:
                    raise AuditChainBroken(f"record {expected_seq} is missing (next stored record is {row.seq})",
                                           expected_seq)
                if row.prev_hash != prev:
                    raise AuditChainBroken(f"record {row.seq} does not link to record {row.seq - 1}", row.seq)
                digest = hashlib.sha256(canonical(row.seq, row.ts, _entry(row), row.prev_hash)).digest()
                if not hmac.compare_digest(digest.hex(), row.record_hash):
                    raise AuditChainBroken(f"record {row.seq} was altered (hash mismatch)", row.seq)
                if not hmac.compare_digest(self._mac(digest).hex(), row.mac):
                    raise AuditChainBroken(f"record {row.seq} has an invalid MAC", row.seq)
                if row.seq == int(anchored_seq) and not hmac.compare_digest(row.record_hash, anchored_hash):
                    raise AuditChainBroken(f"record {row.seq} differs from the one anchored in the HSM", row.seq)
                prev = row.record_hash
                expected_seq += 1
            head = db.execute(select(AuditHead).where(AuditHead.id == _HEAD_ID)).scalar_one()
        last = expected_seq - 1
        if int(anchored_seq) > last:
            raise AuditChainBroken(f"the chain was truncated: the HSM anchor names record {anchored_seq}, "
                                   f"the chain ends at {last}", last + 1)
        if head.seq != last or head.record_hash != prev:
            raise AuditChainBroken(f"the chain ends at record {last} but its head says {head.seq}", last + 1)
        return VerifyReport(records=last, head_seq=last, head_hash=prev)
