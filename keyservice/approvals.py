"""Approvals the key service itself verifies (`KeyService.approvals`; ARCHITECTURE.md principle 3, issue 11).

An approval is one eligible person's consent to one exact privileged call: the call's `OperationSpec.digest`
(keyservice/operations.py), the requester, the approver, issue and expiry times and a random nonce, MACed
(HMAC-SHA256) inside the HSM by the approval key `tsm.approval-key`. `approve` issues one only after the
approver re-authenticated (password + TOTP) at that moment, and never to the requester. It travels as a compact
string (`Approval.encode`/`decode`) through the ceremony runtime, which keeps it in its own tables.

A privileged call carries an `ApprovalSet` in `Request.approvals`; the key service recomputes the digest from the
call's own arguments and clears it (`clear`) only when every MAC holds, every approval names that digest and that
requester, none expired or was used before, the approvers are distinct, none is the requester, each is still an
active eligible person, and there are at least M of them (keyservice/quorum.py). The approvals are consumed
(`ks_approvals_used`, unique nonce) in the transaction of the call's audit record, which names the approvers.
On a lab token (`tsm init --test-token`) an officer caller without approvals may act alone: the record says so.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from pkcs11.mechanisms import Mechanism

from keyservice import operations, reconcile, sealed_auth
from keyservice.audit import AuditEntry
from keyservice.core import Clearance, Core
from keyservice.errors import (
    ApprovalExpired,
    ApprovalInvalid,
    ApprovalReplayed,
    ApprovalRequired,
    ApproverNotEligible,
    AuditSealed,
    DuplicateApprover,
    InvalidInput,
    KeyServiceError,
    PersonNotFound,
    QuorumNotReached,
    SelfApproval,
)
from keyservice.identity import CallerKind
from keyservice.operations import OpClass, OperationSpec
from keyservice.people import Credentials, People, PersonState, Role, check_name
from keyservice.people_models import ApprovalUsed
from keyservice.policy import Operation, Purpose, Request
from keyservice.quorum import Quorum

APPROVAL_KEY_LABEL: Final = "tsm.approval-key"
APPROVAL_DOMAIN: Final = b"tsm.approval.v1\x00"
APPROVAL_PREFIX: Final = "tsm-approval.v1"
APPROVAL_TTL: Final = 900
"""Seconds an approval stays valid after it was given (15 minutes)."""
APPROVAL_MAX: Final = 2048
APPROVERS: Final = frozenset({Role.OFFICER})
"""Who may approve at all (`approve`): security officers."""
ELIGIBLE: Final[dict[OpClass, frozenset[Role]]] = {op_class: APPROVERS for op_class in OpClass}
"""Who may approve each class (docs/people.md): officers, for every class. Custodians hold components (ceremony
2) and auditors witness; neither authorises a change of the key hierarchy, the quorum or the people."""


@dataclass(frozen=True)
class Approval:
    """One person's MACed consent to one operation digest, for one requester, until `expires_at`."""

    approver: str
    requester: str
    digest: str
    issued_at: int
    expires_at: int
    nonce: str
    mac: str
    step: int | None = None
    """The approver's TOTP step, when the approval was given while the audit chain was sealed (nothing could be
    written then: the reconciliation that uses the approval writes it to the approver's row)."""

    def body(self) -> bytes:
        """The canonical encoding the MAC covers (`step` only when there is one)."""
        fields: dict[str, object] = {"approver": self.approver, "requester": self.requester, "digest": self.digest,
                                     "issued_at": self.issued_at, "expires_at": self.expires_at, "nonce": self.nonce}
        if self.step is not None:
            fields["step"] = self.step
        return APPROVAL_DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=True).encode()

    def encode(self) -> str:
        """`tsm-approval.v1.<base64url(body)>.<mac>`: what the ceremony runtime stores."""
        payload = base64.urlsafe_b64encode(self.body()[len(APPROVAL_DOMAIN):]).decode().rstrip("=")
        return f"{APPROVAL_PREFIX}.{payload}.{self.mac}"

    @classmethod
    def decode(cls, text: str) -> Approval:
        """The approval of `encode`'s string (ApprovalInvalid when malformed; its MAC is checked by `clear`)."""
        try:
            if len(text) > APPROVAL_MAX or not text.startswith(APPROVAL_PREFIX + "."):
                raise ValueError
            payload, mac = text[len(APPROVAL_PREFIX) + 1:].split(".")
            if len(mac) != 64 or any(c not in "0123456789abcdef" for c in mac):
                raise ValueError
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            step = fields.get("step")
            approval = cls(str(fields["approver"]), str(fields["requester"]), str(fields["digest"]),
                           int(fields["issued_at"]), int(fields["expires_at"]), str(fields["nonce"]), mac,
                           None if step is None else int(step))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise ApprovalInvalid("malformed approval") from None
        if approval.body() != APPROVAL_DOMAIN + base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)):
            raise ApprovalInvalid("malformed approval (not in canonical form)")
        return approval


