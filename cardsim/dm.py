"""Who may change card content, Delegated Management tokens and receipts (GPCS 2.3.1 9.1, C.4, C.5, 11.1.7).

- The ISD and SDs with Authorized Management change content without tokens.
- An SSD with Delegated Management needs a token on INSTALL / LOAD (via INSTALL [for load]) / DELETE /
  extradition, verified with the ISD's token key (KVN 70, key 01, RSA public key): RSASSA-PKCS1-v1_5 over
  P1 || P2 || L || data, where data is the command data before the token field and L its length (1 byte);
  SHA-1 for a 1024-bit token key, SHA-256 for longer keys.
- After a token-authorized operation the card returns confirmation data with a receipt computed with the
  ISD's receipt key (KVN 71, key 01): AES-CMAC (16 bytes) for an AES key, full 3DES MAC (8 bytes) for a DES
  key, over confirmation data || receipt data; the response is L || Lr || receipt || confirmation data with
  confirmation data = 02 || confirmation counter (2) || L || card unique data (the CIN, else the KDD).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cardsim.keys import KeyType, ReservedKvn
from cardsim.lifecycle import CardLifeCycle
from cardsim.primitives import aes_cmac, des3_mac
from cardsim.privileges import Privilege
from cardsim.sw import SW, ApduError

if TYPE_CHECKING:
    from cardsim.card import Card

NO_CONFIRMATION: Final = b"\x00"
TAG_CIN: Final = 0x45
RSA_1024_BYTES: Final = 128


def lv(value: bytes) -> bytes:
    """Length (1 byte) || value, as in receipt data."""
    return bytes([len(value)]) + value


def authorize(card: Card, p1: int, p2: int, signed_data: bytes, token: bytes) -> bool:
    """Check the selected SD may change card content; True when a DM token was verified (receipt due).

    6985 while the card is CARD_LOCKED/TERMINATED; 6982 for an SD without AM/DM or a bad token.
    """
    if card.life_cycle in (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "card locked")
    sd = card.selected
    if sd.aid == card.registry.isd_aid or sd.privileges & Privilege.AUTHORIZED_MANAGEMENT:
        return False
    if not sd.privileges & Privilege.DELEGATED_MANAGEMENT:
        raise ApduError(SW.SECURITY_STATUS, "SD has neither Authorized nor Delegated Management")
    verify_token(card, bytes([p1, p2, len(signed_data)]) + signed_data, token)
    return True


def verify_token(card: Card, message: bytes, token: bytes) -> None:
    """RSA PKCS#1 v1.5 verification with the ISD token key; 6982 when absent or wrong."""
    isd = card.registry.isd
    keyset = isd.sd.keysets.get(ReservedKvn.TOKEN) if isd.sd else None
    key = keyset.get(1) if keyset else None
    if not token or key is None or key.key_type is not KeyType.RSA_MODULUS:
        raise ApduError(SW.SECURITY_STATUS, "token missing or no token key")
    public = rsa.RSAPublicNumbers(int.from_bytes(key.exponent, "big"), int.from_bytes(key.value, "big"))
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if len(key.value) <= RSA_1024_BYTES else hashes.SHA256()  # noqa: S303
    try:
        public.public_key().verify(token, message, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError) as exc:
        raise ApduError(SW.SECURITY_STATUS, "token verification failed") from exc


def confirmation(card: Card, receipt_data: bytes | None) -> bytes:
    """Response data of a content-management command: 00, or confirmation data with a receipt."""
    isd = card.registry.isd
    keyset = isd.sd.keysets.get(ReservedKvn.RECEIPT) if isd.sd else None
    key = keyset.get(1) if keyset else None
    if receipt_data is None or key is None or not isd.privileges & Privilege.RECEIPT_GENERATION:
        return NO_CONFIRMATION
    card.confirmation_counter = (card.confirmation_counter + 1) & 0xFFFF
    unique = (isd.sd.data_objects.get(TAG_CIN) if isd.sd else None) or card.identity.kdd
    confirmation_data = b"\x02" + card.confirmation_counter.to_bytes(2, "big") + lv(unique)
    if key.key_type is KeyType.AES:
        receipt = aes_cmac(key.value, confirmation_data + receipt_data)
    else:
        receipt = des3_mac(key.value, confirmation_data + receipt_data)
    body = lv(receipt) + confirmation_data
    return lv(body)
