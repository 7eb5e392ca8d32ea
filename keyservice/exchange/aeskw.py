"""AES key wrap (RFC 3394) and key wrap with padding (RFC 5649) through C_WrapKey / C_UnwrapKey.

`AES_KEY_WRAP` implements RFC 3394 §2.2.1/§2.2.2 with the default IV A6A6A6A6A6A6A6A6 (§2.2.3.1);
`AES_KEY_WRAP_PAD` (0x210A on SoftHSM2 2.6) implements RFC 5649 §4.1/§4.2 with the alternative IV
A65959A6 || MLI. Unwrapped keys land directly as HSM objects (token objects when a label is given), sensitive
and never extractable: the key value is never in host memory. Any integrity failure (a flipped bit, a wrong
KEK, a bad length) is reported as UnwrapFailed without saying which check failed (RFC 3394 §2.2.3).
"""

from __future__ import annotations

from typing import Final

from pkcs11.mechanisms import KeyType, Mechanism

from keyservice import templates
from keyservice.errors import (
    HsmError,
    HsmLoginFailed,
    HsmUnavailable,
    InvalidInput,
    UnwrapFailed,
)
from keyservice.gp import hsmops
from keyservice.hsm import Hsm
from keyservice.p11raw import Template
from keyservice.strategy import NATIVE_WRAP, CryptoStep

SEMIBLOCK: Final = 8
KWP_AIV_PREFIX: Final = bytes.fromhex("A65959A6")  # RFC 5649 §3
MIN_KW_INPUT: Final = 16
KW_WRAPPED_MIN: Final = 24
KWP_WRAPPED_MIN: Final = 16


def mechanism(padding: bool) -> Mechanism:
    """RFC 5649 when `padding`, else RFC 3394."""
    return Mechanism.AES_KEY_WRAP_PAD if padding else Mechanism.AES_KEY_WRAP


def wrap_key(hsm: Hsm, kek: int, key: int, *, padding: bool, key_length: int | None = None,
             native_unaligned: bool | None = None) -> bytes:
    """Wrap the key object `key` under `kek` (the key must be CKA_EXTRACTABLE; it stays sensitive).

    SoftHSM2 2.6.1 defect: with AES_KEY_WRAP_PAD it zero-pads the key to a multiple of 8 bytes *before*
    wrapping, so the MLI holds the padded length and the blob is not RFC 5649 §4.1 for such keys (it unwraps
    correctly). The HSM profile's `aes_kwp_unaligned_wrap` strategy decides for such keys: `native_wrap`, or
    `host_memory_key_transit` (`_kwp_host_transit`). `native_unaligned` overrides the profile (KAT comparisons).
    """
    hsm.strategy(CryptoStep.AES_KW)
    if padding and key_length is not None and key_length % SEMIBLOCK:
        native = native_unaligned if native_unaligned is not None else \
            hsm.strategy(CryptoStep.AES_KWP_UNALIGNED_WRAP) == NATIVE_WRAP
        if not native:
            return _kwp_host_transit(hsm, kek, key, key_length)
    with hsm.lock:
        return hsm.raw.wrap(kek, mechanism(padding), key)


def _kwp_host_transit(hsm: Hsm, kek: int, key: int, key_length: int) -> bytes:
    """RFC 5649 §4.1 with the key value in host memory and every AES operation done by the KEK in the HSM.

    AIV = A65959A6 || MLI; P = key || zero padding. One block: E(K, AIV || P) (§4.1 step 2); otherwise the
    RFC 3394 §2.2.1 wrapping process W with A = AIV: 6n ECB encryptions B = E(K, A || R[i]),
    A = MSB64(B) xor t, R[i] = LSB64(B), t = n*j + i.
    """
    value = hsmops.clear_value(hsm, key, key_length)
    plain = value + bytes(-len(value) % SEMIBLOCK)
    del value
    aiv = KWP_AIV_PREFIX + key_length.to_bytes(4, "big")
    with hsm.lock:
        if len(plain) == SEMIBLOCK:
            return hsm.raw.encrypt(kek, Mechanism.AES_ECB, aiv + plain)
        a, r = aiv, [plain[i:i + SEMIBLOCK] for i in range(0, len(plain), SEMIBLOCK)]
        n = len(r)
        for j in range(6):
            for i in range(n):
                b = hsm.raw.encrypt(kek, Mechanism.AES_ECB, a + r[i])
                t = (n * j + i + 1).to_bytes(SEMIBLOCK, "big")
                a, r[i] = hsmops.xor(b[:SEMIBLOCK], t), b[SEMIBLOCK:]
    return a + b"".join(r)


def _check_wrapped(wrapped: bytes, padding: bool) -> None:
    minimum = KWP_WRAPPED_MIN if padding else KW_WRAPPED_MIN
    if len(wrapped) < minimum or len(wrapped) % SEMIBLOCK:
        raise UnwrapFailed("the wrapped key does not unwrap")


def unwrap_key(hsm: Hsm, kek: int, wrapped: bytes, *, padding: bool, key_type: KeyType,
               template: Template | None = None) -> int:
    """Unwrap into a new object (default: a sensitive, non-extractable session key of `key_type`).

    Pass `templates.master_key(label, ...)` as `template` for a token object (the inventory records it).
    """
    hsm.strategy(CryptoStep.AES_KW)
    _check_wrapped(wrapped, padding)
    tmpl = template if template is not None else templates.session_key(key_type)
    try:
        with hsm.lock:
            return hsm.raw.unwrap(kek, mechanism(padding), wrapped, tmpl)
    except (HsmUnavailable, HsmLoginFailed):
        raise
    except HsmError:
        raise UnwrapFailed("the wrapped key does not unwrap") from None


def unwrap_token_key(hsm: Hsm, kek: int, wrapped: bytes, *, padding: bool, label: str, cka_id: bytes,
                     key_type: KeyType, caps: frozenset[templates.Capability]) -> int:
    """Unwrap into a non-extractable token object labelled `label` (recorded in the handle cache)."""
    if not label:
        raise InvalidInput("a token key needs a label")
    handle = unwrap_key(hsm, kek, wrapped, padding=padding, key_type=key_type,
                        template=templates.master_key(label, cka_id, key_type, caps))
    hsm.adopt(label, handle)
    return handle
