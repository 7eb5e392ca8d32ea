"""PKCS#11 return values (CK_RV, PKCS#11 v2.40 §11.1, values from pkcs11t.h): name, the key-service error they
become, and what they mean here when that helps an operator (one table for python-pkcs11 and the ctypes path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pkcs11.exceptions as p11e

from keyservice.errors import (
    HsmBusy,
    HsmError,
    HsmLoginFailed,
    HsmMechanismUnsupported,
    HsmOperationRefused,
    HsmUnavailable,
)

CKR_VENDOR_DEFINED: Final = 0x80000000


@dataclass(frozen=True)
class ReturnValue:
    """One CKR_* code: its name, the error class it maps to, and an optional explanation (no secrets)."""

    name: str
    error: type[HsmError] = HsmError
    hint: str = ""


_R = ReturnValue
_WRAP_KEK = "AES key wrap (RFC 3394/5649) and AES-CBC wrap need an AES KEK with CKA_WRAP"
_UNWRAP_KEK = "AES key unwrap needs an AES KEK with CKA_UNWRAP"
_STALE = "the cached handle is stale (object destroyed, or the session was reopened)"

CKR: Final[dict[int, ReturnValue]] = {
    0x001: _R("CKR_CANCEL"),
    0x002: _R("CKR_HOST_MEMORY", HsmUnavailable, "the PKCS#11 module ran out of host memory"),
    0x003: _R("CKR_SLOT_ID_INVALID", HsmUnavailable, "the slot disappeared: was the module re-initialised?"),
    0x005: _R("CKR_GENERAL_ERROR", HsmError,
              "the module failed without saying why; SoftHSM2 answers this while another process writes the token"),
    0x006: _R("CKR_FUNCTION_FAILED"),
    0x007: _R("CKR_ARGUMENTS_BAD", HsmError, "the key service passed an invalid argument (a bug: please report it)"),
    0x008: _R("CKR_NO_EVENT"),
    0x009: _R("CKR_NEED_TO_CREATE_THREADS"),
    0x00A: _R("CKR_CANT_LOCK", HsmUnavailable, "the module cannot use the locking the application asked for"),
    0x010: _R("CKR_ATTRIBUTE_READ_ONLY", HsmOperationRefused,
              "the template sets an attribute the token does not let us set (SoftHSM2: CKA_VALUE_LEN on DES keys)"),
    0x011: _R("CKR_ATTRIBUTE_SENSITIVE", HsmOperationRefused,
              "the attribute is sensitive: a key value is never read out of the token"),
    0x012: _R("CKR_ATTRIBUTE_TYPE_INVALID", HsmError, "the token does not know an attribute of the template"),
    0x013: _R("CKR_ATTRIBUTE_VALUE_INVALID", HsmError, "the token does not accept a value in the template"),
    0x01B: _R("CKR_ACTION_PROHIBITED", HsmOperationRefused, "the token's policy prohibits this action"),
    0x020: _R("CKR_DATA_INVALID", HsmError, "the input data is not valid for the mechanism"),
    0x021: _R("CKR_DATA_LEN_RANGE", HsmError,
              "the input length does not fit the mechanism (ECB and CBC without padding need whole blocks)"),
    0x030: _R("CKR_DEVICE_ERROR", HsmUnavailable, "the HSM reported a device error"),
    0x031: _R("CKR_DEVICE_MEMORY", HsmUnavailable, "the token is out of memory (too many objects or sessions)"),
    0x032: _R("CKR_DEVICE_REMOVED", HsmUnavailable, "the token was removed during the call"),
    0x040: _R("CKR_ENCRYPTED_DATA_INVALID", HsmError, "the ciphertext does not decrypt under this key"),
    0x041: _R("CKR_ENCRYPTED_DATA_LEN_RANGE", HsmError, "the ciphertext is not a whole number of blocks"),
    0x050: _R("CKR_FUNCTION_CANCELED"),
    0x051: _R("CKR_FUNCTION_NOT_PARALLEL"),
    0x054: _R("CKR_FUNCTION_NOT_SUPPORTED", HsmMechanismUnsupported,
              "the PKCS#11 module does not implement this function"),
    0x060: _R("CKR_KEY_HANDLE_INVALID", HsmError, f"the key handle is not valid in this session: {_STALE}"),
    0x062: _R("CKR_KEY_SIZE_RANGE", HsmError,
              "the key length does not fit the mechanism (AES: 16, 24 or 32 bytes; DES3: 16 or 24)"),
    0x063: _R("CKR_KEY_TYPE_INCONSISTENT", HsmOperationRefused,
              "the key's type does not fit the mechanism (e.g. an AES mechanism with a DES3 key)"),
    0x064: _R("CKR_KEY_NOT_NEEDED"),
    0x065: _R("CKR_KEY_CHANGED"),
    0x066: _R("CKR_KEY_NEEDED"),
    0x067: _R("CKR_KEY_INDIGESTIBLE", HsmOperationRefused, "the key cannot be digested (sensitive key)"),
    0x068: _R("CKR_KEY_FUNCTION_NOT_PERMITTED", HsmOperationRefused,
              "the key's usage attributes (CKA_ENCRYPT, CKA_SIGN, CKA_WRAP, CKA_DERIVE ...) forbid this operation"),
    0x069: _R("CKR_KEY_NOT_WRAPPABLE", HsmOperationRefused,
              "the token will not wrap this key with this mechanism (key type, or CKA_WRAP_WITH_TRUSTED)"),
    0x06A: _R("CKR_KEY_UNEXTRACTABLE", HsmOperationRefused,
              "the key is not extractable (CKA_EXTRACTABLE false): it can never be wrapped or exported"),
    0x070: _R("CKR_MECHANISM_INVALID", HsmMechanismUnsupported,
              "the token does not offer this mechanism for this operation: check the HSM profile's strategy"),
    0x071: _R("CKR_MECHANISM_PARAM_INVALID", HsmError,
              "the mechanism parameter (IV or derivation data) has the wrong length or layout"),
    0x082: _R("CKR_OBJECT_HANDLE_INVALID", HsmError, f"the object handle is not valid in this session: {_STALE}"),
    0x090: _R("CKR_OPERATION_ACTIVE", HsmError, "another operation is still active on this session"),
    0x091: _R("CKR_OPERATION_NOT_INITIALIZED"),
    0x0A0: _R("CKR_PIN_INCORRECT", HsmLoginFailed, "the token refused the user PIN: check the PIN file"),
    0x0A1: _R("CKR_PIN_INVALID", HsmLoginFailed, "the PIN contains characters the token does not accept"),
    0x0A2: _R("CKR_PIN_LEN_RANGE", HsmLoginFailed, "the PIN is too long or too short for this token"),
    0x0A3: _R("CKR_PIN_EXPIRED", HsmLoginFailed, "the user PIN has expired: the security officer must set a new one"),
    0x0A4: _R("CKR_PIN_LOCKED", HsmLoginFailed,
              "the user PIN is locked after too many wrong attempts: the security officer must reset it"),
    0x0B0: _R("CKR_SESSION_CLOSED", HsmUnavailable, "the session was closed during the call"),
    0x0B1: _R("CKR_SESSION_COUNT", HsmBusy, "the token has too many sessions open: retry, or run fewer workers"),
    0x0B3: _R("CKR_SESSION_HANDLE_INVALID", HsmUnavailable,
              "the session is no longer valid (module re-initialised, or a forked process uses its parent's)"),
    0x0B4: _R("CKR_SESSION_PARALLEL_NOT_SUPPORTED"),
    0x0B5: _R("CKR_SESSION_READ_ONLY", HsmOperationRefused, "the session is read-only"),
    0x0B6: _R("CKR_SESSION_EXISTS"),
    0x0B7: _R("CKR_SESSION_READ_ONLY_EXISTS"),
    0x0B8: _R("CKR_SESSION_READ_WRITE_SO_EXISTS", HsmBusy,
              "a security-officer session is open on the token: close it and retry"),
    0x0C0: _R("CKR_SIGNATURE_INVALID"),
    0x0C1: _R("CKR_SIGNATURE_LEN_RANGE"),
    0x0D0: _R("CKR_TEMPLATE_INCOMPLETE", HsmError,
              "the template lacks an attribute the token requires (e.g. CKA_VALUE_LEN to generate an AES key)"),
    0x0D1: _R("CKR_TEMPLATE_INCONSISTENT", HsmError,
              "the template's attributes contradict each other or what the mechanism sets"),
    0x0E0: _R("CKR_TOKEN_NOT_PRESENT", HsmUnavailable, "no token is present in the slot"),
    0x0E1: _R("CKR_TOKEN_NOT_RECOGNIZED", HsmUnavailable, "the module does not recognise the token in the slot"),
    0x0E2: _R("CKR_TOKEN_WRITE_PROTECTED", HsmOperationRefused, "the token is write-protected"),
    0x0F0: _R("CKR_UNWRAPPING_KEY_HANDLE_INVALID", HsmError, f"the unwrapping key's handle is not valid: {_STALE}"),
    0x0F1: _R("CKR_UNWRAPPING_KEY_SIZE_RANGE", HsmError, "the unwrapping key's length does not fit the mechanism"),
    0x0F2: _R("CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT", HsmOperationRefused,
              f"the unwrapping key's type does not fit the mechanism: {_UNWRAP_KEK}"),
    0x100: _R("CKR_USER_ALREADY_LOGGED_IN"),
    0x101: _R("CKR_USER_NOT_LOGGED_IN", HsmLoginFailed, "the session is not logged in"),
    0x102: _R("CKR_USER_PIN_NOT_INITIALIZED", HsmLoginFailed,
              "the token has no user PIN yet: initialise it (`tsm init` for the embedded token)"),
    0x103: _R("CKR_USER_TYPE_INVALID"),
    0x104: _R("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", HsmLoginFailed, "another user is logged in to the token"),
    0x105: _R("CKR_USER_TOO_MANY_TYPES", HsmLoginFailed),
    0x110: _R("CKR_WRAPPED_KEY_INVALID", HsmError, "the wrapped key does not unwrap (wrong KEK, or altered blob)"),
    0x112: _R("CKR_WRAPPED_KEY_LEN_RANGE", HsmError,
              "the wrapped key's length does not fit the mechanism (RFC 3394: a multiple of 8 bytes, at least 24)"),
    0x113: _R("CKR_WRAPPING_KEY_HANDLE_INVALID", HsmError, f"the wrapping key's handle is not valid: {_STALE}"),
    0x114: _R("CKR_WRAPPING_KEY_SIZE_RANGE", HsmError, "the wrapping key's length does not fit the mechanism"),
    0x115: _R("CKR_WRAPPING_KEY_TYPE_INCONSISTENT", HsmOperationRefused,
              f"the wrapping key's type does not fit the mechanism: {_WRAP_KEK}"),
    0x120: _R("CKR_RANDOM_SEED_NOT_SUPPORTED"),
    0x121: _R("CKR_RANDOM_NO_RNG", HsmMechanismUnsupported, "the token has no random number generator"),
    0x130: _R("CKR_DOMAIN_PARAMS_INVALID"),
    0x140: _R("CKR_CURVE_NOT_SUPPORTED", HsmMechanismUnsupported),
    0x150: _R("CKR_BUFFER_TOO_SMALL", HsmError, "the result is larger than the output buffer"),
    0x160: _R("CKR_SAVED_STATE_INVALID"),
    0x170: _R("CKR_INFORMATION_SENSITIVE"),
    0x180: _R("CKR_STATE_UNSAVEABLE"),
    0x190: _R("CKR_CRYPTOKI_NOT_INITIALIZED", HsmUnavailable, "the PKCS#11 module is not initialised in this process"),
    0x191: _R("CKR_CRYPTOKI_ALREADY_INITIALIZED"),
    0x1A0: _R("CKR_MUTEX_BAD"),
    0x1A1: _R("CKR_MUTEX_NOT_LOCKED"),
    0x1B0: _R("CKR_NEW_PIN_MODE"),
    0x1B1: _R("CKR_NEXT_OTP"),
    0x1B5: _R("CKR_EXCEEDED_MAX_ITERATIONS"),
    0x1B6: _R("CKR_FIPS_SELF_TEST_FAILED", HsmUnavailable, "the HSM's FIPS self-test failed"),
    0x1B7: _R("CKR_LIBRARY_LOAD_FAILED", HsmUnavailable, "the PKCS#11 module could not load a library it needs"),
    0x1B8: _R("CKR_PIN_TOO_WEAK", HsmLoginFailed),
    0x1B9: _R("CKR_PUBLIC_KEY_INVALID"),
    0x200: _R("CKR_FUNCTION_REJECTED", HsmOperationRefused, "the token rejected the request (policy)"),
}

BY_NAME: Final[dict[str, int]] = {rv.name: code for code, rv in CKR.items()}


def describe(rv: int) -> ReturnValue:
    """The table entry of `rv`; vendor-defined (§11.1: CKR_VENDOR_DEFINED and above) and unknown codes by value."""
    known = CKR.get(rv)
    if known is not None:
        return known
    if rv >= CKR_VENDOR_DEFINED:
        return ReturnValue(f"CKR_VENDOR_DEFINED+0x{rv - CKR_VENDOR_DEFINED:X}", HsmError,
                           "a vendor-defined code: see the HSM vendor's PKCS#11 documentation")
    return ReturnValue(f"CKR_0x{rv:08X}")


def error(rv: int, what: str) -> HsmError:
    """The key-service error for a failed call `what` (e.g. "C_WrapKey") that returned `rv`."""
    value = describe(rv)
    return value.error(f"PKCS#11 {what} failed", value.name, hint=value.hint)


# python-pkcs11 names its exception classes after the CKR codes in CamelCase (CKR_KEY_SIZE_RANGE: KeySizeRange)
# and raises them with empty messages; these six it spells otherwise.
_P11_SPELLING: Final[dict[str, int]] = {
    "FunctionCancelled": 0x050, "SlotIDInvalid": 0x003, "SessionReadWriteSOExists": 0x0B8,
    "TokenNotRecognised": 0x0E1, "AnotherUserAlreadyLoggedIn": 0x104, "RandomNoRNG": 0x121,
}
_BY_P11_CLASS: Final[dict[str, int]] = {
    **{"".join(word.capitalize() for word in rv.name[4:].split("_")): code for code, rv in CKR.items()},
    **_P11_SPELLING,
}


def name_of(exc: p11e.PKCS11Error) -> str:
    """The CKR name of a python-pkcs11 exception (its class name when it stands for no CKR code)."""
    code = _BY_P11_CLASS.get(type(exc).__name__)
    return type(exc).__name__ if code is None else describe(code).name


def from_exception(exc: p11e.PKCS11Error, what: str) -> HsmError:
    """The key-service error for a python-pkcs11 exception raised by `what`."""
    code = _BY_P11_CLASS.get(type(exc).__name__)
    if code is not None:
        return error(code, what)
    if isinstance(exc, p11e.NoSuchToken):
        return HsmUnavailable(f"PKCS#11 {what} failed: no such token", "NoSuchToken")
    detail = f": {exc}" if str(exc) else ""  # python-pkcs11's own messages (never a PIN or key)
    return HsmError(f"PKCS#11 {what} failed{detail}", type(exc).__name__)
