"""The key inventory behind the barrier (`KeyService.keys`): generate, import test keys, list, change state,
destroy, KCVs, and the comparison of inventory and token.

Key states follow NIST SP 800-57 Part 1 Rev. 5 §5.3; generate, import, state changes and destroy are
privileged: officers only, each with an approval set for the exact call (keyservice/approvals.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pkcs11.constants import ObjectClass
from sqlalchemy import select

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice import operations, reconcile, templates
from keyservice.core import NOT_PRIVILEGED, Core
from keyservice.errors import InvalidInput, KeyNotFound, TestTokenOnly
from keyservice.hsm import TEST_TOKEN_MARKER
from keyservice.inventory import CAPABILITIES, INTERNAL_USAGES, KeyState, KeyUsage, Provenance, check_transition
from keyservice.models import KeyRecord
from keyservice.operations import OperationSpec
from keyservice.policy import Operation, Request, check_officer
from keyservice.views import KeyView, NewKey, TokenCheck

_KCV_OBJECT = {True: ObjectClass.SECRET_KEY, False: ObjectClass.PUBLIC_KEY}
"""The object a KCV is computed on: the secret key, or the public half of an RSA pair (its fingerprint)."""


class Keys:
    """Key management operations; every one audited, privileged ones reserved by policy."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    def generate(self, req: Request, spec: NewKey) -> KeyView:
        """Generate a master key (or an RSA key pair: C_GenerateKeyPair) inside the HSM and record it (state
        pre-activation)."""
        core = self._core()
        if spec.algorithm is KeyAlgorithm.RSA:
            return core.create_key(req, Operation.GENERATE, spec.label, spec.usage, Provenance.GENERATED,
                                   lambda cka_id: (core.hsm.generate_pair(spec.label, cka_id, spec.length), spec),
                                   described=operations.generate(spec))
        key_type = templates.key_type(spec.algorithm, spec.length)
        return core.create_key(req, Operation.GENERATE, spec.label, spec.usage, Provenance.GENERATED,
                               lambda cka_id: (core.hsm.generate(spec.label, cka_id, key_type, spec.length,
                                                                 CAPABILITIES[spec.usage], spec.exportable), spec),
                               described=operations.generate(spec))

    def import_test(self, req: Request, spec: NewKey, value: bytes) -> KeyView:
        """Import a clear key: allowed only on a token initialised as a test token (lab mode)."""
        core = self._core()
        key_type = templates.key_type(spec.algorithm, spec.length)  # refuses RSA: pairs are generated only
        if len(value) != spec.length:
            raise InvalidInput(f"the key value is {len(value)} bytes, the key is declared {spec.length}")
        if not core.hsm.has_marker(TEST_TOKEN_MARKER):
            raise core.refuse(req, Operation.IMPORT_TEST, [(spec.label, "")],
                              TestTokenOnly("clear-key import is refused: this is not a test token"))
        return core.create_key(req, Operation.IMPORT_TEST, spec.label, spec.usage, Provenance.IMPORTED_TEST,
                               lambda cka_id: (core.hsm.create(spec.label, cka_id, key_type, value,
                                                               CAPABILITIES[spec.usage], spec.exportable), spec),
                               state=KeyState.ACTIVE, described=operations.import_test(spec))

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
        core = self._core()
        with core.sessions() as db:
            return [KeyView.of(r, core.signer.forged(r) is None) for r in db.execute(query).scalars()]

    def show(self, label: str) -> KeyView:
        """One inventory record."""
        core = self._core()
        with core.sessions() as db:
            rec = core.record(db, label, signed=False)
            return KeyView.of(rec, core.signer.forged(rec) is None)

    def change_state(self, req: Request, label: str, new_state: KeyState) -> KeyView:
        """Move a key through the SP 800-57 states (destroy has its own call)."""
        if new_state is KeyState.DESTROYED:
            raise InvalidInput("use destroy to destroy a key")
        core = self._core()
        rec = core.authorise(req, Operation.CHANGE_STATE, label)
        clearance = (core.clear(req, operations.change_state(label, new_state), [(rec.label, rec.kcv)])
                     if new_state in operations.APPROVED_STATES else NOT_PRIVILEGED)
        with core.audited(req, Operation.CHANGE_STATE, [(rec.label, rec.kcv)],
                          f"{rec.state}->{new_state.value}", clearance) as txn:
            rec = core.record(txn.db, label)
            check_transition(KeyState(rec.state), new_state, rec.label)
            rec.state, rec.state_changed_at = new_state.value, datetime.now(UTC)
            core.signer.sign(rec, txn.seq)
        return KeyView.of(rec)

    def destroy(self, req: Request, label: str) -> KeyView:
        """Destroy the token object; the record stays, in state destroyed (SP 800-57 §5.3.6).

        Steps: the intent is committed; the record (state destroyed) commits with its audit record; the token
        object is destroyed; the intent is removed. `tsm keys reconcile` finishes an interrupted one (the
        object of a record already destroyed) or rolls it back (the record still live).
        """
        core = self._core()
        rec = core.authorise(req, Operation.DESTROY, label)
        if rec.usage in INTERNAL_USAGES:
            raise InvalidInput(f"{label} is one of the key service's own keys: it cannot be destroyed while in use")
        check_transition(KeyState(rec.state), KeyState.DESTROYED, rec.label)
        clearance = core.clear(req, operations.destroy(label), [(rec.label, rec.kcv)])
        with core.sessions() as db, db.begin():
            intent = core.signer.begin(db, Operation.DESTROY.value, label, rec.cka_id, str(req.caller))
        with core.audited(req, Operation.DESTROY, [(rec.label, rec.kcv)], clearance=clearance) as txn:
            rec = core.record(txn.db, label)
            check_transition(KeyState(rec.state), KeyState.DESTROYED, rec.label)
            rec.state, rec.state_changed_at = KeyState.DESTROYED.value, datetime.now(UTC)
            core.signer.sign(rec, txn.seq)
        core.hsm.destroy(label)
        with core.sessions() as db, db.begin():
            core.signer.finish(db, intent)
        return KeyView.of(rec)

    def kcv(self, req: Request, label: str, method: KcvMethod | None = None, length: int = 3) -> str:
        """The key check value of a key, by method (GP, AES over zeros, AES-CMAC, HMAC)."""
        core = self._core()
        rec = core.authorise(req, Operation.KCV, label)
        algorithm = KeyAlgorithm(rec.algorithm)
        with core.audited(req, Operation.KCV, [(rec.label, rec.kcv)]):
            return core.kcv(core.hsm.handle(label, _KCV_OBJECT[algorithm.symmetric]), algorithm, method, length)

    def check(self) -> TokenCheck:
        """Compare inventory and token: every live record needs its object, every object its record, and each
        object's security attributes must still be those of its template (usage flags, sensitive, extractable,
        and its real length).
        """
        core = self._core()
        on_token = {o.label: o for o in core.hsm.objects()}
        with core.sessions() as db:
            live = {r.label: r for r in db.execute(select(KeyRecord).where(
                KeyRecord.state != KeyState.DESTROYED.value)).scalars()}
        wrong = [f"{label}: {problem}" for label in sorted(live.keys() & on_token.keys())
                 for problem in _drift(core, live[label], on_token[label].length)]
        untrusted = [f"{f.subject}: {f.detail} (tsm keys reconcile will {f.action})"
                     for f in reconcile.record_findings(core)]
        sealed = core.audit.anchor().sealed
        if sealed:
            untrusted.insert(0, f"audit chain: sealed ({sealed}); nothing is used until tsm keys reconcile")
        interrupted = [f"{f.subject}: {f.detail} (tsm keys reconcile will {f.action})"
                       for f in reconcile.findings(core) if f.intent]
        pending = {f.subject.split(" ")[0] for f in reconcile.findings(core) if f.intent}
        return TokenCheck(sorted(live.keys() - on_token.keys()),
                          sorted(on_token.keys() - live.keys() - pending), wrong, untrusted, interrupted)

    def integrity(self) -> dict[str, object]:
        """For /health: whether every key record is the one the key service signed (forged, replayed and unsigned
        records listed by label)."""
        untrusted = sorted({f.subject for f in reconcile.record_findings(self._core())})
        if untrusted:
            return {"status": "untrusted", "code": "key_record_forged", "labels": untrusted,
                    "detail": f"{len(untrusted)} key record(s) are not the ones the key service signed: "
                              "tsm keys check, tsm keys reconcile"}
        return {"status": "ok"}

    def reconciliation(self) -> OperationSpec:
        """What `reconcile(apply=True)` would do now, as its approvers approve it (`operations.reconcile`; `tsm keys
        approve-reconcile`)."""
        return reconcile.described(reconcile.findings(self._core()))

    def reconcile(self, req: Request, *, apply: bool = False) -> list[reconcile.Finding]:
        """What a crash, a rollback or a tampered database left behind, and (with `apply`) the remedies, taken
        and recorded in one reconciliation record (keyservice/reconcile.py). Officers only; applying needs an
        approval set for exactly these findings (`operations.reconcile`), sealed chain or not (approvals given
        while sealed: docs/people.md, "Sealed chain"); a refusal while sealed cannot be audited."""
        core = self._core()
        check_officer(req, Operation.RECONCILE)
        found = reconcile.findings(core)
        if apply and found:
            sealed = bool(core.audit.anchor().sealed)
            clearance = core.clear(req, reconcile.described(found), [], audited=not sealed)
            reconcile.apply(core, req, found, clearance, sealed=sealed)
        return found


