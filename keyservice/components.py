"""Key components under split knowledge (`KeyService.components`): generated or entered one custodian at a time,
held sealed between their sessions, combined (XOR) into one HSM key at the end (docs/ceremonies.md).

- `generate`: a component drawn from the token's RNG, its KCV computed in the HSM, sealed and stored; its value
  is returned once, for the custodian's paper backup, and never again.
- `enter`: a custodian's component and the KCV written beside it; the KCV is recomputed in the HSM and a wrong
  one refused (`KcvMismatch`) before anything is stored.
- `combine`: at the last component, the sealed components are opened in the HSM (AES-GCM), XORed on the host
  and the sum created as a sensitive, non-extractable token key (C_CreateObject) in pre-activation; the host
  buffers are overwritten. SoftHSM2 has no CKM_XOR_BASE_AND_DATA (docs/ceremonies.md, "What SoftHSM2 allows"), so
  the combined key is briefly in host memory; a production profile would import each component as a key object
  and combine them with that mechanism. Re-running an interrupted combination finds the key it made.
- `discard`: an aborted ceremony's sealed components are deleted and a key formed or generated for it that was
  never activated (state pre-activation, its note naming the set) is destroyed; its record stays, destroyed.
- `resume`: before a ceremony's step runs again after its process was killed (kill -9), what the killed run left
  half-done for the step's key (an intent between its commit and the record's) is finished the way
  `tsm keys reconcile` would: a token object made without its record is destroyed, a destruction the record
  already shows is completed, other intents are dropped. Nothing usable is touched, so no approvals are needed.

Between sessions a component sits in `ks_components` only sealed under the HSM-resident component sealing key
(`tsm.component-seal`, AES-256 DATA_KEY made on first use), with the set id and index as additional data, so a
sealed component moved to another set or index does not open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final

from pkcs11.constants import Attribute
from sqlalchemy import delete, select

from globalplatform.kcv import default_method
from globalplatform.keys import KeyAlgorithm
from keyservice import operations, sealing, templates
from keyservice.audit import AuditEntry
from keyservice.core import Core
from keyservice.errors import InvalidInput, KcvMismatch, KeyExists, KeyNotFound, KeyServiceError
from keyservice.gp import kcv as gp_kcv
from keyservice.gp.hsmops import same
from keyservice.identity import SERVICE_ACTOR
from keyservice.inventory import CAPABILITIES, KeyState, KeyUsage, Provenance
from keyservice.models import ComponentRecord, KeyRecord
from keyservice.policy import Operation, Purpose, Request
from keyservice.views import KeyView, NewKey

__all__ = ["Components", "HeldComponent", "ShownComponent", "set_marker"]

SEAL_KEY_LABEL: Final = "tsm.component-seal"
SEAL_KEY_LENGTH: Final = 32
KCV_LENGTH: Final = 3
COMPONENTS_MAX: Final = 9
SET_ID_MAX: Final = 64


def set_marker(set_id: str) -> str:
    """The mark a key made for a component set (or a ceremony) carries in its note; `discard` looks for it."""
    return f"[set {set_id}]"


@dataclass(frozen=True)
class HeldComponent:
    """A component the key service holds sealed: its index, KCV and who generated or entered it."""

    index: int
    kcv: str
    actor: str
    created_at: datetime


@dataclass(frozen=True)
class ShownComponent:
    """A generated component, shown once to its custodian: the value (hex) never appears in a repr."""

    index: int
    kcv: str
    value: str = field(repr=False)


def _check_set(set_id: str, index: int) -> None:
    if not set_id or len(set_id) > SET_ID_MAX or not set_id.isprintable():
        raise InvalidInput(f"a component set id is 1 to {SET_ID_MAX} printable characters")
    if not 1 <= index <= COMPONENTS_MAX:
        raise InvalidInput(f"a component index is 1 to {COMPONENTS_MAX}, not {index}")


def _context(set_id: str, index: int) -> bytes:
    return f"tsm.component.v1\x00{set_id}\x00{index}".encode()


class Components:
    """Split knowledge: components generated or entered, held sealed, combined into one key, or discarded."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    # ---- the sealing key ----------------------------------------------------------------------------------

    def _seal_key(self, core: Core) -> int:
        """The handle of the component sealing key, made (and recorded) on first use."""
        with core.sessions() as db:
            found = db.execute(select(KeyRecord.id).where(KeyRecord.label == SEAL_KEY_LABEL)).first()
        if found is None:
            spec = NewKey(SEAL_KEY_LABEL, KeyAlgorithm.AES, SEAL_KEY_LENGTH, KeyUsage.DATA_KEY, owner="keyservice")
            entry = AuditEntry(SERVICE_ACTOR, Operation.GENERATE.value, Purpose.KEY_MANAGEMENT.value,
                               "key-components", [], "ok")
            key_type = templates.key_type(spec.algorithm, spec.length)
            with suppress(KeyExists):  # another process made it first
                core.new_key(entry, spec.label, spec.usage, Provenance.GENERATED,
                             lambda cka_id: (core.hsm.generate(spec.label, cka_id, key_type, spec.length,
                                                               CAPABILITIES[spec.usage]), spec), KeyState.ACTIVE)
        with core.sessions() as db:
            core.record(db, SEAL_KEY_LABEL)  # its signature checked before it seals anything
        return core.hsm.hot_handle(SEAL_KEY_LABEL)

    def _kcv(self, core: Core, algorithm: KeyAlgorithm, value: bytes | bytearray) -> str:
        """The GP KCV of a clear component, computed in the HSM on a session object destroyed at once."""
        key_type = templates.key_type(algorithm, len(value))
        with core.hsm.lock:
            handle = core.hsm.raw.create({**templates.session_key(key_type), Attribute.VALUE: bytes(value)})
        try:
            return gp_kcv.kcv_hex(core.hsm, handle, algorithm, default_method(algorithm), KCV_LENGTH)
        finally:
            with core.hsm.lock:
                core.hsm.raw.destroy(handle)

    def _store(self, core: Core, req: Request, set_id: str, index: int, algorithm: KeyAlgorithm,
               value: bytes | bytearray, kcv: str, detail: str) -> HeldComponent:
        sealed = sealing.seal(core.hsm, self._seal_key(core), bytes(value), _context(set_id, index))
        now = datetime.now(UTC)
        with core.audited(req, Operation.COMPONENT, [(f"{set_id}#{index}", kcv)], detail) as txn:
            txn.db.execute(delete(ComponentRecord).where(ComponentRecord.set_id == set_id,
                                                         ComponentRecord.idx == index))
            txn.db.add(ComponentRecord(set_id=set_id, idx=index, algorithm=algorithm.value, length=len(value),
                                       kcv=kcv, sealed=sealed.hex(), actor=str(req.caller), created_at=now))
        return HeldComponent(index, kcv, str(req.caller), now)

    # ---- custodians' sessions -------------------------------------------------------------------------------

    def generate(self, req: Request, set_id: str, index: int, algorithm: KeyAlgorithm,
                 length: int) -> ShownComponent:
        """A new component from the token's RNG, held sealed (replacing one of the same index that its custodian
        never confirmed); its value is returned for this one display only."""
        _check_set(set_id, index)
        core = self._core()
        templates.key_type(algorithm, length)  # refuses a length the algorithm does not have
        value = bytearray(core.hsm.random(length))
        try:
            kcv = self._kcv(core, algorithm, value)
            self._store(core, req, set_id, index, algorithm, value, kcv, f"generated set={set_id} index={index}")
            return ShownComponent(index, kcv, value.hex().upper())
        finally:
            value[:] = bytes(len(value))

    def enter(self, req: Request, set_id: str, index: int, algorithm: KeyAlgorithm, value: bytes,
              kcv: str) -> HeldComponent:
        """A custodian's component with the KCV written beside it: a wrong KCV is refused (KcvMismatch) and nothing
        is stored. Entering the same component again is harmless; another one for a held index is refused."""
        _check_set(set_id, index)
        core = self._core()
        try:
            expected = bytes.fromhex(kcv)
        except ValueError:
            raise InvalidInput("the component's KCV is not valid hex") from None
        if len(expected) != KCV_LENGTH:
            raise InvalidInput(f"a component's KCV is {KCV_LENGTH} bytes, not {len(expected)}")
        try:
            templates.key_type(algorithm, len(value))
            actual = self._kcv(core, algorithm, value)
            if not same(bytes.fromhex(actual), expected):
                raise KcvMismatch(f"component {index} does not have the KCV written beside it: nothing was stored")
            held = {c.index: c for c in self.held(set_id)}
            if index in held:
                if held[index].kcv != actual:
                    raise KeyExists(f"component {index} of {set_id} is already held (KCV {held[index].kcv})")
                return held[index]
        except KeyServiceError as exc:
            raise core.refuse(req, Operation.COMPONENT, [(f"{set_id}#{index}", "")], exc) from None
        return self._store(core, req, set_id, index, algorithm, value, actual, f"entered set={set_id} index={index}")

    def held(self, set_id: str) -> list[HeldComponent]:
        """The components held for a set (indexes, KCVs, who), never their values."""
        with self._core().sessions() as db:
            rows = db.execute(select(ComponentRecord).where(ComponentRecord.set_id == set_id)
                              .order_by(ComponentRecord.idx)).scalars()
            return [HeldComponent(r.idx, r.kcv, r.actor, r.created_at) for r in rows]

    # ---- the end of a ceremony ------------------------------------------------------------------------------

    def combine(self, req: Request, set_id: str, spec: NewKey, count: int, *, generated: bool) -> KeyView:
        """The key `spec` formed in the HSM from the `count` held components (XOR), in pre-activation; the sealed
        components are deleted. `generated` says the components were generated by `generate` (key generation
        with split, operation generate) rather than entered (operation import-components)."""
        core = self._core()
        op = Operation.GENERATE if generated else Operation.IMPORT_COMPONENTS
        marked = replace(spec, note=f"{spec.note} formed from {count} components {set_marker(set_id)}".strip())
        existing = self._made_for(core, set_id, spec.label)
        if existing is not None:  # an interrupted combination: the key was made, the components remain
            self._delete(core, set_id)
            return existing
        with core.sessions() as db:
            rows = list(db.execute(select(ComponentRecord).where(ComponentRecord.set_id == set_id)
                                   .order_by(ComponentRecord.idx)).scalars())
        try:
            if not 2 <= count <= COMPONENTS_MAX or [r.idx for r in rows] != list(range(1, count + 1)):
                raise InvalidInput(f"{set_id} holds components {[r.idx for r in rows]}, not 1 to {count}")
            if any(r.algorithm != spec.algorithm.value or r.length != spec.length for r in rows):
                raise InvalidInput(f"the components of {set_id} are not {spec.length}-byte {spec.algorithm} values")
            key_type = templates.key_type(spec.algorithm, spec.length)
        except KeyServiceError as exc:
            raise core.refuse(req, op, [(spec.label, "")], exc) from None
        seal_key = self._seal_key(core)

        def make(cka_id: bytes) -> tuple[int, NewKey]:
            total = bytearray(spec.length)
            try:
                for row in rows:
                    part = bytearray(sealing.unseal(core.hsm, seal_key, bytes.fromhex(row.sealed),
                                                    _context(set_id, row.idx)))
                    for i, byte in enumerate(part):
                        total[i] ^= byte
                    part[:] = bytes(len(part))
                handle = core.hsm.create(spec.label, cka_id, key_type, bytes(total), CAPABILITIES[spec.usage],
                                         spec.exportable)
            finally:
                total[:] = bytes(len(total))
            return handle, marked

        described = operations.generate(spec) if generated else operations.import_components(spec)
        view = core.create_key(req, op, spec.label, spec.usage, Provenance.IMPORTED_COMPONENTS
                               if not generated else Provenance.GENERATED, make,
                               used=[(f"{set_id}#{r.idx}", r.kcv) for r in rows], described=described)
        self._delete(core, set_id)
        return view

    def discard(self, req: Request, set_id: str, labels: Sequence[str] = ()) -> list[str]:
        """Delete the set's sealed components and destroy every key made for it that was never activated; the
        labels destroyed are returned (their records stay, destroyed, with their KCVs). `labels` are the keys the
        set's steps make: a creation of one killed before its record was written is rolled back too (`resume`).
        The request's target is the set (the ceremony): nothing usable is destroyed, so no approvals are needed
        (docs/ceremonies.md)."""
        core = self._core()
        if req.target != set_id:  # any participant of the ceremony (a time-out is aborted by whoever touches it)
            raise core.refuse(req, Operation.COMPONENT, [], InvalidInput("a set is discarded for its own ceremony"))
        with core.sessions() as db:
            marked = [r.label for r in db.execute(select(KeyRecord)).scalars() if set_marker(set_id) in r.note]
        for label in dict.fromkeys([*marked, *labels]):  # a killed creation or discard is finished first
            self.resume(req, set_id, label)
        with core.sessions() as db:
            made = [r.label for r in db.execute(select(KeyRecord).where(
                KeyRecord.state == KeyState.PRE_ACTIVATION.value)).scalars() if set_marker(set_id) in r.note]
        for label in made:
            self._destroy_unused(core, req, label)
        if self.held(set_id):
            with core.audited(req, Operation.COMPONENT, [], f"discarded set={set_id}") as txn:
                txn.db.execute(delete(ComponentRecord).where(ComponentRecord.set_id == set_id))
        return made

    def resume(self, req: Request, set_id: str, label: str) -> list[str]:
        """Finish what a killed run of the set's step left for `label` (its intents; module docstring); the
        remedies taken are returned and audited. A forged intent is left to `tsm keys reconcile`."""
        core = self._core()
        if req.target != set_id:
            raise core.refuse(req, Operation.COMPONENT, [], InvalidInput("a step is resumed for its own ceremony"))
        with core.sessions() as db:
            pending = [i for i, genuine in core.signer.pending(db) if genuine and i.label == label]
            rec = db.execute(select(KeyRecord).where(KeyRecord.label == label)).scalar_one_or_none()
        if not pending:
            return []
        obj = next((o for o in core.hsm.objects() if o.label == label), None)
        destroyed = rec is not None and rec.state == KeyState.DESTROYED.value
        plan = [(i, obj is not None and obj.cka_id == i.cka_id and (destroyed if i.operation == Operation.DESTROY.value
                                                                     else rec is None)) for i in pending]
        done = [f"{i.operation} of {label} interrupted: " + ("token object destroyed" if gone else "intent dropped")
                for i, gone in plan]
        with core.audited(req, Operation.COMPONENT, [(label, rec.kcv if rec else "")],
                          f"resumed set={set_id}: {'; '.join(done)}") as txn:
            for intent, gone in plan:
                if gone:
                    with suppress(KeyNotFound):
                        core.hsm.destroy(label)
                core.signer.finish(txn.db, intent.id)
        return done

    def _made_for(self, core: Core, set_id: str, label: str) -> KeyView | None:
        with core.sessions() as db:
            rec = db.execute(select(KeyRecord).where(KeyRecord.label == label)).scalar_one_or_none()
            if rec is None or set_marker(set_id) not in rec.note:
                return None
            return KeyView.of(core.signer.check(rec))

    @staticmethod
    def _delete(core: Core, set_id: str) -> None:
        with core.sessions() as db, db.begin():
            db.execute(delete(ComponentRecord).where(ComponentRecord.set_id == set_id))

    @staticmethod
    def _destroy_unused(core: Core, req: Request, label: str) -> None:
        """Destroy a never-activated key (keys.destroy's steps: intent, record, object, intent removed)."""
        with core.sessions() as db:
            rec = core.record(db, label)
        with core.sessions() as db, db.begin():
            intent = core.signer.begin(db, Operation.DESTROY.value, label, rec.cka_id, str(req.caller))
        with core.audited(req, Operation.DESTROY, [(rec.label, rec.kcv)], "never activated: ceremony aborted") as txn:
            rec = core.record(txn.db, label)
            if rec.state != KeyState.PRE_ACTIVATION.value:
                raise InvalidInput(f"{label} is {rec.state}: only a never-activated key is discarded")
            rec.state, rec.state_changed_at = KeyState.DESTROYED.value, datetime.now(UTC)
            core.signer.sign(rec, txn.seq)
        with suppress(KeyNotFound):  # an interrupted earlier discard destroyed the object already
            core.hsm.destroy(label)
        with core.sessions() as db, db.begin():
            core.signer.finish(db, intent)
