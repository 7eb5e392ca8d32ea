"""Key-use policy: every call states caller, purpose and target; usage × operation × purpose is checked
before the HSM is touched (ARCHITECTURE.md principle 2). A refusal is audited like any other outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum, unique
from typing import TYPE_CHECKING, Final

from keyservice.errors import InvalidInput, KeyStateError, PolicyDenied
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage

if TYPE_CHECKING:
    from keyservice.approvals import ApprovalSet


@unique
class Purpose(StrEnum):
    """Why a caller uses a key; recorded in every audit record."""

    KEY_MANAGEMENT = "KEY_MANAGEMENT"
    KEY_ROTATION = "KEY_ROTATION"
    SE_PERSO = "SE_PERSO"
    SE_MANAGEMENT = "SE_MANAGEMENT"
    VENDOR_IMPORT = "VENDOR_IMPORT"
    VENDOR_EXPORT = "VENDOR_EXPORT"
    DIAGNOSTIC = "DIAGNOSTIC"
    AUDIT = "AUDIT"
    SELFTEST = "SELFTEST"
    SERVICE = "SERVICE"
    """A service provider's application operation on a card (a purse top-up) or on its service data."""
    AUTHENTICATION = "AUTHENTICATION"
    """A person proving who they are (password + TOTP), and an approval they give (docs/people.md)."""


@unique
class Operation(StrEnum):
    """Key-service operations (one audit record each)."""

    GENERATE = "generate"
    IMPORT_TEST = "import-test"
    IMPORT_WRAPPED = "import-wrapped"
    EXPORT_WRAPPED = "export-wrapped"
    UNWRAP = "unwrap"
    WRAP = "wrap"
    CHANGE_STATE = "change-state"
    DESTROY = "destroy"
    KCV = "kcv"
    MAC = "mac"
    DIVERSIFY = "diversify"
    SECURE_CHANNEL = "secure-channel"
    PUT_KEY = "put-key"
    STORE_DATA = "store-data"
    DIAGNOSE = "diagnose"
    RECONCILE = "reconcile"
    DM_TOKEN = "dm-token"  # noqa: S105 - an operation name, not a secret
    VERIFY_RECEIPT = "verify-receipt"
    DAP_SIGNATURE = "dap-signature"
    SEAL = "seal"
    UNSEAL = "unseal"
    COMPONENT = "component"
    """A key component generated, entered or discarded (keyservice/components.py)."""
    IMPORT_COMPONENTS = "import-components"
    """A key formed in the HSM from the components custodians entered (docs/ceremonies.md)."""
    EVIDENCE = "evidence"
    """The SHA-256 of a ceremony's transcript anchored in the chain."""
    ENROLL = "person-enroll"
    REMOVE_PERSON = "person-remove"
    AUTHENTICATE = "authenticate"
    APPROVE = "approve"
    CLOSE_BOOTSTRAP = "bootstrap-close"
    QUORUM_CHANGE = "quorum-change"


@dataclass(frozen=True)
class Request:
    """Caller, purpose and target of one key-service call, and the approval set of a privileged one
    (keyservice/approvals.py: the key service verifies it against the call it is presented with)."""

    caller: Caller
    purpose: Purpose
    target: str
    approvals: ApprovalSet | None = None

    def __post_init__(self) -> None:
        if not self.target or len(self.target) > TARGET_MAX or not self.target.isprintable():
            raise InvalidInput(f"a key-service call needs a target (SE id, SD AID, job id): 1 to {TARGET_MAX} "
                               "printable characters")


TARGET_MAX: Final = 256
_MANAGE: Final = frozenset({Purpose.KEY_MANAGEMENT})
_CHANNEL: Final = frozenset({Purpose.SE_PERSO, Purpose.SE_MANAGEMENT, Purpose.KEY_ROTATION, Purpose.DIAGNOSTIC,
                             Purpose.SELFTEST})
_ANY: Final = frozenset(Purpose)

