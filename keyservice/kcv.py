"""Key check values computed inside the HSM (GPCS 2.3.1 §B.6 / Amd D §7.2.2, X9.24-1 §A.3)."""

from __future__ import annotations

from typing import Final

from pkcs11.mechanisms import Mechanism

from keyservice.errors import InvalidInput
from keyservice.hsm import Hsm
from keyservice.inventory import Algorithm, KcvMethod

KCV_LENGTHS: Final = frozenset({2, 3, 5})


def compute(hsm: Hsm, handle: int, algorithm: Algorithm, method: KcvMethod, length: int = 3) -> str:
    """The KCV of the key behind `handle`, upper-case hex of `length` bytes."""
    if length not in KCV_LENGTHS:
        raise InvalidInput(f"a KCV is 2, 3 or 5 bytes, not {length}")
    with hsm.lock:
        if algorithm is Algorithm.DES3:
            if method is not KcvMethod.GP:
                raise InvalidInput(f"KCV method {method} applies to AES keys only")
            out = hsm.raw.encrypt(handle, Mechanism.DES3_ECB, bytes(8))
        elif algorithm is Algorithm.HMAC:
            if method is not KcvMethod.HMAC:
                raise InvalidInput("an HMAC key has only the hmac KCV method")
            out = hsm.raw.sign(handle, Mechanism.SHA256_HMAC, bytes(16))
        elif method is KcvMethod.GP:
            out = hsm.raw.encrypt(handle, Mechanism.AES_ECB, b"\x01" * 16)
        elif method is KcvMethod.AES_ZERO:
            out = hsm.raw.encrypt(handle, Mechanism.AES_ECB, bytes(16))
        elif method is KcvMethod.AES_CMAC:
            out = hsm.raw.sign(handle, Mechanism.AES_CMAC, bytes(16))
        else:
            raise InvalidInput(f"KCV method {method} does not apply to AES keys")
    return out[:length].hex().upper()
