"""Key check values computed inside the HSM on a key handle, by the methods of `globalplatform.kcv`
(GPCS 2.3.1 §B.6, Amd D §7.2.2, X9.24-1:2017 §A.3; HMAC-SHA256 over zeros for the key service's HMAC keys).
An RSA pair's check value is the SHA-256 fingerprint of its public key (`spki_sha256`), computed on the host
from the public key object's modulus and exponent: public values, nothing secret is read.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pkcs11.constants import Attribute
from pkcs11.mechanisms import Mechanism

from globalplatform.kcv import DEFAULT_LENGTH, KcvFunction, KcvMethod, check_input, check_length
from globalplatform.keys import KeyAlgorithm
from keyservice.errors import HsmError, KcvMismatch, gp_input
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
    if spec.function is KcvFunction.SPKI_SHA256:
        return spki_sha256(hsm, key)[:length]
    if spec.function is KcvFunction.HMAC:
        with hsm.lock:
            return hsm.raw.sign(key, Mechanism.SHA256_HMAC, spec.block)[:length]
    if spec.function is KcvFunction.CMAC:
        return hsmops.cmac(hsm, key, algorithm, spec.block)[:length]
    return hsmops.ecb(hsm, key, algorithm, spec.block)[:length]


def spki_sha256(hsm: Hsm, key: int) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7, RFC 8017 A.1.1) of an RSA key object."""
    with hsm.lock:
        modulus = hsm.raw.get_bytes(key, Attribute.MODULUS)
        exponent = hsm.raw.get_bytes(key, Attribute.PUBLIC_EXPONENT)
    if not modulus or not exponent:
        raise HsmError("the RSA key object has no modulus or public exponent")
    public = rsa.RSAPublicNumbers(int.from_bytes(exponent, "big"), int.from_bytes(modulus, "big")).public_key()
    return hashlib.sha256(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()


def kcv_hex(hsm: Hsm, key: int, algorithm: KeyAlgorithm, method: KcvMethod = KcvMethod.GP,
            length: int = DEFAULT_LENGTH) -> str:
    """The KCV as upper-case hex (the inventory's form)."""
    return kcv(hsm, key, algorithm, method, length).hex().upper()


def check_kcv(hsm: Hsm, key: int, algorithm: KeyAlgorithm, expected: bytes,
              method: KcvMethod = KcvMethod.GP) -> None:
    """Raise KcvMismatch unless the key's KCV equals `expected` (constant-time)."""
    if not hsmops.same(kcv(hsm, key, algorithm, method, len(expected)), expected):
        raise KcvMismatch(f"the key's {method.value} KCV does not match the supplied one")
