"""Every PKCS#11 attribute template the key service uses, in one module (cf. python-pkcs11 `defaults`).

These are choices, not spec: master keys are token objects that are private, sensitive and never
extractable; derived session keys are session objects, also sensitive and non-extractable; an RSA key pair
(DM token and DAP keys) is a private key that signs and nothing else, never extractable, and its public key
that verifies, both token objects sharing label and CKA_ID. A test asserts each template
(tests/keyservice/test_templates.py).
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final

from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import KeyType

from globalplatform.keys import KeyAlgorithm, check_length
from keyservice.errors import InvalidInput
from keyservice.p11raw import Template

DES2_LENGTH: Final = 16
RSA_PUBLIC_EXPONENT: Final = (65537).to_bytes(3, "big")
"""F4, the public exponent of every key pair the key service generates."""


@unique
class Capability(StrEnum):
    """What a key may be used for on the token (maps onto CKA_ENCRYPT, CKA_SIGN, ...)."""

    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    SIGN = "sign"
    VERIFY = "verify"
    DERIVE = "derive"
    WRAP = "wrap"
    UNWRAP = "unwrap"


_CAP_ATTR: Final[dict[Capability, Attribute]] = {
    Capability.ENCRYPT: Attribute.ENCRYPT,
    Capability.DECRYPT: Attribute.DECRYPT,
    Capability.SIGN: Attribute.SIGN,
    Capability.VERIFY: Attribute.VERIFY,
    Capability.DERIVE: Attribute.DERIVE,
    Capability.WRAP: Attribute.WRAP,
    Capability.UNWRAP: Attribute.UNWRAP,
}

ALL_CAPABILITIES: Final = frozenset(Capability)


def key_type(algorithm: KeyAlgorithm, length: int) -> KeyType:
    """The PKCS#11 key type of a key of `length` bytes: a 16-byte 3DES key is CKK_DES2 (two-key), a 24-byte one
    CKK_DES3; generic secrets carry HMAC keys. RSA keys are pairs (`rsa_key_pair`), never secret-key objects."""
    if algorithm is KeyAlgorithm.RSA:
        raise InvalidInput("an RSA key is a key pair generated in the HSM (tsm keys generate --type rsa); it is "
                           "never created from a value, imported or unwrapped as a secret key")
    check_length(algorithm, length)
    if algorithm is KeyAlgorithm.AES:
        return KeyType.AES
    if algorithm is KeyAlgorithm.HMAC:
        return KeyType.GENERIC_SECRET
    return KeyType.DES2 if length == DES2_LENGTH else KeyType.DES3


def _capabilities(caps: frozenset[Capability]) -> dict[Attribute, bool]:
    return {attr: cap in caps for cap, attr in _CAP_ATTR.items()}


def master_key(label: str, cka_id: bytes, key_type: KeyType, caps: frozenset[Capability],
               exportable: bool = False) -> Template:
    """A long-lived token key: private, sensitive, never extractable.

    `exportable` keys (created so, for SE vendors) are extractable but still sensitive: they leave the HSM
    only wrapped (C_WrapKey under a KEK), never in clear.

    CKA_MODIFIABLE stays true: SoftHSM2 refuses C_CopyObject of a non-modifiable key even when only
    CKA_TOKEN changes, and the per-process session copy needs it. `tsm keys check` compares the usage
    flags on the token with this template, so a changed flag is reported.
    """
    return {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: key_type,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: exportable,
        Attribute.LABEL: label,
        Attribute.ID: cka_id,
        **_capabilities(caps),
    }


def rsa_key_pair(label: str, cka_id: bytes, bits: int) -> tuple[Template, Template]:
    """(public, private) templates of a token RSA key pair (PKCS#11 v2.40 §2.1.4 CKM_RSA_PKCS_KEY_PAIR_GEN).

    The private key signs and nothing else (no decrypt, unwrap, derive, sign-recover), is sensitive and never
    extractable; the public key verifies only. Both are token objects with the same label and CKA_ID. The
    private key is modifiable like secret master keys; `tsm keys check` compares its flags with this template.
    """
    common: Template = {Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True, Attribute.LABEL: label,
                        Attribute.ID: cka_id}
    public: Template = {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY, **common, Attribute.PRIVATE: False,
        Attribute.MODULUS_BITS: bits, Attribute.PUBLIC_EXPONENT: RSA_PUBLIC_EXPONENT,
        Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False, Attribute.VERIFY_RECOVER: False,
        Attribute.DERIVE: False,
    }
    private: Template = {
        Attribute.CLASS: ObjectClass.PRIVATE_KEY, **common, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.UNWRAP: False,
        Attribute.SIGN_RECOVER: False, Attribute.DERIVE: False,
    }
    return public, private


def rsa_test_private_key(components: dict[Attribute, bytes]) -> Template:
    """A session RSA private key from published components (KAT runner: the vector's key), signing only."""
    return {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: False,
            Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
            **components}


def session_copy() -> Template:
    """Attributes changed when a token key is copied into a per-process session object (PLATFORM.md)."""
    return {Attribute.TOKEN: False}


def session_key(key_type: KeyType, length: int | None = None,
                caps: frozenset[Capability] = ALL_CAPABILITIES) -> Template:
    """A derived key (card static key, session key): a session object, sensitive, not extractable.

    AES and generic keys need CKA_VALUE_LEN (`length` in bytes); SoftHSM2 refuses it for DES keys.
    """
    sized: dict[Attribute, int] = {} if length is None else {Attribute.VALUE_LEN: length}
    return {
        **sized,
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: key_type,
        Attribute.TOKEN: False,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        **_capabilities(caps),
    }


def data_object(label: str, application: str) -> Template:
    """A private token data object (the audit head anchor, the test-token marker); no secret value."""
    return {
        Attribute.CLASS: ObjectClass.DATA,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.LABEL: label,
        Attribute.APPLICATION: application,
        Attribute.VALUE: b"",
    }


def wrappable_session_key(key_type: KeyType, length: int | None = None) -> Template:
    """A derived session key that may leave the HSM only wrapped under a DEK (PUT KEY of card keys).

    Sensitive (CKA_VALUE never readable); CKA_EXTRACTABLE is true because C_WrapKey requires it
    (PKCS#11 v2.40 §4.9). Used for session-class card keys diversified from a KMC, never for master keys.
    """
    return {**session_key(key_type, length), Attribute.EXTRACTABLE: True}


def test_session_key(key_type: KeyType, value: bytes, *, wrappable: bool) -> Template:
    """A session key created from a clear value on a test token (KAT runner: keys a vector wraps)."""
    base = wrappable_session_key(key_type) if wrappable else session_key(key_type)
    return {**base, Attribute.VALUE: value}
