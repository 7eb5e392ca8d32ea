"""Service data sealed at rest with AES-GCM inside the HSM (NIST SP 800-38D), under a DATA_KEY.

A sealed value is nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes). The nonce is 96 random bits (SP 800-38D
§8.2.2, the RBG-based construction), so one key seals at most 2^32 values (§8.3) before it is replaced; the
caller's context (the service id) is the additional authenticated data, so a value sealed for one row does not
open for another. The HSM computes and checks the tag (strategy `native_aead`, CryptoStep `aes_gcm`); a value
that does not open raises UnsealFailed and releases nothing, whichever check failed.
"""

from __future__ import annotations

import secrets
from typing import Final

from keyservice.errors import InvalidInput, UnsealFailed
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

NONCE_LENGTH: Final = 12
TAG_LENGTH: Final = 16
DATA_MAX: Final = 4096
"""Plaintext and additional data are small records (card numbers, service ids); the raw call path's buffer is
8 KiB."""


def _check(plaintext_length: int, aad: bytes) -> None:
    if plaintext_length > DATA_MAX or len(aad) > DATA_MAX:
        raise InvalidInput(f"sealed data and its context are at most {DATA_MAX} bytes each")


def encrypt(hsm: Hsm, key: int, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """GCM-AE(K, IV, P, A) (SP 800-38D §7.1): ciphertext ‖ 128-bit tag."""
    hsm.strategy(CryptoStep.AES_GCM)
    if len(nonce) != NONCE_LENGTH:
        raise InvalidInput(f"the GCM nonce is {NONCE_LENGTH} bytes, not {len(nonce)}")
    _check(len(plaintext), aad)
    with hsm.lock:
        return hsm.raw.encrypt_gcm(key, nonce, aad, plaintext, 8 * TAG_LENGTH)


def decrypt(hsm: Hsm, key: int, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """GCM-AD(K, IV, C ‖ T, A) (SP 800-38D §7.2): the plaintext, or UnsealFailed when the tag does not verify."""
    hsm.strategy(CryptoStep.AES_GCM)
    if len(nonce) != NONCE_LENGTH or len(ciphertext) < TAG_LENGTH:
        raise UnsealFailed("the sealed value is too short to open")
    _check(len(ciphertext) - TAG_LENGTH, aad)
    with hsm.lock:
        plain = hsm.raw.decrypt_gcm(key, nonce, aad, ciphertext, 8 * TAG_LENGTH)
    if plain is None:
        raise UnsealFailed("the sealed value does not open under this key and context")
    return plain


def seal(hsm: Hsm, key: int, plaintext: bytes, context: bytes) -> bytes:
    """nonce ‖ ciphertext ‖ tag, with a fresh random nonce."""
    nonce = secrets.token_bytes(NONCE_LENGTH)
    return nonce + encrypt(hsm, key, nonce, plaintext, context)


def unseal(hsm: Hsm, key: int, sealed: bytes, context: bytes) -> bytes:
    """The plaintext of `seal`'s output for the same context (UnsealFailed otherwise)."""
    return decrypt(hsm, key, sealed[:NONCE_LENGTH], sealed[NONCE_LENGTH:], context)
