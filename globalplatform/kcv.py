"""Key check value methods (GPCS 2.3.1 §B.6; Amd D §7.2.2; X9.24-1:2017 §A.3).

- `gp`: 3DES-ECB over 8 zero bytes (GPCS 2.3.1 §B.6; the payment "legacy" TDES KCV); AES-ECB over 16 bytes
  of 0x01 (Amd D §7.2.2);
- `aes_zero`: AES-ECB over 16 zero bytes (vendor usage);
- `aes_cmac`: AES-CMAC over 16 zero bytes (X9.24-1:2017 §A.3, TR-31:2018);
- `hmac`: HMAC-SHA256 over 16 zero bytes (the key service's HMAC keys; not a GP method);
- `spki_sha256`: for RSA key pairs, SHA-256 of the public key's DER SubjectPublicKeyInfo (RFC 5280 §4.1), the
  fingerprint `openssl pkey -pubin -outform DER | sha256sum` prints. GP defines no check value for RSA keys
  (PUT KEY sends them with an empty one, GPCS 2.3.1 §11.8.2.3); this one names the pair in the inventory.
A KCV is the leftmost 2, 3 or 5 bytes. `check_input` says what to compute; the key service computes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum, unique
from typing import Final

from globalplatform.errors import InvalidParameter
from globalplatform.keys import BLOCK_SIZE, KeyAlgorithm


@unique
class KcvMethod(StrEnum):
    """How the check value is computed."""

    GP = "gp"
    AES_ZERO = "aes_zero"
    AES_CMAC = "aes_cmac"
    HMAC = "hmac"
    SPKI_SHA256 = "spki_sha256"


@unique
class KcvFill(IntEnum):
    """The byte the check block is filled with (GPCS 2.3.1 §B.6, Amd D §7.2.2)."""

    ZERO = 0x00
    AES_GP = 0x01


@unique
class KcvFunction(StrEnum):
    """The keyed function applied to the check block."""

    ECB = "ecb"
    CMAC = "cmac"
    HMAC = "hmac"
    SPKI_SHA256 = "spki_sha256"
    """No keyed function: SHA-256 over the public key (RSA)."""


KCV_LENGTHS: Final = (2, 3, 5)
DEFAULT_LENGTH: Final = 3
HMAC_CHECK_BLOCK: Final = 16


@dataclass(frozen=True)
class KcvInput:
    """What to compute for a KCV: the function and the block it runs over."""

    function: KcvFunction
    block: bytes


def check_length(length: int) -> None:
    """Refuse a KCV length other than 2, 3 or 5 bytes."""
    if length not in KCV_LENGTHS:
        raise InvalidParameter(f"a KCV is 2, 3 or 5 bytes long, not {length}")


def default_method(algorithm: KeyAlgorithm) -> KcvMethod:
    """The GP method for 3DES/AES keys; HMAC keys have only the HMAC method, RSA pairs only the fingerprint."""
    return {KeyAlgorithm.HMAC: KcvMethod.HMAC, KeyAlgorithm.RSA: KcvMethod.SPKI_SHA256}.get(algorithm, KcvMethod.GP)


def check_input(algorithm: KeyAlgorithm, method: KcvMethod) -> KcvInput:
    """The function and check block of `method` for a key of `algorithm` (InvalidParameter if it does not apply)."""
    for only, only_input in ((KeyAlgorithm.HMAC, KcvInput(KcvFunction.HMAC, bytes(HMAC_CHECK_BLOCK))),
                             (KeyAlgorithm.RSA, KcvInput(KcvFunction.SPKI_SHA256, b""))):
        if algorithm is only or method is default_method(only):
            if algorithm is not only or method is not default_method(only):
                raise InvalidParameter(f"KCV method {method.value} does not apply to {algorithm.article} "
                                       f"{algorithm.label} key")
            return only_input
    block = BLOCK_SIZE[algorithm]
    if method is KcvMethod.GP:
        fill = KcvFill.AES_GP if algorithm is KeyAlgorithm.AES else KcvFill.ZERO
        return KcvInput(KcvFunction.ECB, bytes([fill]) * block)
    if algorithm is not KeyAlgorithm.AES:
        raise InvalidParameter(f"KCV method {method.value} applies to AES keys only")
    return KcvInput(KcvFunction.ECB if method is KcvMethod.AES_ZERO else KcvFunction.CMAC, bytes(block))
