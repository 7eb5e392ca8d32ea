"""Key algorithms, lengths and the key type coding of GP key sets (GPCS 2.3.1 §11.1.8, Table 11-16).

`KeyAlgorithm` is the one list of the algorithms the product keeps keys for: 3DES and AES (GP key sets) and
HMAC-SHA256 generic secrets (the key service's own audit and record keys, never sent to a card).
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

    @property
    def article(self) -> str:
        """"a" or "an" before the algorithm's name in a message ("an AES key")."""
        return "an" if self is KeyAlgorithm.AES else "a"

    @property
    def label(self) -> str:
        """The name written in messages: 3DES, AES, HMAC."""
        return {KeyAlgorithm.DES3: "3DES", KeyAlgorithm.AES: "AES", KeyAlgorithm.HMAC: "HMAC"}[self]


VALID_LENGTHS: Final[dict[KeyAlgorithm, tuple[int, ...]]] = {
    KeyAlgorithm.DES3: (16, 24),
    KeyAlgorithm.AES: (16, 24, 32),
    KeyAlgorithm.HMAC: (32, 64),
}
"""Key lengths in bytes (3DES with its parity bits)."""

BLOCK_SIZE: Final[dict[KeyAlgorithm, int]] = {KeyAlgorithm.DES3: 8, KeyAlgorithm.AES: 16}
"""Cipher block size in bytes of the block-cipher algorithms."""


@unique
class GpKeyType(IntEnum):
    """Key type coding of PUT KEY and key information (GPCS 2.3.1 Table 11-16)."""

    DES = 0x80
    """DES, mode implicitly known (3DES-ECB/CBC for SCP02 key sets)."""
    AES = 0x88
    """AES (Amd D §7.2.2)."""


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
        raise InvalidParameter(f"{algorithm.article} {algorithm.label} key is {sizes} bytes long, not {length}")

