"""The audit chain: append-only records linked by SHA-256, MACed by an HSM-resident key, anchored in the HSM.

Each record's canonical encoding (version 1, below; it never changes) covers every stored field, the `keys`
column exactly as stored, its sequence number and the previous record's hash; `mac` = HMAC-SHA256 over the
record hash with the non-extractable audit key. Records hold labels, KCVs, purposes and targets, never key
material. An append that fails raises AuditFailure and the covered operation fails with it (fail closed).

The anchor (docs/threat-model.md, "Rollback"): the head `seq:hash` is written into a token data object after
the commit: at once for key management (a rollback of it would revive a key), for the high-rate usage records
(channels, MACs, KCVs) by the first append ANCHOR_INTERVAL after the previous anchor write, by the health check
and when the service closes. Before every append the database
head is compared with the newest record this process saw (kept in its memory), or, when it saw none yet, with
the HSM anchor:

- the database ends *before* it (a restored copy, deleted newest records): rollback, the service is sealed and
  the seal is written into the anchor itself, so it stays sealed whatever the database later says, until an
  officer's reconciliation records what was lost (`reconcile`);
- the database goes *beyond* it: records of other processes, or of a process killed between its commit and its
  anchor write. They are accepted only if they are genuine (hash, link and HSM MAC), which nobody without the
  HSM can produce, and the anchor then rolls forward;
- the record at that position differs from the known hash: a forked chain, sealed.

The anchor only ever moves forward, to a record whose MAC the HSM made.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from pkcs11.mechanisms import Mechanism
from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keyservice.errors import AuditChainBroken, AuditFailure, AuditSealed, KeyServiceError
from keyservice.hsm import Hsm
from keyservice.models import AuditHead, AuditRecord
from keyservice.views import VerifyReport
from storage.session import durable

AUDIT_KEY_LABEL: Final = "tsm.audit-key"
ANCHOR_APPLICATION: Final = "tsm.audit-head"
CHECKPOINT_APPLICATION: Final = "tsm.audit-checkpoint"
SEALED_PREFIX: Final = "sealed"
RECONCILE_OPERATION: Final = "reconcile"
ENCODING_VERSION: Final = 1
GENESIS: Final = "0" * 64
_HEAD_ID: Final = 1
WALK_BATCH: Final = 2000
ANCHOR_INTERVAL: Final = 0.05
"""Seconds a usage record may wait for the anchor (lazy anchoring, docs/threat-model.md); key management is
anchored before its result leaves."""

# Statements built once (building and cache-keying them per append cost more than the database work).
# Bumping the head row first serialises appends (row lock on PostgreSQL, write lock on SQLite) and returns
# the new sequence number with the previous record's hash, not yet replaced.
_HEAD = cast(Table, AuditHead.__table__)
_RECORDS = cast(Table, AuditRecord.__table__)
_BUMP_HEAD: Final = (update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(seq=_HEAD.c.seq + 1)
                     .returning(_HEAD.c.seq, _HEAD.c.record_hash))
_SET_HEAD_HASH: Final = update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(record_hash=bindparam("new_hash"))
_INSERT_RECORD: Final = insert(_RECORDS)
_HEAD_ROW: Final = select(_HEAD.c.seq, _HEAD.c.record_hash).where(_HEAD.c.id == _HEAD_ID)
_MOVE_KNOWN_HEAD: Final = (update(_HEAD).where(_HEAD.c.id == _HEAD_ID).where(_HEAD.c.seq == bindparam("old_seq"))
                           .where(_HEAD.c.record_hash == bindparam("old_hash"))
                           .values(seq=bindparam("seq"), record_hash=bindparam("record_hash")))
_APPEND_CAS_PG: Final = text(
    "WITH moved AS (UPDATE ks_audit_head SET seq = :seq, record_hash = :record_hash "
    "WHERE id = 1 AND seq = :old_seq AND record_hash = :old_hash RETURNING seq), "
    "ins AS (INSERT INTO ks_audit (seq, ts, actor, operation, purpose, target, keys, outcome, detail, prev_hash, "
    "record_hash, mac) SELECT :seq, :ts, :actor, :operation, :purpose, :target, :keys, :outcome, :detail, "
    ":prev_hash, :record_hash, :mac FROM moved RETURNING seq) "
    "SELECT (SELECT count(*) FROM ins) AS written, h.seq, h.record_hash FROM ks_audit_head h WHERE h.id = 1")
"""PostgreSQL: move the head and insert the record in one statement (data-modifying CTEs); the head as the
statement found it comes back for the retry when another process moved it first."""
CAS_ATTEMPTS: Final = 4
_RECORD_AT: Final = select(AuditRecord).where(AuditRecord.seq == bindparam("seq"))
_RANGE: Final = (select(AuditRecord).where(AuditRecord.seq > bindparam("after"))
                 .where(AuditRecord.seq <= bindparam("upto")).order_by(AuditRecord.seq))


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


@dataclass(frozen=True)
class Anchor:
    """The head as the HSM holds it, and the seal written into it when a discrepancy was found."""

    seq: int
    hash: str
    sealed: str = ""

    def encode(self) -> str:
        head = f"{self.seq}:{self.hash}"
        return f"{SEALED_PREFIX}:{head}:{self.sealed}" if self.sealed else head

    @classmethod
    def decode(cls, text: str | None) -> Anchor:
        """`seq:hash`, or `sealed:seq:hash:reason` (the reason may hold colons)."""
        if not text:
            return cls(0, GENESIS)
        sealed = text.startswith(SEALED_PREFIX + ":")
        seq, _, rest = text.removeprefix(SEALED_PREFIX + ":").partition(":")
        digest, _, reason = rest.partition(":") if sealed else (rest, "", "")
        return cls(int(seq), digest, reason or "sealed" if sealed else "")


@dataclass(frozen=True)
class Txn:
    """The transaction an audited operation runs in, and the sequence number its record will have."""

    db: Session
    seq: int


def canonical(seq: int, ts: str, actor: str, operation: str, purpose: str, target: str, keys: Any, outcome: str,
              detail: str, prev_hash: str) -> bytes:
    """Encoding version 1 of a record: sorted-key compact JSON, ASCII only, every stored field."""
    body = {"v": ENCODING_VERSION, "seq": seq, "ts": ts, "actor": actor, "operation": operation,
            "purpose": purpose, "target": target, "keys": keys, "outcome": outcome, "detail": detail,
            "prev": prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def stored_keys(row: AuditRecord) -> list[list[str]]:
    """The `keys` column as stored: a list of [label, kcv] pairs (AuditChainBroken when it is not)."""
    try:
        keys = json.loads(row.keys)
    except (ValueError, RecursionError):
        raise AuditChainBroken(f"record {row.seq} has a malformed keys field", row.seq) from None
    if not isinstance(keys, list) or not all(
            isinstance(k, list) and len(k) == 2 and all(isinstance(part, str) for part in k) for k in keys):
        raise AuditChainBroken(f"record {row.seq} has a malformed keys field", row.seq)
    return keys


def row_hash(row: AuditRecord) -> str:
    """SHA-256 of the record's canonical encoding, from what is stored."""
    keys = stored_keys(row)
    return hashlib.sha256(canonical(row.seq, row.ts, row.actor, row.operation, row.purpose, row.target, keys,
                                    row.outcome, row.detail, row.prev_hash)).hexdigest()


