"""The canonical description of a privileged call, the digest approvals are bound to (ARCHITECTURE.md principle 3).

An `OperationSpec` is the operation and its fields (label, usage, algorithm, length, owner, kvn, new state,
quorum, person, ...), encoded as sorted-key compact JSON with a version and domain; its `digest` is the SHA-256
(hex) of that encoding. The ceremony runtime computes it to gather approvals; the key service recomputes it from
the arguments of the call it is given, so an approval for one call never authorises another. The builders below
are the one definition of each privileged call's fields: both sides use them.

Each operation belongs to an operation class (`OpClass`): the unit a quorum M is configured for and the
ceremony that gathers its approvals (`CEREMONY`, the type `tsm ceremony start` takes; `gather`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from keyservice.errors import InvalidInput
from keyservice.inventory import KeyState
from keyservice.policy import Operation
from keyservice.views import NewKey

SPEC_VERSION: Final = 1
SPEC_DOMAIN: Final = "tsm.operation"
Field = str | int | bool | None


@unique
class OpClass(StrEnum):
    """Classes of privileged operations, each with its own quorum (docs/people.md)."""

    KEY_GENERATE = "key-generate"
    KEY_IMPORT = "key-import"
    KEY_EXPORT = "key-export"
    KEY_DESTROY = "key-destroy"
    KEY_STATE = "key-state"
    QUORUM_CHANGE = "quorum-change"
    PERSON_ENROLL = "person-enroll"
    PERSON_REMOVE = "person-remove"
    RECONCILE = "reconcile"


OP_CLASS: Final[dict[Operation, OpClass]] = {
    Operation.GENERATE: OpClass.KEY_GENERATE,
    Operation.IMPORT_TEST: OpClass.KEY_IMPORT,
    Operation.IMPORT_WRAPPED: OpClass.KEY_IMPORT,
    Operation.IMPORT_COMPONENTS: OpClass.KEY_IMPORT,
    Operation.EXPORT_WRAPPED: OpClass.KEY_EXPORT,
    Operation.DESTROY: OpClass.KEY_DESTROY,
    Operation.CHANGE_STATE: OpClass.KEY_STATE,
    Operation.QUORUM_CHANGE: OpClass.QUORUM_CHANGE,
    Operation.ENROLL: OpClass.PERSON_ENROLL,
    Operation.REMOVE_PERSON: OpClass.PERSON_REMOVE,
    Operation.RECONCILE: OpClass.RECONCILE,
}

CEREMONY: Final[dict[OpClass, str]] = {
    OpClass.KEY_GENERATE: "key-generation",
    OpClass.KEY_IMPORT: "key-import",
    OpClass.KEY_EXPORT: "vendor-exchange",
    OpClass.KEY_DESTROY: "key-destruction",
    OpClass.KEY_STATE: "key-rotation",
    OpClass.QUORUM_CHANGE: "quorum-and-people",
    OpClass.PERSON_ENROLL: "quorum-and-people",
    OpClass.PERSON_REMOVE: "quorum-and-people",
}
"""The ceremony (`tsm ceremony start TYPE`) that gathers the approvals of each class; a reconciliation gathers
its own at the console (`gather`), since the ceremony runtime cannot run on a sealed audit chain."""
RECONCILE_APPROVALS: Final = ("each approving officer runs 'tsm keys approve-reconcile --as NAME --requester YOU "
                              "> FILE', then 'tsm keys reconcile --yes --approval FILE ...'")


def gather(op_class: OpClass) -> str:
    """How the approvals of `op_class` are gathered (the hint of `approval_required`)."""
    return RECONCILE_APPROVALS if op_class is OpClass.RECONCILE else f"run 'tsm ceremony start {CEREMONY[op_class]}'"

APPROVED_STATES: Final = frozenset({KeyState.ACTIVE, KeyState.COMPROMISED})
"""State changes that need approvals (issue 11): making a key usable, or declaring it compromised. Suspending
and deactivating stay officer operations without a quorum (they only take a key out of use)."""


@dataclass(frozen=True)
class OperationSpec:
    """One privileged call as approvers see it: operation and fields; `digest` binds approvals to it."""

    operation: Operation
    fields: tuple[tuple[str, Field], ...]

    @property
    def op_class(self) -> OpClass:
        """The class whose quorum applies."""
        return OP_CLASS[self.operation]

    @property
    def label(self) -> str | None:
        """The key the call is about, when it is about one (a per-key quorum applies then)."""
        value = dict(self.fields).get("label")
        return value if isinstance(value, str) else None

    def canonical(self) -> bytes:
        """Version 1: sorted-key compact ASCII JSON of domain, version, operation and fields."""
        body = {"domain": SPEC_DOMAIN, "v": SPEC_VERSION, "operation": self.operation.value,
                "fields": dict(self.fields)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical encoding."""
        return hashlib.sha256(self.canonical()).hexdigest()

    def summary(self) -> str:
        """One line for people who approve it: `operation k=v ...`."""
        return " ".join([self.operation.value, *(f"{k}={v}" for k, v in self.fields)])