@dataclass(frozen=True)
class ApprovalSet:
    """The approvals a requester presents with one privileged call."""

    requester: str
    approvals: tuple[Approval, ...]


class Approvals:
    """Issue approvals (`approve`) and verify the approval set of a privileged call (`clear`, the key service's
    own gate)."""

    def __init__(self, core: Callable[[], Core], people: People, quorum: Quorum,
                 clock: Callable[[], float]) -> None:
        self._core = core
        self._people = people
        self._quorum = quorum
        self._clock = clock

    @staticmethod
    def describe(operation: Operation, **fields: operations.Field) -> OperationSpec:
        """The canonical description of a privileged call (keyservice/operations.py has one builder per call)."""
        return operations.describe(operation, **fields)

    def _mac(self, core: Core, body: bytes) -> str:
        with core.hsm.lock:
            return bytes(core.hsm.raw.sign(core.hsm.hot_handle(APPROVAL_KEY_LABEL), Mechanism.SHA256_HMAC,
                                           body)).hex()

    def approve(self, digest: str, name: str, creds: Credentials, *, requester: str,
                now: float | None = None) -> Approval:
        """`name` re-authenticates and approves the operation `digest` requested by `requester` (SelfApproval,
        ApproverNotEligible, the errors of `authenticate`); audited. While the audit chain is sealed only the
        reconciliation can be approved, and nothing is written (`_approve_sealed`)."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidInput("an operation digest is 64 lower-case hex digits (SHA-256)")
        check_name(requester)
        at = self._clock() if now is None else now
        core = self._core()
        if core.audit.anchor().sealed:
            return self._approve_sealed(core, digest, name, creds, requester, at)
        try:
            who = self._people.authenticate(name, creds, now=at)
        except AuditSealed:  # this very call found the discrepancy and sealed the chain
            return self._approve_sealed(core, digest, name, creds, requester, at)
        entry = AuditEntry(name, Operation.APPROVE.value, Purpose.AUTHENTICATION.value, f"operation:{digest}", [],
                           "ok")
        try:
            if who.name == requester:
                raise SelfApproval(f"{name} requested this operation and cannot approve it")
            if who.role not in APPROVERS:
                raise ApproverNotEligible(f"{name} is {who.role.value}; approvals are given by officers")
        except KeyServiceError as exc:
            core.audit.append(replace(entry, outcome="refused", detail=exc.code))
            raise
        issued = int(at)
        unsigned = Approval(name, requester, digest, issued, issued + APPROVAL_TTL, secrets.token_hex(16), "")
        approval = replace(unsigned, mac=self._mac(core, unsigned.body()))
        core.audit.append(replace(entry, detail=f"requester={requester} nonce={approval.nonce} "
                                                f"expires_at={approval.expires_at}"))
        return approval

    def _approve_sealed(self, core: Core, digest: str, name: str, creds: Credentials, requester: str,
                        at: float) -> Approval:
        """The approval of the reconciliation of a sealed chain, and of nothing else (AuditSealed): the approver
        authenticates without a record (keyservice/sealed_auth.py); the approval carries the TOTP step, which
        the reconciliation record's transaction writes to the approver's row. Refusals cannot be audited: the
        failures are counted in the ledger, which the reconciliation record reports."""
        if not hmac.compare_digest(digest, reconcile.described(reconcile.findings(core)).digest):
            raise AuditSealed("the key service is sealed: only its reconciliation can be approved (tsm keys "
                              "approve-reconcile)")
        who, step = sealed_auth.authenticate(self._people, core, name, creds, at)
        if who.name == requester:
            raise SelfApproval(f"{name} requested this operation and cannot approve it")
        if who.role not in APPROVERS:
            raise ApproverNotEligible(f"{name} is {who.role.value}; approvals are given by officers")
        issued = int(at)
        unsigned = Approval(name, requester, digest, issued, issued + APPROVAL_TTL, secrets.token_hex(16), "", step)
        return replace(unsigned, mac=self._mac(core, unsigned.body()))

    def clear(self, req: Request, spec: OperationSpec) -> Clearance:
        """Verify the call's approval set against `spec`, recomputed by the key service from the call's arguments
        (module docstring). The approvals are consumed with the call's audit record (`Clearance.consume`)."""
        approvals = req.approvals
        if approvals is None:
            if self._quorum.lab_token() and req.caller.kind is CallerKind.OFFICER:
                return Clearance(lab=True)
            raise ApprovalRequired(f"{spec.operation} needs an approval set of {self._quorum.required(spec)} "
                                   f"officer(s): {operations.gather(spec.op_class)}")
        if approvals.requester != req.caller.name:
            raise ApprovalInvalid(f"the approvals were given to {approvals.requester!r}, not to the caller")
        core = self._core()
        now = self._clock()
        sealed = bool(core.audit.anchor().sealed)
        seen: list[Approval] = []
        for approval in approvals.approvals:
            if approval.step is not None and not sealed:
                raise ApprovalInvalid(f"the approval of {approval.approver!r} was given while the audit chain was "
                                      "sealed: only that seal's reconciliation can use it")
            self._check_one(core, approval, approvals.requester, spec, now)
            if any(a.approver == approval.approver for a in seen):
                raise DuplicateApprover(f"{approval.approver} approved twice; approvers must be distinct")
            seen.append(approval)
        required = self._quorum.required(spec)
        if len(seen) < required:
            raise QuorumNotReached(f"{spec.operation} needs {required} approval(s) from distinct officers; "
                                   f"{len(seen)} given")
        return Clearance(tuple(sorted(a.approver for a in seen)), tuple((a.nonce, a.digest, a.approver)
                                                                      for a in seen),
                         steps=tuple((a.approver, a.step) for a in seen if a.step is not None))

    def _check_one(self, core: Core, approval: Approval, requester: str, spec: OperationSpec, now: float) -> None:
        if not hmac.compare_digest(self._mac(core, approval.body()), approval.mac):
            raise ApprovalInvalid(f"the approval of {approval.approver!r} does not verify")
        if approval.requester != requester:
            raise ApprovalInvalid(f"the approval of {approval.approver!r} was given to another requester")
        if not hmac.compare_digest(approval.digest, spec.digest):
            raise ApprovalInvalid(f"the approval of {approval.approver!r} is for another operation")
        if now >= approval.expires_at:
            raise ApprovalExpired(f"the approval of {approval.approver!r} expired")
        if approval.approver == requester:
            raise SelfApproval(f"{requester} cannot approve their own request")
        with core.sessions() as db:
            if db.get(ApprovalUsed, approval.nonce) is not None:
                raise ApprovalReplayed(f"the approval of {approval.approver!r} was already used")
        try:
            person = self._people.person(approval.approver)
        except PersonNotFound:
            raise ApproverNotEligible(f"{approval.approver} is not enrolled") from None
        if person.state is not PersonState.ACTIVE or person.role not in ELIGIBLE[spec.op_class]:
            raise ApproverNotEligible(f"{approval.approver} is no longer an active person who may approve "
                                      f"{spec.op_class}")