# (usage, operation) -> purposes that may use it. Anything absent is refused.
RULES: Final[dict[tuple[KeyUsage, Operation], frozenset[Purpose]]] = {
    **{(u, op): _MANAGE for u in KeyUsage for op in
       (Operation.GENERATE, Operation.IMPORT_TEST, Operation.IMPORT_COMPONENTS, Operation.CHANGE_STATE,
        Operation.DESTROY)},
    **{(u, Operation.KCV): _ANY for u in KeyUsage},
    **{(u, Operation.IMPORT_WRAPPED): frozenset({Purpose.VENDOR_IMPORT}) for u in KeyUsage
       if u is not KeyUsage.AUDIT_KEY},
    (KeyUsage.KMC, Operation.DIVERSIFY): _CHANNEL,
    (KeyUsage.KMC, Operation.SECURE_CHANNEL): _CHANNEL,
    (KeyUsage.KMC, Operation.PUT_KEY): frozenset({Purpose.KEY_ROTATION, Purpose.SE_PERSO, Purpose.SELFTEST}),
    (KeyUsage.KMC, Operation.DIAGNOSE): frozenset({Purpose.DIAGNOSTIC}),
    (KeyUsage.ISD_KEYSET, Operation.SECURE_CHANNEL): _CHANNEL,
    (KeyUsage.SSD_KEYSET, Operation.SECURE_CHANNEL): _CHANNEL,
    (KeyUsage.ISD_KEYSET, Operation.PUT_KEY): frozenset({Purpose.KEY_ROTATION, Purpose.SE_PERSO,
                                                         Purpose.SELFTEST}),
    (KeyUsage.SSD_KEYSET, Operation.PUT_KEY): frozenset({Purpose.KEY_ROTATION, Purpose.SE_PERSO,
                                                         Purpose.SELFTEST}),
    (KeyUsage.ISD_KEYSET, Operation.DIAGNOSE): frozenset({Purpose.DIAGNOSTIC}),
    (KeyUsage.SSD_KEYSET, Operation.DIAGNOSE): frozenset({Purpose.DIAGNOSTIC}),
    (KeyUsage.KMC, Operation.STORE_DATA): frozenset({Purpose.SE_PERSO}),
    (KeyUsage.ISD_KEYSET, Operation.STORE_DATA): frozenset({Purpose.SE_PERSO}),
    (KeyUsage.SSD_KEYSET, Operation.STORE_DATA): frozenset({Purpose.SE_PERSO}),
    **{(u, Operation.EXPORT_WRAPPED): frozenset({Purpose.VENDOR_EXPORT}) for u in
       (KeyUsage.KMC, KeyUsage.ISD_KEYSET, KeyUsage.SSD_KEYSET, KeyUsage.KEK)},
    (KeyUsage.KEK, Operation.WRAP): frozenset({Purpose.VENDOR_EXPORT}),
    (KeyUsage.KEK, Operation.UNWRAP): frozenset({Purpose.VENDOR_IMPORT, Purpose.SELFTEST}),
    (KeyUsage.RECEIPT_KEY, Operation.MAC): frozenset({Purpose.SE_MANAGEMENT}),
    (KeyUsage.DAP_KEY, Operation.MAC): frozenset({Purpose.SE_MANAGEMENT}),
    (KeyUsage.AUDIT_KEY, Operation.MAC): frozenset({Purpose.AUDIT}),
    # Delegated Management and DAP (GPCS 2.3.1 §C.2-§C.5): tokens and DAPs are made, receipts verified, for
    # card-content management; the public token key, the receipt key and a DAP key reach a card by PUT KEY.
    (KeyUsage.TOKEN_KEY, Operation.DM_TOKEN): frozenset({Purpose.SE_MANAGEMENT}),
    (KeyUsage.RECEIPT_KEY, Operation.VERIFY_RECEIPT): frozenset({Purpose.SE_MANAGEMENT}),
    (KeyUsage.DAP_KEY, Operation.DAP_SIGNATURE): frozenset({Purpose.SE_MANAGEMENT}),
    **{(u, Operation.PUT_KEY): frozenset({Purpose.SE_MANAGEMENT, Purpose.KEY_ROTATION, Purpose.SE_PERSO})
       for u in (KeyUsage.TOKEN_KEY, KeyUsage.RECEIPT_KEY, KeyUsage.DAP_KEY)},
    # The service life cycle: an SP's application master MACs for one SE's key (a purse top-up) and reaches a card
    # only as that SE's key in an encrypted DGI at personalisation; service data is sealed at rest.
    (KeyUsage.APP_KEY, Operation.MAC): frozenset({Purpose.SERVICE}),
    (KeyUsage.APP_KEY, Operation.STORE_DATA): frozenset({Purpose.SE_PERSO}),
    **{(KeyUsage.DATA_KEY, op): frozenset({Purpose.SERVICE, Purpose.SE_PERSO})
       for op in (Operation.SEAL, Operation.UNSEAL)},
}

