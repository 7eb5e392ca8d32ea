"""Delegated Management tokens and receipts, and DAP signatures, on HSM handles (GPCS 2.3.1 §C.2-§C.5).

- Token (§C.4.1): RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) by the issuer's token key over P1 ‖ P2 ‖ Lc ‖ data, where
  data is the command's data field without the token (INSTALL, LOAD via INSTALL [for load]: without the token's
  length byte; DELETE: without the '9E' tag) and Lc its length on one byte. The hash is SHA-1 for a 1024-bit key
  and SHA-256 for a longer one (`signature_hash`); the card verifies with the public key it holds as KVN '70'.
- Receipt (§C.5): the card answers a token-authorised command with L ‖ Lr ‖ receipt ‖ confirmation data, where
  confirmation data = '02' ‖ confirmation counter (2) ‖ L ‖ card unique data (the CIN, else the KDD) [‖ optional
  fields], and receipt = MAC(receipt key, confirmation data ‖ receipt data): AES-CMAC (16 bytes) for an AES key,
  the full triple-DES MAC (ISO/IEC 9797-1 MAC algorithm 1, method-2 padding, 8 bytes; §B.1.2.1) for a 3DES one.
  Receipt data is command-specific (§C.5.1: LV of the load file AID and SD AID for LOAD, of the load file AID and
  application AID for INSTALL, of the AID for DELETE); the caller knows what it asked for.
- DAP (§C.2 RSA, §C.3 symmetric): over the Load File Data Block Hash, the RSA signature as for tokens, or the
  AES-CMAC / full 3DES MAC of the hash; the verifying SD holds the key as KVN '73'.

The private key signs inside the HSM (`rsa_sign` step, strategy `native_sign`); the MACs are C_Sign (AES_CMAC)
and C_Encrypt (DES3_CBC) with the key object in the HSM; receipts are compared in constant time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from pkcs11.mechanisms import Mechanism

from globalplatform.keys import KeyAlgorithm
from keyservice.errors import InvalidInput, MacMismatch
from keyservice.gp import hsmops, scp02
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

SHA1_MAX_BITS: Final = 1024
"""Keys up to this size sign with SHA-1, longer ones with SHA-256 (GPCS 2.3.1 §C.4.1, §C.2.1)."""
LC_MAX: Final = 0xFF
HASH_LENGTHS: Final = (20, 32, 48, 64)
"""SHA-1, SHA-256, SHA-384, SHA-512: the Load File Data Block Hash lengths INSTALL [for load] may carry."""
RECEIPT_LENGTH: Final = {KeyAlgorithm.AES: 16, KeyAlgorithm.DES3: 8}
COUNTER_LENGTH: Final = 2


@unique
class SignatureHash(IntEnum):
    """The PKCS#11 mechanism of each hash the GP RSA signatures use."""

    SHA1 = Mechanism.SHA1_RSA_PKCS
    SHA256 = Mechanism.SHA256_RSA_PKCS


def signature_hash(bits: int) -> SignatureHash:
    """The hash of a token or RSA DAP made with a key of `bits`: SHA-1 up to 1024 bits, SHA-256 above."""
    return SignatureHash.SHA1 if bits <= SHA1_MAX_BITS else SignatureHash.SHA256


def token_message(p1: int, p2: int, data: bytes) -> bytes:
    """P1 ‖ P2 ‖ Lc ‖ data, what a DM token signs (§C.4.1); InvalidInput for a data field longer than 255."""
    for name, value in (("P1", p1), ("P2", p2)):
        if not 0 <= value <= LC_MAX:
            raise InvalidInput(f"{name} {value} is not a byte")
    if len(data) > LC_MAX:
        raise InvalidInput(f"a token covers at most {LC_MAX} bytes of command data (one-byte Lc), not {len(data)}")
    return bytes([p1, p2, len(data)]) + data


def rsa_sign(hsm: Hsm, private_key: int, hash_: SignatureHash, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 of `message` by the private key object (the hash is computed by the HSM)."""
    hsm.strategy(CryptoStep.RSA_SIGN)
    with hsm.lock:
        return hsm.raw.sign(private_key, Mechanism(hash_.value), message)


def mac(hsm: Hsm, key: int, algorithm: KeyAlgorithm, data: bytes) -> bytes:
    """AES-CMAC (16 bytes) or the full 3DES MAC (8 bytes) of `data`: the receipt and symmetric DAP function."""
    if algorithm is KeyAlgorithm.AES:
        return hsmops.cmac(hsm, key, algorithm, data)
    if algorithm is KeyAlgorithm.DES3:
        return scp02.full_mac(hsm, key, data)
    raise InvalidInput(f"receipts and symmetric DAPs use AES or 3DES keys, not {algorithm.label}")


def check_hash(load_file_hash: bytes) -> bytes:
    """The Load File Data Block Hash, refused unless it is a SHA-1/256/384/512 digest."""
    if len(load_file_hash) not in HASH_LENGTHS:
        raise InvalidInput(f"a load file hash is {', '.join(map(str, HASH_LENGTHS))} bytes, not "
                           f"{len(load_file_hash)}")
    return load_file_hash


@dataclass(frozen=True)
class Confirmation:
    """The confirmation a card returned after a token-authorised command (§C.5), not yet verified."""

    receipt: bytes
    confirmation_data: bytes
    counter: int
    card_unique_data: bytes


def parse_confirmation(response_data: bytes) -> Confirmation:
    """L ‖ Lr ‖ receipt ‖ confirmation data (the response data without SW); InvalidInput when malformed or
    when the card returned no confirmation ('00')."""
    if response_data[:1] == b"\x00":
        raise InvalidInput("the card returned no confirmation ('00'): there is no receipt to verify")
    if len(response_data) < 2 or response_data[0] != len(response_data) - 1:
        raise InvalidInput("the confirmation's length byte does not match its data")
    receipt_end = 2 + response_data[1]
    receipt, data = response_data[2:receipt_end], response_data[receipt_end:]
    if len(data) < 2 + COUNTER_LENGTH or data[0] != COUNTER_LENGTH or len(data) < 4 + data[3]:
        raise InvalidInput("the confirmation data is not '02' ‖ counter ‖ L ‖ card unique data")
    return Confirmation(receipt, data, int.from_bytes(data[1:3], "big"), data[4:4 + data[3]])


def verify_receipt(hsm: Hsm, key: int, algorithm: KeyAlgorithm, confirmation: Confirmation,
                   receipt_data: bytes) -> None:
    """MacMismatch unless the receipt is the receipt key's MAC over confirmation data ‖ receipt data."""
    expected = mac(hsm, key, algorithm, confirmation.confirmation_data + receipt_data)
    if len(confirmation.receipt) != RECEIPT_LENGTH[algorithm] or not hsmops.same(expected, confirmation.receipt):
        raise MacMismatch("the card's receipt does not verify with the receipt key")
