"""Key check values of inventory keys, by the inventory's method names.

DES3/AES keys use the GP-crypto implementation (`keyservice.gp.kcv`: GPCS 2.3.1 §B.6, Amd D §7.2.2,
X9.24-1 §A.3); HMAC keys (the audit key) are checked by HMAC-SHA256 over 16 zero bytes.
"""

from __future__ import annotations

from pkcs11.mechanisms import Mechanism

from keyservice.errors import InvalidInput
from keyservice.gp import kcv as gp_kcv
from keyservice.gp.hsmops import KeyAlgorithm
from keyservice.hsm import Hsm
from keyservice.inventory import Algorithm, KcvMethod


def compute(hsm: Hsm, handle: int, algorithm: Algorithm, method: KcvMethod, length: int = 3) -> str:
    """The KCV of the key behind `handle`, upper-case hex of `length` bytes."""
    if algorithm is Algorithm.HMAC:
        if method is not KcvMethod.HMAC:
            raise InvalidInput("an HMAC key has only the hmac KCV method")
        if length not in gp_kcv.KCV_LENGTHS:
            raise InvalidInput(f"a KCV is {sorted(gp_kcv.KCV_LENGTHS)} bytes long, not {length}")
        with hsm.lock:
            return hsm.raw.sign(handle, Mechanism.SHA256_HMAC, bytes(16))[:length].hex().upper()
    if method is KcvMethod.HMAC:
        raise InvalidInput(f"KCV method hmac does not apply to {algorithm} keys")
    value = gp_kcv.kcv(hsm, handle, KeyAlgorithm(algorithm.value), gp_kcv.KcvMethod(method.value), length)
    return value.hex().upper()
