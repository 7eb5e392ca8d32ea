"""Block-cipher primitives the card uses, in software (a card holds its keys in clear).

Everything here is a pure function over bytes. 3DES keys are accepted as 16 or 24 bytes and always expanded
to 24 bytes before use; single DES is 3DES with K1 = K2 = K3.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

DES_BLOCK: Final = 8
AES_BLOCK: Final = 16
_ZERO8: Final = bytes(DES_BLOCK)
_ZERO16: Final = bytes(AES_BLOCK)


def des3_key(key: bytes) -> bytes:
    """The 24-byte form of a 1-, 2- or 3-key DES key (8, 16 or 24 bytes)."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError("DES key must be 8, 16 or 24 bytes")


def _run(cipher: Cipher[modes.ECB] | Cipher[modes.CBC], data: bytes, encrypt: bool) -> bytes:
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def des3_ecb(key: bytes, data: bytes, *, encrypt: bool = True) -> bytes:
    """3DES-ECB (single DES when `key` is 8 bytes)."""
    return _run(Cipher(TripleDES(des3_key(key)), modes.ECB()), data, encrypt)  # noqa: S305 - GP mandates ECB


def des3_cbc(key: bytes, data: bytes, iv: bytes = _ZERO8, *, encrypt: bool = True) -> bytes:
    """3DES-CBC, IV zero unless given."""
    return _run(Cipher(TripleDES(des3_key(key)), modes.CBC(iv)), data, encrypt)


def aes_ecb(key: bytes, data: bytes, *, encrypt: bool = True) -> bytes:
    """AES-ECB (one block at a time in the protocols)."""
    return _run(Cipher(algorithms.AES(key), modes.ECB()), data, encrypt)  # noqa: S305 - GP mandates ECB


def aes_cbc(key: bytes, data: bytes, iv: bytes = _ZERO16, *, encrypt: bool = True) -> bytes:
    """AES-CBC, IV zero unless given."""
    return _run(Cipher(algorithms.AES(key), modes.CBC(iv)), data, encrypt)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B), 16 bytes."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def pad80(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: always append 80, then 00 up to a multiple of `block`."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def unpad80(data: bytes) -> bytes:
    """Remove ISO/IEC 9797-1 method 2 padding; `ValueError` when the padding is malformed."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise ValueError("bad ISO 9797-1 M2 padding")
    return stripped[:-1]


def des3_mac(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    """Full triple-DES MAC: ISO 9797-1 MAC algorithm 1 with 3DES-CBC, M2 padding (GPCS 2.3.1 B.1.2.1)."""
    return des3_cbc(key, pad80(data, DES_BLOCK), iv)[-DES_BLOCK:]


def retail_mac(key: bytes, data: bytes, iv: bytes = _ZERO8) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (single DES CBC, 3DES last block), M2 padding (GPCS 2.3.1 B.1.2.2)."""
    padded = pad80(data, DES_BLOCK)
    chain = iv
    if len(padded) > DES_BLOCK:
        chain = des3_cbc(key[:8], padded[:-DES_BLOCK], iv)[-DES_BLOCK:]
    last = bytes(a ^ b for a, b in zip(chain, padded[-DES_BLOCK:], strict=True))
    return des3_ecb(key, last)


def kcv(key: bytes, *, aes: bool) -> bytes:
    """3-byte key check value (GPCS 2.3.1 B.6; Amd D 7.2.2): AES over 16 x 01, 3DES over 8 x 00."""
    if aes:
        return aes_ecb(key, b"\x01" * AES_BLOCK)[:3]
    return des3_ecb(key, _ZERO8)[:3]


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison for MACs, cryptograms and check values."""
    return hmac.compare_digest(a, b)
