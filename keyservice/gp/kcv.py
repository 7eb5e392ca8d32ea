"""Key check values computed inside the HSM on a key handle.

Methods (KAT-FORMAT.md `kcv`):
- `gp`: 3DES-ECB over 8 zero bytes (GPCS 2.3.1 §B.6; the payment "legacy" TDES KCV), AES-ECB over 16 bytes
  of 0x01 (GPCS 2.3.1 Amd D §7.2.2);
- `aes_zero`: AES-ECB over 16 zero bytes (vendor usage);
- `aes_cmac`: AES-CMAC over 16 zero bytes (X9.24-1:2017 §A.3, TR-31:2018).
A KCV is the leftmost 2, 3 or 5 bytes.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum, unique
from typing import Final

from keyservice.errors import InvalidInput, KcvMismatch
from keyservice.gp import hsmops
from keyservice.gp.hsmops import KeyAlgorithm
from keyservice.hsm import Hsm


@unique
class KcvMethod(StrEnum):
    """How the check value is computed."""

    GP = "gp"
    AES_ZERO = "aes_zero"
    AES_CMAC = "aes_cmac"


@unique
class KcvFill(IntEnum):
    """The byte the check block is filled with (GPCS 2.3.1 §B.6, Amd D §7.2.2)."""

    ZERO = 0x00
    AES_GP = 0x01


KCV_LENGTHS: Final = frozenset({2, 3, 5})
DEFAULT_LENGTH: Final = 3


def kcv(hsm: Hsm, key: int, algorithm: KeyAlgorithm, method: KcvMethod = KcvMethod.GP,
        length: int = DEFAULT_LENGTH) -> bytes:
    """The KCV of the key object `key` (never its value)."""
    if length not in KCV_LENGTHS:
        raise InvalidInput(f"a KCV is {sorted(KCV_LENGTHS)} bytes long, not {length}")
    block = hsmops.CIPHERS[algorithm].block
    if method is KcvMethod.GP:
        fill = KcvFill.AES_GP if algorithm is KeyAlgorithm.AES else KcvFill.ZERO
        return hsmops.ecb(hsm, key, algorithm, bytes([fill]) * block)[:length]
    if algorithm is not KeyAlgorithm.AES:
        raise InvalidInput(f"KCV method {method.value} applies to AES keys only")
    if method is KcvMethod.AES_ZERO:
        return hsmops.ecb(hsm, key, algorithm, bytes(block))[:length]
    return hsmops.cmac(hsm, key, algorithm, bytes(block))[:length]


def check_kcv(hsm: Hsm, key: int, algorithm: KeyAlgorithm, expected: bytes,
              method: KcvMethod = KcvMethod.GP) -> None:
    """Raise KcvMismatch unless the key's KCV equals `expected` (constant-time)."""
    if not hsmops.same(kcv(hsm, key, algorithm, method, len(expected)), expected):
        raise KcvMismatch(f"the key's {method.value} KCV does not match the supplied one")
