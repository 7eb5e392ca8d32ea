"""HSM-side block-cipher building blocks shared by the GP and key-exchange modules.

Every function takes the process's `Hsm`, works on raw object handles and holds `hsm.lock` around its
PKCS#11 calls. Nothing here ever sees a key value: what crosses into host memory are ciphertexts of public
data (the CMAC subkey source L = E(K, 0^b), first-block CBC values) and MACs.

CMAC emulation (NIST SP 800-38B §6.2; PLATFORM.md): for a message M of n blocks,
CMAC(K, M) = E(K, C_{n-1} xor M_n'), where C_{n-1} is the CBC-MAC of the first n-1 blocks and M_n' the last
block xored with subkey K1 (complete) or padded with 80 00.. and xored with K2. The host computes the input
block X = C_{n-1} xor M_n'; `*_ECB_ENCRYPT_DATA` over X_1 || X_2 || ... then yields the *key object*
CMAC(K, M_1) || CMAC(K, M_2) || ... (truncated to CKA_VALUE_LEN), which covers the SP 800-108 counter-mode
KDFs of SCP03 (Amd D §6.2.2), GPPro's KDF3 and the TR-31 key-block key derivation (TR-31:2018 §A.2.2)
for every key length, without any multi-part or concatenate mechanism.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_unwrap_with_padding
from pkcs11.constants import Attribute
from pkcs11.mechanisms import KeyType, Mechanism

from globalplatform.keys import KeyAlgorithm
from keyservice import templates
from keyservice.hsm import Hsm
from keyservice.p11raw import Template


@unique
class Padding(IntEnum):
    """ISO/IEC 9797-1 method 2 padding bytes (GPCS 2.3.1 §B.4)."""

    MARKER = 0x80
    FILL = 0x00


@unique
class CmacRb(IntEnum):
    """The constant R_b of the CMAC subkey generation (SP 800-38B §5.3)."""

    BLOCK64 = 0x1B
    BLOCK128 = 0x87


@dataclass(frozen=True)
class Cipher:
    """Mechanisms of one block cipher as SoftHSM2 (and PKCS#11 v2.40) names them."""

    block: int
    ecb: Mechanism
    cbc: Mechanism
    ecb_derive: Mechanism
    cbc_derive: Mechanism
    cmac: Mechanism
    rb: int


CIPHERS: Final[dict[KeyAlgorithm, Cipher]] = {
    KeyAlgorithm.AES: Cipher(16, Mechanism.AES_ECB, Mechanism.AES_CBC, Mechanism.AES_ECB_ENCRYPT_DATA,
                             Mechanism.AES_CBC_ENCRYPT_DATA, Mechanism.AES_CMAC, CmacRb.BLOCK128),
    KeyAlgorithm.DES3: Cipher(8, Mechanism.DES3_ECB, Mechanism.DES3_CBC, Mechanism.DES3_ECB_ENCRYPT_DATA,
                              Mechanism.DES3_CBC_ENCRYPT_DATA, Mechanism.DES3_CMAC, CmacRb.BLOCK64),
}

@functools.lru_cache(maxsize=32)
def session_template(algorithm: KeyAlgorithm, length: int, *, wrappable: bool = False) -> Template:
    """Template of a derived session object (AES needs CKA_VALUE_LEN, DES refuses it)."""
    ktype = templates.key_type(algorithm, length)
    size = length if algorithm is KeyAlgorithm.AES else None
    if wrappable:
        return templates.wrappable_session_key(ktype, size)
    return templates.session_key(ktype, size)


def xor(a: bytes, b: bytes) -> bytes:
    """Bytewise xor of two equally long strings."""
    if len(a) != len(b):
        raise ValueError("xor of strings of different lengths")
    return (int.from_bytes(a) ^ int.from_bytes(b)).to_bytes(len(a))


def pad80(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 method 2: 80 then 00 up to a block multiple (always adds at least one byte)."""
    fill = block - 1 - len(data) % block
    return data + bytes([Padding.MARKER]) + bytes(fill)


def unpad80(data: bytes) -> bytes | None:
    """Remove method-2 padding; None when the padding is malformed."""
    stripped = data.rstrip(bytes([Padding.FILL]))
    if not stripped or stripped[-1] != Padding.MARKER or len(data) - len(stripped) >= 16:
        return None
    return stripped[:-1]


def same(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of MACs and cryptograms."""
    return hmac.compare_digest(a, b)


# ---- single calls ----------------------------------------------------------------------------------------

def ecb(hsm: Hsm, key: int, algorithm: KeyAlgorithm, data: bytes) -> bytes:
    """E(K, data) in ECB mode inside the HSM."""
    with hsm.lock:
        return hsm.raw.encrypt(key, CIPHERS[algorithm].ecb, data)


def cbc(hsm: Hsm, key: int, algorithm: KeyAlgorithm, data: bytes, iv: bytes) -> bytes:
    """CBC encryption inside the HSM (no padding: `data` is a block multiple)."""
    with hsm.lock:
        return hsm.raw.encrypt(key, CIPHERS[algorithm].cbc, data, iv)


def cbc_decrypt(hsm: Hsm, key: int, algorithm: KeyAlgorithm, data: bytes, iv: bytes) -> bytes:
    """CBC decryption inside the HSM (of data, never of keys)."""
    with hsm.lock:
        return hsm.raw.decrypt(key, CIPHERS[algorithm].cbc, data, iv)


def cmac(hsm: Hsm, key: int, algorithm: KeyAlgorithm, data: bytes) -> bytes:
    """The full CMAC tag (SP 800-38B) computed by the HSM's *_CMAC mechanism."""
    with hsm.lock:
        return hsm.raw.sign(key, CIPHERS[algorithm].cmac, data)


def destroy(hsm: Hsm, *handles: int | None) -> None:
    """Destroy session objects (ignoring None)."""
    with hsm.lock:
        for handle in handles:
            if handle is not None:
                hsm.raw.destroy(handle)


# ---- CMAC emulation ---------------------------------------------------------------------------------------

def _double(block: bytes, rb: int) -> bytes:
    """Multiplication by x in GF(2^b) (SP 800-38B §5.3 step 2/3)."""
    value = int.from_bytes(block, "big") << 1
    if block[0] & Padding.MARKER:
        value ^= rb
    return (value & ((1 << (8 * len(block))) - 1)).to_bytes(len(block), "big")


def cmac_inputs(hsm: Hsm, key: int, algorithm: KeyAlgorithm, messages: Sequence[bytes]) -> list[bytes]:
    """For each message M_i the block X_i with CMAC(K, M_i) = E(K, X_i).

    One ECB call computes L and the first blocks of every message of at most two blocks; longer messages
    take one extra CBC call each. L of a static key (a per-process copy of a token key, `Hsm.hot_handle`) is
    kept by the session (`Hsm.static_l`), so one-block messages under a master key need no call at all.
    """
    cipher = CIPHERS[algorithm]
    bsz = cipher.block
    firsts = b"".join(m[:bsz] for m in messages if bsz < len(m) <= 2 * bsz)
    with hsm.lock:
        known = hsm.static_l.get(key)
        if known is not None and not firsts:
            out = known
        else:
            out = hsm.raw.encrypt(key, cipher.ecb, bytes(bsz) + firsts)
            if hsm.is_static(key):
                hsm.static_l[key] = out[:bsz]
        k1 = _double(out[:bsz], cipher.rb)
        k2 = _double(k1, cipher.rb)
        pos = bsz
        result: list[bytes] = []
        for m in messages:
            nblocks = max(1, -(-len(m) // bsz))
            head_len = (nblocks - 1) * bsz
            if nblocks == 1:
                chain = bytes(bsz)
            elif nblocks == 2:
                chain, pos = out[pos: pos + bsz], pos + bsz
            else:
                chain = hsm.raw.encrypt(key, cipher.cbc, m[:head_len], bytes(bsz))[-bsz:]
            last = m[head_len:]
            last_block = xor(last, k1) if len(last) == bsz else xor(pad80(last, bsz), k2)
            result.append(xor(chain, last_block))
    return result


def cmac_derive(hsm: Hsm, key: int, algorithm: KeyAlgorithm, messages: Sequence[bytes],
                template: Template) -> int:
    """A new session object whose value is CMAC(K, M_1) || CMAC(K, M_2) || ... (truncated by the template)."""
    inputs = cmac_inputs(hsm, key, algorithm, messages)
    with hsm.lock:
        return hsm.raw.derive_encrypt_data(key, CIPHERS[algorithm].ecb_derive, b"".join(inputs), None, template)


EPHEMERAL_LENGTH: Final = 16
SEMIBLOCK: Final = 8


def clear_value(hsm: Hsm, key: int, length: int | None = None) -> bytes:
    """The value of an extractable (wrappable) key: the host-memory strategy of strategy.py
    (`host_memory_card_key`, `host_memory_key_transit`) for HSMs without 3DES wrap or key-block mechanisms.

    A one-time transport key made on the host becomes a session object; the HSM wraps the key under it
    (AES_KEY_WRAP, RFC 3394; AES_KEY_WRAP_PAD for a `length` that is not a multiple of 8, whose padding
    SoftHSM2 counts in the MLI, hence the trim) and the host unwraps. The result must be dropped as soon as it
    is used; non-extractable keys are refused by the token.
    """
    transport = secrets.token_bytes(EPHEMERAL_LENGTH)
    padded = length is not None and length % SEMIBLOCK != 0
    with hsm.lock:
        eph = hsm.raw.create({**templates.session_key(KeyType.AES), Attribute.VALUE: transport})
        try:
            wrapped = hsm.raw.wrap(eph, Mechanism.AES_KEY_WRAP_PAD if padded else Mechanism.AES_KEY_WRAP, key)
        finally:
            hsm.raw.destroy(eph)
    if padded:
        return aes_key_unwrap_with_padding(transport, wrapped)[:length]
    return aes_key_unwrap(transport, wrapped)
