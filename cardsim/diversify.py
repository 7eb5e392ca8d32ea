"""Card static keys from a master key and the key diversification data (KDD), as done at card production.

Methods: EMV CPG 2.1.2 (`emv`), VISA2 (`visa2`), VISA (`visa`), the AES template known from
GlobalPlatformPro (`kdf3`: CMAC(master, i || 00 00 00 || k || 00 || KDD), i = 1, 2), or none. The 3DES
templates are those of GlobalPlatformPro's `PlaintextKeys` (see docs/cardsim.md). The KDD is the first
10 bytes of the INITIALIZE UPDATE response.
"""

from __future__ import annotations

from enum import StrEnum, unique

from cardsim.keys import KeyId
from cardsim.primitives import aes_cmac, des3_ecb


@unique
class Diversification(StrEnum):
    """Key diversification methods a profile may name."""

    NONE = "none"
    EMV = "emv"
    VISA2 = "visa2"
    VISA = "visa"
    KDF3 = "kdf3"


def diversify(method: Diversification, master: bytes, kdd: bytes, key_id: KeyId) -> bytes:
    """The card's static key `key_id` (ENC=1, MAC=2, DEK=3) derived from `master`."""
    if method is Diversification.NONE:
        return master
    if method is Diversification.KDF3:
        blocks = (aes_cmac(master, bytes([i, 0, 0, 0, key_id, 0]) + kdd) for i in (1, 2))
        return b"".join(blocks)[: len(master)]
    if method is Diversification.EMV:
        half = kdd[4:10]
    elif method is Diversification.VISA2:
        half = kdd[0:2] + kdd[4:8]
    else:
        half = kdd[0:4] + kdd[8:10]
    return des3_ecb(master, half + bytes([0xF0, key_id]) + half + bytes([0x0F, key_id]))
