"""Key algorithms, lengths and the key type coding of GP key sets (GPCS 2.3.1 §11.1.8, Table 11-16).

`KeyAlgorithm` is the one list of the algorithms the product keeps keys for: 3DES and AES (GP key sets, receipt
and DAP keys), RSA key pairs (Delegated Management token keys and DAP keys, GPCS 2.3.1 §C.2, §C.4) and
HMAC-SHA256 generic secrets (the key service's own audit and record keys, never sent to a card).

Lengths are in bytes for the symmetric algorithms (3DES with its parity bits) and in bits (of the modulus)
for RSA, the unit each is usually named in (`KeyAlgorithm.unit`).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum, unique
from typing import Final

from globalplatform.errors import InvalidParameter


@unique
class KeyAlgorithm(StrEnum):
    """Algorithm of a key."""

    DES3 = "des3"
    """Two- or three-key triple DES (GP SCP02 keys: two-key, 16 bytes)."""
    AES = "aes"
    """AES-128/192/256 (GP SCP03 keys, Amd D §4)."""
    HMAC = "hmac"
    """A generic secret for HMAC-SHA256 (the key service's own keys; not a GP key type)."""
    RSA = "rsa"
    """An RSA key pair, public exponent 65537 (GPCS 2.3.1 §C.2 DAP, §C.4 DM tokens); the length is the
    modulus in bits. Only the public key (Table 11-16 'A1' modulus, 'A0' exponent) ever reaches a card."""

    @property
    def article(self) -> str:
        """"a" or "an" before the algorithm's name in a message ("an AES key", "an RSA key")."""
        return "an" if self in (KeyAlgorithm.AES, KeyAlgorithm.RSA) else "a"

    @property
    def label(self) -> str:
        """The name written in messages: 3DES, AES, HMAC, RSA."""
        return {KeyAlgorithm.DES3: "3DES", KeyAlgorithm.AES: "AES", KeyAlgorithm.HMAC: "HMAC",
                KeyAlgorithm.RSA: "RSA"}[self]

    @property
    def unit(self) -> str:
        """The unit of a key length of this algorithm: "bits" (RSA modulus) or "bytes"."""
        return "bits" if self is KeyAlgorithm.RSA else "bytes"

    @property
    def symmetric(self) -> bool:
        """True for secret keys (3DES, AES, HMAC), False for key pairs (RSA)."""
        return self is not KeyAlgorithm.RSA


VALID_LENGTHS: Final[dict[KeyAlgorithm, tuple[int, ...]]] = {
    KeyAlgorithm.DES3: (16, 24),
    KeyAlgorithm.AES: (16, 24, 32),
    KeyAlgorithm.HMAC: (32, 64),
    KeyAlgorithm.RSA: (1024, 2048, 3072, 4096),
}
"""Key lengths: bytes for 3DES (with its parity bits), AES and HMAC; modulus bits for RSA."""

BLOCK_SIZE: Final[dict[KeyAlgorithm, int]] = {KeyAlgorithm.DES3: 8, KeyAlgorithm.AES: 16}
"""Cipher block size in bytes of the block-cipher algorithms."""


@unique
class GpKeyType(IntEnum):
    """Key type coding of PUT KEY and key information (GPCS 2.3.1 Table 11-16)."""

    DES = 0x80
    """DES, mode implicitly known (3DES-ECB/CBC for SCP02 key sets)."""
    AES = 0x88
    """AES (Amd D §7.2.2)."""
    RSA_PUBLIC_EXPONENT = 0xA0
    """RSA public key: public exponent e component, in clear."""
    RSA_MODULUS = 0xA1
    """RSA public key: modulus N component, in clear."""


@unique
class ReservedKvn(IntEnum):
    """Key version numbers with a fixed meaning (GPCS 2.3.1 §11.1.8)."""

    TOKEN = 0x70
    """Token verification key of the ISD (Delegated Management tokens, §C.4): an RSA public key, key id 01."""
    RECEIPT = 0x71
    """Receipt generation key of the ISD (§C.5): AES or 3DES, key id 01."""
    DAP = 0x73
    """DAP verification key of an SD with DAP Verification (§C.2, §C.3): RSA public key, AES or 3DES."""


@unique
class KeyPurpose(IntEnum):
    """Key identifier within a GP key set (GPCS 2.3.1 §E.1.1, Amd D §6.1: 1 ENC, 2 MAC, 3 DEK)."""

    ENC = 1
    MAC = 2
    DEK = 3


def check_length(algorithm: KeyAlgorithm, length: int) -> None:
    """Refuse a key length the algorithm does not have."""
    allowed = VALID_LENGTHS[algorithm]
    if length not in allowed:
        sizes = ", ".join(str(n) for n in allowed)
        raise InvalidParameter(f"{algorithm.article} {algorithm.label} key is {sizes} {algorithm.unit} long, "
                               f"not {length}")