def describe(operation: Operation, **fields: Field) -> OperationSpec:
    """The canonical description of a privileged call (InvalidInput for an operation that is not privileged or a
    field value that is not a string, integer, boolean or None)."""
    if operation not in OP_CLASS:
        raise InvalidInput(f"{operation} is not a privileged operation: it takes no approvals")
    for name, value in fields.items():
        if not isinstance(value, str | int | bool | type(None)):
            raise InvalidInput(f"operation field {name} must be a string, integer, boolean or null")
    return OperationSpec(operation, tuple(sorted(fields.items())))


def _key_fields(spec: NewKey) -> dict[str, Field]:
    return {"label": spec.label, "algorithm": spec.algorithm.value, "length": spec.length,
            "usage": spec.usage.value, "owner": spec.owner, "kvn": spec.kvn, "key_id": spec.key_id,
            "exportable": spec.exportable}


def generate(spec: NewKey) -> OperationSpec:
    """`KeyService.keys.generate(req, spec)`."""
    return describe(Operation.GENERATE, **_key_fields(spec))


def import_test(spec: NewKey) -> OperationSpec:
    """`KeyService.keys.import_test(req, spec, value)` (the value itself is never part of a description)."""
    return describe(Operation.IMPORT_TEST, **_key_fields(spec))


def import_components(spec: NewKey) -> OperationSpec:
    """`KeyService.components.combine(req, set_id, spec, count, generated=False)`: a key formed from entered
    components (a combination of generated components is described as `generate`)."""
    return describe(Operation.IMPORT_COMPONENTS, **_key_fields(spec))


def change_state(label: str, new_state: KeyState) -> OperationSpec:
    """`KeyService.keys.change_state(req, label, new_state)`."""
    return describe(Operation.CHANGE_STATE, label=label, state=new_state.value)


def destroy(label: str) -> OperationSpec:
    """`KeyService.keys.destroy(req, label)`."""
    return describe(Operation.DESTROY, label=label)


def import_wrapped(kek: str, wrapped: bytes, expected_kcv: str, label: str, owner: str, usage: str | None,
                   kvn: int | None, key_id: int | None, fmt: str) -> OperationSpec:
    """`KeyService.vendor.import_key_block` (`fmt` "tr31") or `import_wrapped` (`fmt` "rfc3394"/"rfc5649" and
    the algorithm): the blob by its SHA-256."""
    return describe(Operation.IMPORT_WRAPPED, kek=kek, blob_sha256=hashlib.sha256(wrapped).hexdigest(),
                    kcv=expected_kcv.upper(), label=label, owner=owner, usage=usage, kvn=kvn, key_id=key_id,
                    format=fmt)


def export_wrapped(label: str, kek: str, fmt: str) -> OperationSpec:
    """`KeyService.vendor.export_wrapped` (`fmt` "rfc3394"/"rfc5649") or `export_key_block` ("tr31 USAGE MODE
    VERSION EXPORTABILITY")."""
    return describe(Operation.EXPORT_WRAPPED, label=label, kek=kek, format=fmt)


def reconcile(findings: list[tuple[str, str, str]]) -> OperationSpec:
    """`KeyService.keys.reconcile(req, apply=True)`: the findings (kind, subject, action) it will act on, as a
    dry run (`apply=False`) lists them."""
    listed = json.dumps(sorted(findings), separators=(",", ":"), ensure_ascii=True).encode()
    return describe(Operation.RECONCILE, findings_sha256=hashlib.sha256(listed).hexdigest(), count=len(findings))


def quorum_change(scope: str, m: int) -> OperationSpec:
    """`KeyService.quorum.set(req, scope, m)`; scope is an operation class or `label:NAME`."""
    return describe(Operation.QUORUM_CHANGE, scope=scope, m=m)


def enroll(name: str, role: str, owner: str | None) -> OperationSpec:
    """`KeyService.people.enroll(req, name, role, password, owner=...)` (the password is never described)."""
    return describe(Operation.ENROLL, person=name, role=role, owner=owner or "")


def remove(name: str) -> OperationSpec:
    """`KeyService.people.remove(req, name)`."""
    return describe(Operation.REMOVE_PERSON, person=name)
