"""Typed errors of the key service (a small flat module, like pyca/cryptography's `exceptions`).

Every error has a stable `code` (the RFC 9457 problem type suffix in the API, the tag of the one-line CLI
error) and a message that never contains key material, PINs or other secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from globalplatform.errors import GpError


class KeyServiceError(Exception):
    """Base of every key-service error."""

    code = "keyservice_error"
    status = 500


class InvalidInput(KeyServiceError):
    """Malformed caller input: bad hex, wrong length, unknown enum value."""

    code = "invalid_input"
    status = 400


class ServiceSealed(KeyServiceError):
    """The key service is not open (token not logged in, or self-test not passed)."""

    code = "service_sealed"
    status = 503


class AuditSealed(ServiceSealed):
    """The audit chain does not continue the one anchored in the HSM (a rollback, a fork) or a break was found:
    every key operation is refused until an officer reconciles (`tsm keys reconcile`)."""

    code = "audit_sealed"


class ConfigurationError(KeyServiceError):
    """The embedded default or the HSM configuration is missing or inconsistent."""

    code = "configuration_error"
    status = 500


class HsmError(KeyServiceError):
    """A PKCS#11 call failed; `ckr` is the CKR_* return value name, `hint` what it means and what to do."""

    code = "hsm_error"
    status = 502

    def __init__(self, message: str, ckr: str = "", *, hint: str = "") -> None:
        text = f"{message} ({ckr})" if ckr else message
        super().__init__(f"{text}: {hint}" if hint else text)
        self.ckr = ckr
        self.hint = hint


class HsmUnavailable(HsmError):
    """Module, slot or token cannot be reached."""

    code = "hsm_unavailable"
    status = 503


class HsmBusy(HsmUnavailable):
    """The token is there but other processes kept it busy through every retry (e.g. concurrent key generation)."""

    code = "hsm_busy"


class HsmModuleNotLoadable(HsmUnavailable):
    """The configured PKCS#11 module file is missing or is not a loadable PKCS#11 library."""

    code = "hsm_module_not_loadable"


class HsmLoginFailed(HsmError):
    """The token refused the PIN or is locked."""

    code = "hsm_login_failed"
    status = 503


class HsmMechanismUnsupported(HsmError):
    """The token does not implement a mechanism the active strategy needs."""

    code = "hsm_mechanism_unsupported"


class HsmOperationRefused(HsmError):
    """The token refused the operation for the key's attributes (usage flags, sensitivity)."""

    code = "hsm_operation_refused"
    status = 403


class KeyNotFound(KeyServiceError):
    """No key with that label in the inventory (or on the token)."""

    code = "key_not_found"
    status = 404


class KeyExists(KeyServiceError):
    """A key with that label already exists."""

    code = "key_exists"
    status = 409


class KeyStateError(KeyServiceError):
    """The key's SP 800-57 state does not allow the operation or the transition."""

    code = "key_state"
    status = 409


class KeyRecordForged(KeyServiceError):
    """A key record's fields are not the ones the key service signed (changed in the database, or unsigned)."""

    code = "key_record_forged"
    status = 409


class KcvMismatch(KeyServiceError):
    """A key check value supplied by a caller does not match the key."""

    code = "kcv_mismatch"
    status = 422


class PolicyDenied(KeyServiceError):
    """The usage × operation × purpose policy refuses the call."""

    code = "policy_denied"
    status = 403


class TestTokenOnly(KeyServiceError):
    """Clear-key import is allowed only on a token initialised with `--test-token`."""

    code = "test_token_only"
    status = 403
    __test__ = False  # not a pytest test class


class AuditFailure(KeyServiceError):
    """The audit record could not be written; the operation it covered did not happen."""

    code = "audit_failure"
    status = 500


class AuditChainBroken(KeyServiceError):
    """`tsm audit verify` found a record that is altered, missing or out of order."""

    code = "audit_chain_broken"
    status = 500

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class CryptogramMismatch(KeyServiceError):
    """A card or host cryptogram did not verify; no EXTERNAL AUTHENTICATE is produced."""

    code = "cryptogram_mismatch"
    status = 422


