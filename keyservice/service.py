"""The key service facade: the one barrier every key operation passes (ARCHITECTURE.md, Vault's barrier).

Each public method takes a `Request` (caller, purpose, target), checks policy before touching the HSM,
runs the operation, and writes exactly one audit record before the result leaves; a refused or failed
call is audited too. Other packages import only this module and `keyservice.errors`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from keyservice import kcv as kcv_mod
from keyservice import scoped, selftest, templates, vendor
from keyservice.audit import AUDIT_KEY_LABEL, AuditEntry, AuditLog, VerifyReport
from keyservice.errors import (
    AuditFailure,
    InvalidInput,
    KeyExists,
    KeyNotFound,
    KeyServiceError,
    PolicyDenied,
    SelfTestFailed,
    TestTokenOnly,
)
from keyservice.hsm import TEST_TOKEN_MARKER, Hsm, TokenInfo
from keyservice.inventory import (
    CAPABILITIES,
    PKCS11_TYPE,
    Algorithm,
    KcvMethod,
    KeyState,
    KeyUsage,
    Provenance,
    check_length,
    check_transition,
)
from keyservice.kat import KatReport
from keyservice.models import KeyRecord
from keyservice.policy import Caller, CallerKind, Operation, Purpose, Request, check
from keyservice.scoped import ChannelSession, ChannelSpec, MacContext, Trial
from keyservice.vendor import KeyBlockHeader, Received

SYSTEM = Caller("keyservice", CallerKind.SYSTEM)
_BY_LABEL: Final = select(KeyRecord).where(KeyRecord.label == bindparam("label"))  # built once: a hot path


@dataclass(frozen=True)
class KeyView:
    """What callers may know about a key: never its value."""

    label: str
    cka_id: str
    algorithm: str
    length: int
    usage: str
    owner: str
    kvn: int | None
    key_id: int | None
    state: str
    kcv: str
    kcv_method: str
    provenance: str
    created_by: str
    created_at: datetime
    state_changed_at: datetime
    exportable: bool
    note: str

    @classmethod
    def of(cls, rec: KeyRecord) -> KeyView:
        return cls(rec.label, rec.cka_id, rec.algorithm, rec.length, rec.usage, rec.owner, rec.kvn, rec.key_id,
                   rec.state, rec.kcv, rec.kcv_method, rec.provenance, rec.created_by, rec.created_at,
                   rec.state_changed_at, rec.exportable, rec.note)


@dataclass(frozen=True)
class TokenCheck:
    """Differences between the inventory and the token (`tsm keys check`)."""

    missing_on_token: list[str]
    missing_in_inventory: list[str]
    wrong_attributes: list[str]

    @property
    def consistent(self) -> bool:
        return not (self.missing_on_token or self.missing_in_inventory or self.wrong_attributes)


@dataclass(frozen=True)
class NewKey:
    """Attributes of a key to create."""

    label: str
    algorithm: Algorithm
    length: int
    usage: KeyUsage
    owner: str
    kvn: int | None = None
    key_id: int | None = None
    note: str = ""
    exportable: bool = False

    def __post_init__(self) -> None:
        check_length(self.algorithm, self.length)
        if not self.label or len(self.label) > 128 or not self.label.isprintable():
            raise InvalidInput("a key label is 1 to 128 printable characters")
        for name, value in (("kvn", self.kvn), ("key_id", self.key_id)):
            if value is not None and not 0 <= value <= 0xFF:
                raise InvalidInput(f"{name} must be 0..255")


def default_kcv_method(algorithm: Algorithm) -> KcvMethod:
    """The GP method for DES3/AES keys; HMAC keys are checked by HMAC over zeros."""
    return KcvMethod.HMAC if algorithm is Algorithm.HMAC else KcvMethod.GP


class KeyService:
    """The crypto boundary over one HSM session and the inventory/audit database."""

    def __init__(self, hsm: Hsm, sessions: sessionmaker[Session]) -> None:
        self.hsm = hsm
        self._sessions = sessions
        self.audit = AuditLog(hsm, sessions)
        self._selftest: KatReport | None = None
        self._selftest_error: str | None = None

    def close(self) -> None:
        """Close the HSM session and the database pool."""
        self.hsm.close()
        engine = self._sessions.kw.get("bind")
        if engine is not None:
            engine.dispose()

    def sessions(self) -> Session:
        """A database session on the key service's database (health checks, read-only views)."""
        return self._sessions()

    # ---- the envelope of every call -----------------------------------------------------------------------

    @contextmanager
    def _audited(self, req: Request, op: Operation, keys: Sequence[tuple[str, str]]) -> Iterator[Session]:
        """Run the body in a transaction that also writes the audit record; failures are audited too."""
        try:
            with self.audit.transaction(self._entry(req, op, keys, "ok")) as db:
                yield db
        except KeyServiceError as exc:
            if isinstance(exc, AuditFailure):
                raise
            raise self.refuse(req, op, keys, exc) from None

    @staticmethod
    def _entry(req: Request, op: Operation, keys: Sequence[tuple[str, str]], outcome: str,
               detail: str = "") -> AuditEntry:
        return AuditEntry(str(req.caller), op.value, req.purpose.value, req.target, list(keys), outcome, detail)

    def _record(self, db: Session, label: str) -> KeyRecord:
        rec = db.execute(_BY_LABEL, {"label": label}).scalar_one_or_none()
        if rec is None:
            raise KeyNotFound(f"no key labelled {label!r} in the inventory")
        return rec

    def refuse(self, req: Request, op: Operation, keys: Sequence[tuple[str, str]],
               exc: KeyServiceError) -> KeyServiceError:
        """Audit a refused call and hand back the error to raise."""
        self.audit.append(self._entry(req, op, keys, "refused" if exc.status < 500 else "error", exc.code))
        return exc

    def authorise(self, req: Request, op: Operation, label: str) -> KeyRecord:
        """Load the record and check policy; a refusal is audited and raised."""
        with self._sessions() as db:
            try:
                rec = self._record(db, label)
            except KeyNotFound as exc:
                raise self.refuse(req, op, [(label, "")], exc) from None
        try:
            check(req, op, KeyUsage(rec.usage), KeyState(rec.state))
        except KeyServiceError as exc:
            raise self.refuse(req, op, [(rec.label, rec.kcv)], exc) from None
        return rec

    # ---- key management -------------------------------------------------------------------------------------

    def generate(self, req: Request, spec: NewKey) -> KeyView:
        """Generate a master key inside the HSM and record it (state pre-activation)."""
        return self.create_key(req, Operation.GENERATE, spec.label, spec.usage, Provenance.GENERATED,
                            lambda cka_id: (self.hsm.generate(spec.label, cka_id, PKCS11_TYPE[spec.algorithm],
                                                              spec.length, CAPABILITIES[spec.usage],
                                                              spec.exportable), spec))

    def import_test_key(self, req: Request, spec: NewKey, value: bytes) -> KeyView:
        """Import a clear key: allowed only on a token initialised as a test token (lab mode)."""
        if len(value) != spec.length:
            raise InvalidInput(f"the key value is {len(value)} bytes, the key is declared {spec.length}")
        if not self.is_test_token():
            raise self.refuse(req, Operation.IMPORT_TEST, [(spec.label, "")],
                              TestTokenOnly("clear-key import is refused: this is not a test token"))
        return self.create_key(req, Operation.IMPORT_TEST, spec.label, spec.usage, Provenance.IMPORTED_TEST,
                            lambda cka_id: (self.hsm.create(spec.label, cka_id, PKCS11_TYPE[spec.algorithm],
                                                            value, CAPABILITIES[spec.usage], spec.exportable),
                                            spec),
                            state=KeyState.ACTIVE)

    def create_key(self, req: Request, op: Operation, label: str, usage: KeyUsage, provenance: Provenance,
                make: Callable[[bytes], tuple[int, NewKey]], state: KeyState = KeyState.PRE_ACTIVATION,
                used: Sequence[tuple[str, str]] = ()) -> KeyView:
        """Check, create the token object (`make`), then record it with its audit entry in one transaction.

        `make` returns the handle and the key's final description (an import learns the length only once
        the key is unwrapped). Nothing is left half-done: a token object without its record is destroyed.
        """
        try:
            check(req, op, usage, KeyState.PRE_ACTIVATION)
            with self._sessions() as db:
                if db.execute(select(KeyRecord.id).where(KeyRecord.label == label)).first():
                    raise KeyExists(f"a key labelled {label!r} is already in the inventory")
            cka_id = secrets.token_bytes(8)
            handle, spec = make(cka_id)
        except KeyServiceError as exc:
            raise self.refuse(req, op, [*used, (label, "")], exc) from None
        try:
            method = default_kcv_method(spec.algorithm)
            kcv = kcv_mod.compute(self.hsm, handle, spec.algorithm, method, 3)
            now = datetime.now(UTC)
            with self._audited(req, op, [*used, (label, kcv)]) as db:
                rec = KeyRecord(label=label, cka_id=cka_id.hex(), algorithm=spec.algorithm.value,
                                length=spec.length, usage=usage.value, owner=spec.owner, kvn=spec.kvn,
                                key_id=spec.key_id, state=state.value, kcv=kcv, kcv_method=method.value,
                                provenance=provenance.value, created_by=str(req.caller), created_at=now,
                                state_changed_at=now, note=spec.note, exportable=spec.exportable)
                db.add(rec)
        except KeyServiceError:
            self.hsm.destroy(label)  # nothing half-done: no token object without its record
            raise
        return KeyView.of(rec)

    def list_keys(self, usage: KeyUsage | None = None, owner: str | None = None,
                  include_destroyed: bool = False) -> list[KeyView]:
        """Inventory records, filtered."""
        query = select(KeyRecord).order_by(KeyRecord.label)
        if usage is not None:
            query = query.where(KeyRecord.usage == usage.value)
        if owner is not None:
            query = query.where(KeyRecord.owner == owner)
        if not include_destroyed:
            query = query.where(KeyRecord.state != KeyState.DESTROYED.value)
        with self._sessions() as db:
            return [KeyView.of(r) for r in db.execute(query).scalars()]

    def show(self, label: str) -> KeyView:
        """One inventory record."""
        with self._sessions() as db:
            return KeyView.of(self._record(db, label))

    def change_state(self, req: Request, label: str, new_state: KeyState) -> KeyView:
        """Move a key through the SP 800-57 states (destroy has its own call)."""
        if new_state is KeyState.DESTROYED:
            raise InvalidInput("use destroy to destroy a key")
        rec = self.authorise(req, Operation.CHANGE_STATE, label)
        with self._audited(req, Operation.CHANGE_STATE, [(rec.label, rec.kcv)]) as db:
            rec = self._record(db, label)
            check_transition(KeyState(rec.state), new_state)
            rec.state, rec.state_changed_at = new_state.value, datetime.now(UTC)
        return KeyView.of(rec)

    def destroy(self, req: Request, label: str) -> KeyView:
        """Destroy the token object; the record stays, in state destroyed (SP 800-57 §5.3.6).

        The record and its audit entry are committed first; should the token then fail, `tsm keys check`
        reports the leftover object and a repeated destroy removes it.
        """
        if label == AUDIT_KEY_LABEL:
            raise InvalidInput("the audit key cannot be destroyed while the chain is in use")
        rec = self.authorise(req, Operation.DESTROY, label)
        with self._audited(req, Operation.DESTROY, [(rec.label, rec.kcv)]) as db:
            rec = self._record(db, label)
            check_transition(KeyState(rec.state), KeyState.DESTROYED)
            rec.state, rec.state_changed_at = KeyState.DESTROYED.value, datetime.now(UTC)
        self.hsm.destroy(label)
        return KeyView.of(rec)

    def ensure_audit_key(self, req: Request) -> KeyView:
        """Create the HSM-resident audit key on first start (its creation is the chain's first record)."""
        with self._sessions() as db:
            rec = db.execute(select(KeyRecord).where(KeyRecord.label == AUDIT_KEY_LABEL)).scalar_one_or_none()
            if rec is not None:
                return KeyView.of(rec)
        spec = NewKey(AUDIT_KEY_LABEL, Algorithm.HMAC, 32, KeyUsage.AUDIT_KEY, owner="tsm")
        return self.create_key(req, Operation.GENERATE, spec.label, spec.usage, Provenance.GENERATED,
                            lambda cka_id: (self.hsm.generate(spec.label, cka_id, PKCS11_TYPE[spec.algorithm],
                                                              spec.length, CAPABILITIES[spec.usage]), spec),
                            state=KeyState.ACTIVE)

    def kcv(self, req: Request, label: str, method: KcvMethod | None = None, length: int = 3) -> str:
        """The key check value of a key, by method (GP, AES over zeros, AES-CMAC)."""
        rec = self.authorise(req, Operation.KCV, label)
        algorithm = Algorithm(rec.algorithm)
        chosen = method or KcvMethod(rec.kcv_method)
        with self._audited(req, Operation.KCV, [(rec.label, rec.kcv)]):
            return kcv_mod.compute(self.hsm, self.hsm.handle(label), algorithm, chosen, length)

    def mac_context(self, req: Request, label: str) -> MacContext:
        """A purpose-scoped MAC handle on one key: policy and audit at open and close, lean calls between.

        CMAC for DES3/AES keys, HMAC-SHA256 for HMAC keys (the audit key is never reachable here).
        """
        if label == AUDIT_KEY_LABEL:
            raise PolicyDenied("the audit key MACs audit records only")
        rec = self.authorise(req, Operation.MAC, label)
        with self._audited(req, Operation.MAC, [(rec.label, rec.kcv)]):
            handle = self.hsm.hot_handle(label)
        return MacContext(self, req, rec, handle)

    def open_channel(self, req: Request, spec: ChannelSpec) -> ChannelSession:
        """A secure channel with the keys of `spec`; policy is checked for each key now."""
        records = [self.authorise(req, Operation.SECURE_CHANNEL, label) for label in spec.keys]
        return ChannelSession(self, req, spec, records)

    def diagnose(self, req: Request, labels: Sequence[str], response: bytes, host_challenge: bytes) -> list[Trial]:
        """Which key and diversification produce the card cryptogram (never an EXTERNAL AUTHENTICATE)."""
        if not labels:
            raise InvalidInput("diagnose needs at least one key label")
        records = [self.authorise(req, Operation.DIAGNOSE, label) for label in labels]
        with self._audited(req, Operation.DIAGNOSE, [(r.label, r.kcv) for r in records]):
            return scoped.diagnose(self, records, response, host_challenge)

    # ---- keys received from SE vendors (keyservice/imports.py) ------------------------------------------------

    def import_key_block(self, req: Request, kbpk: str, block: str, to: Received, expected_kcv: str) -> KeyView:
        """A TR-31 key block (versions B, D) under the KEK `kbpk`, recorded with its KCV checked."""
        return vendor.import_key_block(self, req, kbpk, block, to, expected_kcv)

    def import_wrapped(self, req: Request, kek: str, wrapped: bytes, padding: bool, algorithm: Algorithm,
                       to: Received, expected_kcv: str) -> KeyView:
        """An RFC 3394 / RFC 5649 wrapped key under the KEK `kek`, recorded with its KCV checked."""
        return vendor.import_wrapped(self, req, kek, wrapped, padding, algorithm, to, expected_kcv)

    def export_wrapped(self, req: Request, label: str, kek: str, padding: bool) -> bytes:
        """An exportable key wrapped under a KEK (RFC 3394 / RFC 5649), for an SE vendor."""
        return vendor.export_wrapped(self, req, label, kek, padding)

    def export_key_block(self, req: Request, label: str, kbpk: str, header: KeyBlockHeader) -> str:
        """An exportable key as a TR-31 key block (version B under a 3DES KBPK, D under an AES KBPK)."""
        return vendor.export_key_block(self, req, label, kbpk, header)

    # ---- self-test ----------------------------------------------------------------------------------------------

    def run_selftest(self) -> KatReport:
        """Run the shipped known-answer vectors (raises SelfTestFailed); remembered for /health."""
        try:
            self._selftest = selftest.require(self.hsm)
        except SelfTestFailed as exc:
            self._selftest_error = str(exc)
            raise
        return self._selftest

    def selftest_status(self) -> dict[str, object]:
        """The self-test outcome of this process (run on first use)."""
        if self._selftest is None and self._selftest_error is None:
            with suppress(SelfTestFailed):
                self.run_selftest()
        if self._selftest is None:
            return {"status": "error", "detail": self._selftest_error}
        return {"status": "ok", "vectors": self._selftest.passed}

    # ---- inspection --------------------------------------------------------------------------------------------

    def mark_test_token(self) -> None:
        """Mark a token created for the lab as a test token (only `tsm init --test-token` on a new token)."""
        self.hsm.put_marker(TEST_TOKEN_MARKER)

    def is_test_token(self) -> bool:
        """Whether the token carries the test-token marker written by `tsm init --test-token`."""
        return self.hsm.has_marker(TEST_TOKEN_MARKER)

    def token_info(self) -> TokenInfo:
        """Token identity."""
        return self.hsm.info()

    def check_token(self) -> TokenCheck:
        """Compare inventory and token: every live record needs its object, every object its record, and each
        object's security attributes must still be those of its template (usage flags, sensitive, extractable).
        """
        on_token = {o.label for o in self.hsm.objects()}
        with self._sessions() as db:
            live = {r.label: r for r in db.execute(select(KeyRecord).where(
                KeyRecord.state != KeyState.DESTROYED.value)).scalars()}
        wrong = [f"{label}: {problem}" for label in sorted(live.keys() & on_token)
                 for problem in self._attribute_drift(live[label])]
        return TokenCheck(sorted(live.keys() - on_token), sorted(on_token - live.keys()), wrong)

    def _attribute_drift(self, rec: KeyRecord) -> list[str]:
        expected = templates.master_key(rec.label, b"", PKCS11_TYPE[Algorithm(rec.algorithm)],
                                        CAPABILITIES[KeyUsage(rec.usage)], rec.exportable)
        handle = self.hsm.handle(rec.label)
        problems = []
        with self.hsm.lock:
            for attr, want in expected.items():
                if isinstance(want, bool):
                    have = self.hsm.raw.get_bool(handle, attr)
                    if have is not want:
                        problems.append(f"{attr.name} is {have}, its template says {want}")
        return problems

    def verify_audit(self) -> VerifyReport:
        """Verify the whole audit chain (raises AuditChainBroken naming the first bad record)."""
        return self.audit.verify()


def request(caller: Caller, purpose: Purpose, target: str) -> Request:
    """Shorthand used by the CLI and the TSM layer."""
    return Request(caller, purpose, target)
