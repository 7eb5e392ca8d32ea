"""Demo transit purse (protocol in docs/cardsim.md, "Transit purse").

Personalization (STORE DATA, DGI format): DGI 0101 = currency (2) || balance (4) || max balance (4) ||
max debit (4); DGI 8001 = the service provider's 16-byte AES top-up key (encrypted DGI).
Commands (CLA 80): 5C GET BALANCE, 54 DEBIT, 52 TOP UP with an AES-CMAC by the service provider over
52 || len(AID) || AID || top-up counter (2) || amount (4), first 8 bytes; the counter then increments.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import Final

from cardsim.apdu import CommandApdu, Response
from cardsim.applets.base import Applet
from cardsim.primitives import aes_cmac, equal
from cardsim.sw import SW, ApduError

CLA: Final = 0x80
DGI_PURSE: Final = 0x0101
DGI_TOPUP_KEY: Final = 0x8001
MAC_LENGTH: Final = 8


@unique
class PurseIns(IntEnum):
    """Instructions of the purse."""

    TOP_UP = 0x52
    DEBIT = 0x54
    GET_BALANCE = 0x5C


def top_up_message(aid: bytes, counter: int, amount: int) -> bytes:
    """The data the service provider MACs for a top-up."""
    return bytes([PurseIns.TOP_UP, len(aid)]) + aid + counter.to_bytes(2, "big") + amount.to_bytes(4, "big")


class TransitPurse(Applet):
    """A stored-value purse whose top-ups need the service provider's MAC."""

    module_aid = bytes.fromhex("F000000001010101")

    def store_data(self, records: list[tuple[int, bytes]], last: bool) -> None:
        for dgi, value in records:
            if dgi == DGI_PURSE and len(value) == 14:
                self.state.update(
                    currency=value[0:2].hex(),
                    balance=int.from_bytes(value[2:6], "big"),
                    max_balance=int.from_bytes(value[6:10], "big"),
                    max_debit=int.from_bytes(value[10:14], "big"),
                    counter=0,
                )
            elif dgi == DGI_TOPUP_KEY and len(value) == 16:
                self.state["key"] = value.hex()
            else:
                raise ApduError(SW.WRONG_DATA, f"unexpected DGI {dgi:04X}")
        if last:
            if "key" not in self.state or "balance" not in self.state:
                raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "personalization incomplete")
            self.personalized()

    def process(self, apdu: CommandApdu) -> Response:
        if apdu.cla != CLA:
            return Response(sw=SW.CLA_NOT_SUPPORTED)
        if apdu.ins not in frozenset(PurseIns):
            return Response(sw=SW.INS_NOT_SUPPORTED)
        if "key" not in self.state:
            return Response(sw=SW.CONDITIONS_NOT_SATISFIED)
        if apdu.p1 or apdu.p2:
            return Response(sw=SW.WRONG_P1P2)
        ins = PurseIns(apdu.ins)
        if ins is PurseIns.GET_BALANCE:
            return Response(self._balance_record())
        if ins is PurseIns.DEBIT:
            return self._debit(apdu.data)
        return self._top_up(apdu.data)

    def _balance_record(self) -> bytes:
        s = self.state
        return (
            int(s["balance"]).to_bytes(4, "big")
            + int(s["max_balance"]).to_bytes(4, "big")
            + int(s["counter"]).to_bytes(2, "big")
            + bytes.fromhex(str(s["currency"]))
        )

    def _debit(self, data: bytes) -> Response:
        if len(data) != 4:
            return Response(sw=SW.WRONG_LENGTH)
        amount = int.from_bytes(data, "big")
        if amount == 0 or amount > int(self.state["max_debit"]):
            return Response(sw=SW.WRONG_DATA)
        if amount > int(self.state["balance"]):
            return Response(sw=SW.CONDITIONS_NOT_SATISFIED)
        self.state["balance"] = int(self.state["balance"]) - amount
        return Response(int(self.state["balance"]).to_bytes(4, "big"))

    def _top_up(self, data: bytes) -> Response:
        if len(data) != 4 + MAC_LENGTH:
            return Response(sw=SW.WRONG_LENGTH)
        amount = int.from_bytes(data[:4], "big")
        counter = int(self.state["counter"])
        key = bytes.fromhex(str(self.state["key"]))
        expected = aes_cmac(key, top_up_message(self.entry.aid, counter, amount))[:MAC_LENGTH]
        if not equal(expected, data[4:]):
            return Response(sw=SW.SECURITY_STATUS)
        if amount == 0 or int(self.state["balance"]) + amount > int(self.state["max_balance"]):
            return Response(sw=SW.WRONG_DATA)
        self.state["balance"] = int(self.state["balance"]) + amount
        self.state["counter"] = counter + 1
        return Response(int(self.state["balance"]).to_bytes(4, "big") + (counter + 1).to_bytes(2, "big"))