class MacMismatch(KeyServiceError):
    """A MAC (R-MAC, key block MAC, receipt) did not verify."""

    code = "mac_mismatch"
    status = 422


class UnwrapFailed(KeyServiceError):
    """A wrapped key or key block could not be unwrapped; which check failed is not said."""

    code = "unwrap_failed"
    status = 422


class UnsealFailed(KeyServiceError):
    """A sealed value did not open: altered, sealed for another context or under another key (which is not said);
    no part of it is returned."""

    code = "unseal_failed"
    status = 422


class SelfTestFailed(KeyServiceError):
    """The start-up known-answer tests failed; the service refuses to start."""

    code = "selftest_failed"
    status = 503


# ---- people, authentication and approvals (docs/people.md) ----------------------------------------------


class WeakPassword(InvalidInput):
    """A new password does not meet the policy (length, not the name); the password itself is never quoted."""

    code = "weak_password"


class PersonExists(KeyServiceError):
    """A person with that name is already enrolled (removed people keep their name)."""

    code = "person_exists"
    status = 409


class PersonNotFound(KeyServiceError):
    """No active person with that name."""

    code = "person_not_found"
    status = 404


class PersonRecordForged(KeyServiceError):
    """A person's record (role, password hash, sealed TOTP secret, state, counters) is not the one the key service
    signed, or an older version of it was put back; the person cannot authenticate until it is repaired."""

    code = "person_record_forged"
    status = 409


class AuthenticationFailed(KeyServiceError):
    """Name, password or TOTP code wrong: the same message whichever it was."""

    code = "authentication_failed"
    status = 401


class TotpReplayed(AuthenticationFailed):
    """The TOTP code's time step was already used by this person (a code is accepted once only)."""

    code = "totp_replayed"


class AccountLocked(AuthenticationFailed):
    """Too many consecutive failures: the account is locked for a while (no credential is checked)."""

    code = "account_locked"
    status = 423


class BootstrapClosed(KeyServiceError):
    """The bootstrap is already closed."""

    code = "bootstrap_closed"
    status = 409


class BootstrapIncomplete(KeyServiceError):
    """The bootstrap cannot close yet (it needs at least two active officers)."""

    code = "bootstrap_incomplete"
    status = 409


class ApprovalError(KeyServiceError):
    """Base of the refusals of a privileged call for its approvals (403 unless said otherwise)."""

    code = "approval_error"
    status = 403


class ApprovalRequired(ApprovalError):
    """A privileged call came without an approval set (the message names the ceremony to run)."""

    code = "approval_required"


class ApprovalInvalid(ApprovalError):
    """An approval does not verify: bad MAC, malformed, for another operation digest or another requester."""

    code = "approval_invalid"


class ApprovalExpired(ApprovalError):
    """An approval is past its expiry time."""

    code = "approval_expired"


class ApprovalReplayed(ApprovalError):
    """An approval was already consumed by an earlier operation (single use)."""

    code = "approval_replayed"
    status = 409


class QuorumNotReached(ApprovalError):
    """Fewer valid approvals from distinct eligible people than the quorum M."""

    code = "quorum_not_reached"


class SelfApproval(ApprovalError):
    """The requester approved their own request."""

    code = "self_approval"


class DuplicateApprover(ApprovalError):
    """One person approved twice in one approval set."""

    code = "duplicate_approver"


class ApproverNotEligible(ApprovalError):
    """The approver's role may not approve this operation class, or the approver is no longer active."""

    code = "approver_not_eligible"


class QuorumRecordForged(KeyServiceError):
    """A quorum setting is not the one the key service signed (changed, deleted or replayed in the database)."""

    code = "quorum_record_forged"
    status = 409


@contextmanager
def gp_input() -> Iterator[None]:
    """Re-raise an error of the GP vocabulary (malformed APDU, wrong key length, bad KVN) as InvalidInput."""
    try:
        yield
    except GpError as exc:
        raise InvalidInput(str(exc)) from None