class AuditLog:
    """Appends to and verifies the chain stored in `ks_audit`."""

    def __init__(self, hsm: Hsm, sessions: sessionmaker[Session]) -> None:
        self._hsm = hsm
        self._sessions = sessions
        self._engine = cast(Engine, sessions.kw["bind"])
        self._dialect = self._engine.dialect.name
        self._rolling = 0  # where the next rolling check of older records starts (status)
        self._known: tuple[int, str] | None = None  # the newest record this process saw the chain reach
        self._verified: tuple[int, str] = (0, GENESIS)  # up to here the chain was checked (or written) here
        self._own: dict[int, str] = {}  # records this process appended beyond `_verified`, by seq: their hash
        self._anchored_at = 0.0

    def _mac(self, record_hash: bytes) -> bytes:
        with self._hsm.lock:
            return self._hsm.raw.sign(self._hsm.hot_handle(AUDIT_KEY_LABEL), Mechanism.SHA256_HMAC, record_hash)

    def genuine(self, row: AuditRecord, prev: str) -> str | None:
        """Why `row` is not a record this key service wrote after `prev` (None when it is)."""
        try:
            digest = row_hash(row)
        except AuditChainBroken as exc:
            return str(exc)
        if row.prev_hash != prev:
            return f"record {row.seq} does not link to record {row.seq - 1}"
        if not hmac.compare_digest(digest, row.record_hash):
            return f"record {row.seq} was altered (hash mismatch)"
        if not hmac.compare_digest(self._mac(bytes.fromhex(digest)).hex(), row.mac):
            return f"record {row.seq} has an invalid MAC"
        return None

    # ---- the anchor --------------------------------------------------------------------------------------

    def make_anchors(self) -> None:
        """The HSM objects of the anchor and the checkpoint, at genesis, when the token has none (`tsm init`)."""
        for application in (ANCHOR_APPLICATION, CHECKPOINT_APPLICATION):
            self._hsm.make_anchor(application, Anchor(0, GENESIS).encode())

    def anchor(self) -> Anchor:
        """The anchor as the HSM holds it."""
        return Anchor.decode(self._hsm.anchor(ANCHOR_APPLICATION))

    def write_anchor(self, seq: int, digest: str) -> None:
        """Move the anchor forward to `seq:digest` (never backward, never over a seal), once every record up to
        it is verified: the anchor never passes a record the HSM did not MAC."""
        current = self.anchor()
        if current.sealed:
            raise self.seal(current.sealed)
        self._verify_upto(seq)
        if current.seq < seq:
            self._hsm.set_anchor(ANCHOR_APPLICATION, Anchor(seq, digest).encode())
        self._anchored_at = time.monotonic()

    def _verify_upto(self, seq: int) -> None:
        """Check the records after `_verified` up to `seq`: links everywhere; hash and MAC where another process
        wrote them (this process's own are known by hash). A record that fails seals the service."""
        done, prev = self._verified
        if seq <= done:
            return
        with self._sessions() as db:
            rows = db.execute(_RANGE, {"after": done, "upto": seq}).scalars().all()
        for row in rows:
            own = self._own.get(row.seq)
            if own is not None:
                why = None if row.prev_hash == prev and hmac.compare_digest(own, row.record_hash) else \
                    f"record {row.seq}, written by this process, was changed"
            else:
                why = self.genuine(row, prev)
            if why is not None or row.seq != done + 1:
                raise self.seal(f"audit record {row.seq}: {why or 'a record before it is missing'}")
            done, prev = row.seq, row.record_hash
        if done != seq:
            raise self.seal(f"audit record {done + 1} is missing")
        self._verified = (done, prev)
        self._own = {k: v for k, v in self._own.items() if k > done}

    def flush(self) -> None:
        """Anchor the newest record this process knows of (at close, by the health check: the lazy anchoring's
        last step). A sealed anchor is left as it is."""
        if self._known is None or self.anchor().sealed:
            return
        self.write_anchor(*self._known)

    def seal(self, reason: str) -> AuditSealed:
        """Write the seal into the anchor (it stays until a reconciliation) and hand back the error to raise."""
        self._known, self._verified, self._own = None, (0, GENESIS), {}
        current = self.anchor()
        if not current.sealed:
            self._hsm.set_anchor(ANCHOR_APPLICATION, Anchor(current.seq, current.hash, reason).encode())
        return AuditSealed(f"the key service is sealed: {current.sealed or reason}; an officer must reconcile "
                           "(tsm keys reconcile)")

    def _check_anchor(self, conn: Connection, head_seq: int, head_hash: str) -> None:
        """Refuse to append unless the database head continues the chain this process knows, or, when it knows
        none yet, the one anchored in the HSM (module docstring). Records beyond it must be genuine."""
        if self._known is None:
            anchored = self.anchor()
            if anchored.sealed:
                raise self.seal(anchored.sealed)
            if anchored.seq > head_seq:
                raise self.seal(f"rollback: the HSM anchors record {anchored.seq}, the database ends at record "
                                f"{head_seq}")
            known_seq, known_hash, source = anchored.seq, anchored.hash, "anchored in the HSM"
            if anchored.seq and anchored.seq < head_seq:
                found = conn.execute(select(_RECORDS.c.record_hash).where(_RECORDS.c.seq == anchored.seq)).scalar()
                if found is None or not hmac.compare_digest(found, anchored.hash):
                    raise self.seal(f"the database's record {anchored.seq} is not the one anchored in the HSM")
        else:
            known_seq, known_hash = self._known
            source = "this process saw"
            if known_seq > head_seq:
                raise self.seal(f"rollback: this process saw record {known_seq}, the database ends at record "
                                f"{head_seq}")
        if known_seq == head_seq:
            if not hmac.compare_digest(known_hash, head_hash):
                raise self.seal(f"the database's record {head_seq} is not the one {source}")
            self._known = (head_seq, head_hash)
            if self._verified[0] < known_seq and source != "this process saw":
                self._verified = (known_seq, known_hash)
            return
        prev = known_hash
        with Session(bind=conn) as view:
            for row in view.execute(_RANGE, {"after": known_seq, "upto": head_seq}).scalars():
                why = self.genuine(row, prev)
                if why is not None:
                    raise self.seal(f"beyond the record {source}, {why}")
                prev = row.record_hash
        if not hmac.compare_digest(prev, head_hash):
            raise self.seal("the chain head row does not match the records beyond the anchor")
        self._known = (head_seq, head_hash)
        if source != "this process saw":
            self._verified = (head_seq, head_hash)

    def knows_head(self, seq: int, digest: str) -> bool:
        """Whether `seq:digest` is the newest record this process saw (then the chain needs no further check)."""
        return self._known is not None and self._known[0] == seq and hmac.compare_digest(self._known[1], digest)

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for reads in one round trip each (autocommit: no BEGIN, no ROLLBACK)."""
        with self._engine.connect() as conn, Session(bind=conn.execution_options(isolation_level="AUTOCOMMIT"),
                                                      expire_on_commit=False) as db:
            yield db

    def require_open(self, db: Session) -> None:
        """AuditSealed unless the database head continues the known chain (before a card is touched)."""
        conn = db.connection()
        head = conn.execute(_HEAD_ROW).one()
        self._check_anchor(conn, head.seq, head.record_hash)

    # ---- appends -----------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self, entry: AuditEntry, *, anchor: bool = False) -> Iterator[Txn]:
        """A DB transaction that commits the caller's changes together with the audit record for `entry`.

        AuditSealed when the chain does not continue the known one; AuditFailure if the record cannot be
        written (the caller's changes are then rolled back). After the commit the anchor moves: at once when
        `anchor` (key management, whose rollback would revive a key; its commit is also `durable`), else by the
        first append ANCHOR_INTERVAL after the previous anchor write.
        """
        try:
            with self._sessions() as db, db.begin():
                if anchor:
                    durable(db)
                conn = db.connection()
                seq, prev = conn.execute(_BUMP_HEAD).one()
                self._check_anchor(conn, seq - 1, prev)
                yield Txn(db, seq)
                try:
                    digest = self._insert(conn, seq, prev, entry)
                except (KeyServiceError, SQLAlchemyError) as exc:
                    raise AuditFailure(f"audit record could not be written ({type(exc).__name__})") from None
        except SQLAlchemyError as exc:
            self._known = None
            raise AuditFailure(f"audit record could not be committed ({type(exc).__name__})") from None
        except BaseException:
            self._known = None  # the head this process saw may not be the committed one: ask the HSM again
            raise
        self._known = (seq, digest)
        self._own[seq] = digest
        if anchor or time.monotonic() - self._anchored_at >= ANCHOR_INTERVAL:
            self.write_anchor(seq, digest)

    def _row(self, seq: int, prev: str, entry: AuditEntry) -> dict[str, object]:
        """The stored row of `entry` as record `seq` after `prev`: hashed, and MACed by the HSM."""
        ts = datetime.now(UTC).isoformat(timespec="microseconds")
        keys = [list(k) for k in entry.keys]
        digest = hashlib.sha256(canonical(seq, ts, entry.actor, entry.operation, entry.purpose, entry.target, keys,
                                          entry.outcome, entry.detail, prev)).digest()
        return {"seq": seq, "ts": ts, "actor": entry.actor, "operation": entry.operation, "purpose": entry.purpose,
                "target": entry.target, "keys": json.dumps(keys), "outcome": entry.outcome, "detail": entry.detail,
                "prev_hash": prev, "record_hash": digest.hex(), "mac": self._mac(digest).hex()}

    def _insert(self, conn: Connection, seq: int, prev: str, entry: AuditEntry) -> str:
        row = self._row(seq, prev, entry)
        conn.execute(_INSERT_RECORD, row)
        conn.execute(_SET_HEAD_HASH, {"new_hash": row["record_hash"]})
        return str(row["record_hash"])

    def append(self, entry: AuditEntry) -> None:
        """Append one record in its own transaction: compare-and-swap on the head this process knows (one round
        trip), retried on the head another process moved it to (their records are verified before the anchor
        passes them, `write_anchor`); the locking path (`transaction`) when this process knows no head, when the
        database's head is behind or beside the known one (it then seals), or after CAS_ATTEMPTS."""
        attempts = CAS_ATTEMPTS
        while self._known is not None and attempts:
            attempts -= 1
            seq, prev = self._known
            head = self._append_cas(entry, seq, prev)
            if head is None:
                return
            if head[0] < seq or (head[0] == seq and not hmac.compare_digest(head[1], prev)):
                break  # behind or beside what this process saw: the locking path decides, and seals
            self._known = head
        with self.transaction(entry):
            pass

    def _append_cas(self, entry: AuditEntry, seq: int, prev: str) -> tuple[int, str] | None:
        """Append `entry` as record seq + 1 if the head still is `seq:prev`; None when written, else the head
        as the database has it (nothing written)."""
        try:
            row = self._row(seq + 1, prev, entry)
        except KeyServiceError as exc:
            raise AuditFailure(f"audit record could not be written ({type(exc).__name__})") from None
        params = {**row, "old_seq": seq, "old_hash": prev}
        try:
            with self._engine.connect() as conn:
                if self._dialect == "postgresql":  # one statement, one round trip, atomic
                    result = conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                        _APPEND_CAS_PG, params).one()
                    head = None if result.written else (int(result.seq), str(result.record_hash))
                else:
                    with conn.begin():
                        if conn.execute(_MOVE_KNOWN_HEAD, params).rowcount == 1:
                            conn.execute(_INSERT_RECORD, row)
                            head = None
                        else:
                            found = conn.execute(_HEAD_ROW).one()
                            head = (int(found.seq), str(found.record_hash))
        except SQLAlchemyError as exc:
            self._known = None
            raise AuditFailure(f"audit record could not be committed ({type(exc).__name__})") from None
        if head is not None:
            return head
        digest = str(row["record_hash"])
        self._known = (seq + 1, digest)
        self._own[seq + 1] = digest
        if time.monotonic() - self._anchored_at >= ANCHOR_INTERVAL:
            self.write_anchor(seq + 1, digest)
        return None

    def reconcile(self, entry: AuditEntry, within: Callable[[Session, int], None] | None = None) -> int:
        """Append the officer's reconciliation record after the database head whatever the anchor says, and
        anchor it (clearing the seal). The record's detail names what was lost or broken; `within` runs in its
        transaction (the approvals it consumes)."""
        try:
            with self._sessions() as db, db.begin():
                durable(db)
                conn = db.connection()
                seq, prev = conn.execute(_BUMP_HEAD).one()
                if within is not None:
                    within(db, seq)
                digest = self._insert(conn, seq, prev, entry)
        except SQLAlchemyError as exc:
            raise AuditFailure(f"audit record could not be committed ({type(exc).__name__})") from None
        self._hsm.set_anchor(ANCHOR_APPLICATION, Anchor(seq, digest).encode())
        self._hsm.set_anchor(CHECKPOINT_APPLICATION, Anchor(0, GENESIS).encode())
        self._known = self._verified = (int(seq), digest)
        self._own = {}
        return int(seq)

    # ---- reading and verifying ---------------------------------------------------------------------------

    def records(self, limit: int = 50) -> list[AuditRecord]:
        """The newest `limit` records, newest first."""
        with self._sessions() as db:
            return list(db.execute(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)).scalars())

    def acknowledged(self) -> dict[int, str]:
        """Breaks an officer acknowledged in a genuine reconciliation record: seq -> what was found."""
        found: dict[int, str] = {}
        with self._sessions() as db:
            rows = db.execute(select(AuditRecord).where(AuditRecord.operation == RECONCILE_OPERATION)).scalars()
            for row in rows:
                if self.genuine(row, row.prev_hash) is not None:
                    continue
                try:
                    detail = json.loads(row.detail)
                except ValueError:
                    continue
                for ack in detail.get("acknowledged", []) if isinstance(detail, dict) else []:
                    if isinstance(ack, dict) and isinstance(ack.get("seq"), int):
                        found[ack["seq"]] = str(ack.get("finding", ""))
        return found

    def walk(self, acknowledged: dict[int, str] | None = None) -> tuple[VerifyReport, list[tuple[int, str]]]:
        """Check every link, hash and MAC up to the database head; breaks an officer acknowledged are listed and
        passed over. AuditChainBroken names the first other bad record."""
        acks = self.acknowledged() if acknowledged is None else acknowledged
        passed: list[tuple[int, str]] = []
        expected_seq, prev = 1, GENESIS
        with self._sessions() as db:
            for row in db.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars():
                while row.seq != expected_seq:
                    if expected_seq not in acks or row.seq < expected_seq:
                        raise AuditChainBroken(f"record {expected_seq} is missing (next stored record is "
                                               f"{row.seq})", expected_seq)
                    passed.append((expected_seq, acks[expected_seq]))
                    expected_seq, prev = expected_seq + 1, row.prev_hash
                why = self.genuine(row, prev)
                if why is not None:
                    if row.seq not in acks:
                        raise AuditChainBroken(why, row.seq)
                    passed.append((row.seq, acks[row.seq]))
                prev = row.record_hash
                expected_seq += 1
            head = db.execute(select(AuditHead).where(AuditHead.id == _HEAD_ID)).scalar_one()
        last = expected_seq - 1
        if head.seq != last or head.record_hash != prev:
            raise AuditChainBroken(f"the chain ends at record {last} but its head says {head.seq}", last + 1)
        return VerifyReport(last, last, prev, tuple(seq for seq, _ in passed)), passed

    def verify(self) -> VerifyReport:
        """The whole chain, then the HSM anchor: a database that ends before the anchor, or a record at the
        anchored position that is not the anchored one, is a rollback (and seals the service)."""
        anchored = self.anchor()
        try:
            report, _ = self.walk()
        except AuditChainBroken as exc:
            self.seal(f"audit record {exc.seq}: {exc}")
            raise
        if anchored.sealed:
            raise AuditChainBroken(f"the key service is sealed: {anchored.sealed}", anchored.seq)
        if anchored.seq > report.records:
            self.seal(f"rollback: the HSM anchors record {anchored.seq}, the database ends at record "
                      f"{report.records}")
            raise AuditChainBroken(f"rollback: the chain was truncated; the HSM anchor names record {anchored.seq},"
                                   f" the database ends at {report.records}", report.records + 1)
        if anchored.seq:
            with self._sessions() as db:
                row = db.execute(_RECORD_AT, {"seq": anchored.seq}).scalar_one()
            if not hmac.compare_digest(row.record_hash, anchored.hash):
                self.seal(f"the database's record {anchored.seq} is not the one anchored in the HSM")
                raise AuditChainBroken(f"record {anchored.seq} differs from the one anchored in the HSM",
                                       anchored.seq)
        return report

    # ---- the health check --------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """For /health, without a full walk per request: the anchor and the newest records (with anything not
        yet anchored), the whole chain's structure in one query (contiguous sequence numbers, every link),
        the records appended since the HSM-held checkpoint (hash, link, MAC; then the checkpoint moves), and a
        rolling window of older records (hash and link). A break found seals the service."""
        with suppress(AuditSealed):
            self.flush()  # a seal it writes shows below
        anchored = self.anchor()
        if anchored.sealed:
            return {"status": "sealed", "code": AuditSealed.code, "detail": anchored.sealed, "seq": anchored.seq}
        try:
            head = self._check_head(anchored)
            self._check_structure(head)
            self._advance_checkpoint(head)
            self._check_window()
        except AuditChainBroken as exc:
            self.seal(f"audit record {exc.seq}: {exc}")
            return {"status": "broken", "code": exc.code, "detail": str(exc), "seq": exc.seq}
        except AuditSealed as exc:
            return {"status": "sealed", "code": exc.code, "detail": str(exc), "seq": anchored.seq}
        return {"status": "ok", "records": head}

    def _check_head(self, anchored: Anchor) -> int:
        with self._sessions() as db, db.begin():
            conn = db.connection()
            head = conn.execute(_HEAD_ROW).one()
            record = db.execute(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).scalars().first()
            self._check_anchor(conn, head.seq, head.record_hash)
            if record is None:
                if head.seq:
                    raise AuditChainBroken("the audit table is empty but the chain head is not", 1)
                return 0
        if (record.seq, record.record_hash) != (head.seq, head.record_hash):
            raise AuditChainBroken(f"the newest record {record.seq} does not match the chain head (head {head.seq})",
                                   record.seq)
        with self._sessions() as db:
            row = db.execute(_RECORD_AT, {"seq": record.seq}).scalar_one()
            prev = row.prev_hash
        why = self.genuine(row, prev)
        if why is not None:
            raise AuditChainBroken(why, row.seq)
        return int(head.seq or 0)

    def _check_structure(self, head: int) -> None:
        """Contiguous sequence numbers and every link, for the whole chain, in the database (no hashing)."""
        acks = self.acknowledged()
        links = select(AuditRecord.seq, AuditRecord.prev_hash,
                       func.lag(AuditRecord.record_hash).over(order_by=AuditRecord.seq).label("before"),
                       func.lag(AuditRecord.seq).over(order_by=AuditRecord.seq).label("before_seq")).subquery()
        with self._sessions() as db:
            top = db.execute(select(func.coalesce(func.max(AuditRecord.seq), 0))).scalar_one()
            first = db.execute(select(func.min(AuditRecord.seq))).scalar_one()
            broken = db.execute(select(links.c.seq, links.c.before_seq).where(links.c.before.is_not(None)).where(
                (links.c.prev_hash != links.c.before) | (links.c.seq != links.c.before_seq + 1))
                .order_by(links.c.seq)).all()
        if top != head:
            raise AuditChainBroken(f"the chain head says record {head}, the newest stored record is {top}", head)
        if first not in (None, 1) and 1 not in acks:
            raise AuditChainBroken(f"record 1 is missing (the first stored record is {first})", 1)
        for seq, before_seq in broken:
            if seq != before_seq + 1 and before_seq + 1 not in acks:
                raise AuditChainBroken(f"record {before_seq + 1} is missing (next stored record is {seq})",
                                       before_seq + 1)
            if seq not in acks and seq - 1 not in acks and seq == before_seq + 1:
                raise AuditChainBroken(f"record {seq} does not link to the record before it", seq)

    def _advance_checkpoint(self, head: int) -> None:
        checkpoint = Anchor.decode(self._hsm.anchor(CHECKPOINT_APPLICATION))
        if checkpoint.seq >= head:
            return
        acks = self.acknowledged()
        upto = min(head, checkpoint.seq + WALK_BATCH)
        prev = checkpoint.hash
        with self._sessions() as db:
            rows = db.execute(_RANGE, {"after": checkpoint.seq, "upto": upto}).scalars().all()
        for row in rows:
            why = self.genuine(row, prev)
            if why is not None and row.seq not in acks:
                raise AuditChainBroken(why, row.seq)
            prev = row.record_hash
        if rows:
            self._hsm.set_anchor(CHECKPOINT_APPLICATION, Anchor(rows[-1].seq, rows[-1].record_hash).encode())

    def _check_window(self) -> None:
        """Hash and link of the next WALK_BATCH records from the rolling position (catches an edit whose stored
        hash was left as it was, in records older than the checkpoint)."""
        acks = self.acknowledged()
        start = self._rolling
        with self._sessions() as db:
            rows = db.execute(_RANGE, {"after": start, "upto": start + WALK_BATCH}).scalars().all()
            before = db.execute(_RECORD_AT, {"seq": start}).scalar_one_or_none() if start else None
        prev = before.record_hash if before is not None else GENESIS
        for row in rows:
            if row.seq in acks:
                prev = row.record_hash
                continue
            try:
                digest = row_hash(row)
            except AuditChainBroken:
                raise
            if not hmac.compare_digest(digest, row.record_hash) or row.prev_hash != prev:
                raise AuditChainBroken(f"record {row.seq} was altered", row.seq)
            prev = row.record_hash
        self._rolling = rows[-1].seq if len(rows) == WALK_BATCH else 0

    def check_head(self) -> VerifyReport:
        """The cheap check: the newest record, the head row and the HSM anchor agree."""
        anchored = self.anchor()
        if anchored.sealed:
            raise AuditSealed(f"the key service is sealed: {anchored.sealed}")
        head = self._check_head(anchored)
        with self._sessions() as db:
            digest = db.execute(select(_HEAD.c.record_hash)).scalar_one()
        return VerifyReport(head, head, digest)
