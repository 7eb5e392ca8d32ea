"""Key check values computed inside the HSM on a key handle, by the methods of `globalplatform.kcv`
(GPCS 2.3.1 §B.6, Amd D §7.2.2, X9.24-1:2017 §A.3; HMAC-SHA256 over zeros for the key service's HMAC keys).
"""

from __future__ import annotations

from pkcs11.mechanisms import Mechanism

from globalplatform.kcv import DEFAULT_LENGTH, KcvFunction, KcvMethod, check_input, check_length
from globalplatform.keys import KeyAlgorithm
from keyservice.errors import KcvMismatch, gp_input
from keyservice.gp import hsmops
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep


def kcv(hsm: Hsm, key: int, algorithm: KeyAlgorithm, method: KcvMethod = KcvMethod.GP,
        length: int = DEFAULT_LENGTH) -> bytes:
    """The KCV of the key object `key` (never its value)."""
    hsm.strategy(CryptoStep.KCV)
    with gp_input():
        check_length(length)
        spec = check_input(algorithm, method)
    if spec.function is KcvFunction.HMAC:
        with hsm.lock:
            return hsm.raw.sign(key, Mechanism.SHA256_HMAC, spec.block)[:length]
    if spec.function is KcvFunction.CMAC:
        return hsmops.cmac(hsm, key, algorithm, spec.block)[:length]
    return hsmops.ecb(hsm, key, algorithm, spec.block)[:length]


def kcv_hex(hsm: Hsm, key: int, algorithm: KeyAlgorithm, method: KcvMethod = KcvMethod.GP,
            length: int = DEFAULT_LENGTH) -> str:
    """The KCV as upper-case hex (the inventory's form)."""
    return kcv(hsm, key, algorithm, method, length).hex().upper()


def check_kcv(hsm: Hsm, key: int, algorithm: KeyAlgorithm, expected: bytes,
              method: KcvMethod = KcvMethod.GP) -> None:
    """Raise KcvMismatch unless the key's KCV equals `expected` (constant-time)."""
    if not hsmops.same(kcv(hsm, key, algorithm, method, len(expected)), expected):
        raise KcvMismatch(f"the key's {method.value} KCV does not match the supplied one")