def _drift(core: Core, rec: KeyRecord, length: int | None) -> list[str]:
    """How the token object (both objects of an RSA pair) differs from its record and template."""
    algorithm = KeyAlgorithm(rec.algorithm)
    if algorithm is KeyAlgorithm.RSA:
        public, private = templates.rsa_key_pair(rec.label, b"", rec.length)
        expected = [(ObjectClass.PUBLIC_KEY, public, "public key: "), (ObjectClass.PRIVATE_KEY, private, "")]
    else:
        secret = templates.master_key(rec.label, b"", templates.key_type(algorithm, rec.length),
                                      CAPABILITIES[KeyUsage(rec.usage)], rec.exportable)
        expected = [(ObjectClass.SECRET_KEY, secret, "")]
    problems = []
    if length and length != rec.length:  # SoftHSM2 records no CKA_VALUE_LEN on unwrapped AES keys: 0 is unknown
        problems.append(f"the token object is {length} {algorithm.unit}, the record says {rec.length}")
    for object_class, template, part in expected:
        try:
            handle = core.hsm.handle(rec.label, object_class)
        except KeyNotFound:
            problems.append(f"the {object_class.name.lower().replace('_', ' ')} object is missing")
            continue
        with core.hsm.lock:
            for attr, want in template.items():
                if isinstance(want, bool):
                    have = core.hsm.raw.get_bool(handle, attr)
                    if have is not want:
                        problems.append(f"{part}{attr.name} is {have}, its template says {want}")
    return problems