# Operations that change the key hierarchy, the quorum or the people: officers only, and each needs an approval
# set for the exact call (keyservice/approvals.py; a lab token's console officer may act alone, recorded as lab).
# A state change needs one only towards active or compromised (keyservice/operations.py, `APPROVED_STATES`).
PRIVILEGED: Final = frozenset({Operation.GENERATE, Operation.IMPORT_TEST, Operation.IMPORT_WRAPPED,
                               Operation.IMPORT_COMPONENTS,
                               Operation.CHANGE_STATE, Operation.DESTROY, Operation.EXPORT_WRAPPED,
                               Operation.RECONCILE, Operation.QUORUM_CHANGE, Operation.ENROLL,
                               Operation.REMOVE_PERSON})
_PRIVILEGED_CALLERS: Final = frozenset({CallerKind.OFFICER})

# Operations that protect data need an active key (SP 800-57 §5.3.4); a KCV works on any live key.
_USABLE: Final[dict[Operation, frozenset[KeyState]]] = {
    Operation.GENERATE: frozenset({KeyState.PRE_ACTIVATION}),
    Operation.IMPORT_TEST: frozenset({KeyState.PRE_ACTIVATION}),
    Operation.IMPORT_WRAPPED: frozenset({KeyState.PRE_ACTIVATION}),
    Operation.IMPORT_COMPONENTS: frozenset({KeyState.PRE_ACTIVATION}),
    Operation.KCV: frozenset(KeyState) - {KeyState.DESTROYED},
    Operation.CHANGE_STATE: frozenset(KeyState) - {KeyState.DESTROYED},
    Operation.DESTROY: frozenset(KeyState) - {KeyState.DESTROYED},
    Operation.EXPORT_WRAPPED: frozenset({KeyState.ACTIVE}),
}


def check(request: Request, operation: Operation, usage: KeyUsage, state: KeyState) -> None:
    """Raise PolicyDenied / KeyStateError unless `request` may run `operation` on a key of `usage`."""
    if operation in PRIVILEGED and request.caller.kind not in _PRIVILEGED_CALLERS:
        raise PolicyDenied(f"{operation} is reserved to security officers (caller is {request.caller.kind})")
    allowed = RULES.get((usage, operation), frozenset())
    if request.purpose not in allowed:
        raise PolicyDenied(f"{usage} keys may not be used for {operation} with purpose {request.purpose}")
    usable = _USABLE.get(operation, frozenset({KeyState.ACTIVE}))
    if state not in usable:
        needed = " or ".join(sorted(s.value for s in usable))
        raise KeyStateError(f"{operation} needs a key that is {needed}; this key is {state}")


def check_officer(request: Request, operation: Operation) -> None:
    """Raise PolicyDenied unless the caller is a security officer (operations on the key service itself)."""
    if request.caller.kind is not CallerKind.OFFICER:
        raise PolicyDenied(f"{operation} is reserved to security officers (caller is {request.caller.kind})")
