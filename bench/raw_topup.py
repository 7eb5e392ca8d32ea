"""The leanest top-up dialog a host can drive: the baseline every ratio of bench/lifecycle.py is measured against.

Independent of the product's code: a minimal host in pure `cryptography` (no HSM, no database, no audit) sends the
commands the job engine sends for a top-up of cardsim's transit purse (docs/cardsim.md, "Transit purse"): SELECT
of the ISD and GET DATA 'CF' (the card's key diversification data, GPCS 2.3.1 §H.2: the card must be the SE
expected), SELECT of the purse, GET BALANCE (its top-up counter), and TOP UP with the first 8 bytes of the
AES-CMAC (NIST SP 800-38B) of 52 || len(AID) || AID || counter || amount under the SE's application key: the KDF3
'MAC' key of the app's master for the card's KDD (keyservice/gp/appkey.py), derived per top-up as the key service
derives it in the HSM.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from raw_provisioning import Card, Host, Refused, cmac, kdf3

KDD_TAG: Final = 0xCF
MAC_KEY: Final = 2
"""KDF3 key identifier of the per-SE application key ('MAC')."""
MAC_LENGTH: Final = 8


@dataclass(frozen=True)
class Purse:
    """What is the same for every top-up: the ISD's and the purse's AIDs and the app's master key."""

    isd_aid: bytes
    purse_aid: bytes
    master: bytes


def _select(aid: bytes) -> bytes:
    return b"\x00\xa4\x04\x00" + bytes([len(aid)]) + aid + b"\x00"


def _purse_state(host: Host, purse: Purse) -> bytes:
    """SELECT of the purse, GET BALANCE: balance (4) || maximum balance (4) || top-up counter (2) || currency (2)."""
    host.plain(_select(purse.purse_aid))
    return host.plain(b"\x80\x5c\x00\x00\x00")


def balance(card: Card, purse: Purse) -> int:
    """The purse's balance, as the card answers GET BALANCE."""
    card.power_on()
    return int.from_bytes(_purse_state(Host(card), purse)[0:4], "big")


def top_up(card: Card, purse: Purse, kdd: bytes, amount: int) -> tuple[int, int]:
    """Credit `amount` to the purse of the card whose KDD is `kdd`; its (balance, counter) afterwards."""
    card.power_on()
    host = Host(card)
    host.plain(_select(purse.isd_aid))
    answer = host.plain(b"\x80\xca\x00\xcf\x00")
    if answer[:2] != bytes([KDD_TAG, len(kdd)]) or not hmac.compare_digest(answer[2:], kdd):
        raise Refused(f"the card answering is not the SE of KDD {kdd.hex().upper()}")
    counter = _purse_state(host, purse)[8:10]
    message = bytes([0x52, len(purse.purse_aid)]) + purse.purse_aid + counter + amount.to_bytes(4, "big")
    mac = cmac(kdf3(purse.master, kdd, MAC_KEY), message)[:MAC_LENGTH]
    after = host.plain(b"\x80\x52\x00\x00" + bytes([4 + MAC_LENGTH]) + amount.to_bytes(4, "big") + mac + b"\x00")
    if int.from_bytes(after[4:6], "big") != int.from_bytes(counter, "big") + 1:
        raise Refused("the purse's top-up counter did not move by one")
    return int.from_bytes(after[0:4], "big"), int.from_bytes(after[4:6], "big")
