"""Demo bank card (protocol in docs/cardsim.md, "Bank card").

Personalization (STORE DATA, DGI format, EMV CPS style: DGIs 8000-8FFF arrive encrypted under the DEK):
DGI 0101 = BER-TLV 5F20 cardholder name, 5F24 expiry (YYMMDD); DGI 8101 = BER-TLV 5A PAN (BCD, F-padded);
DGI 8000 = 16-byte AES card authentication key. The card never returns the PAN or the key:
READ RECORD 00 B2 01 0C gives 70 { DF10 masked PAN (ASCII, all but the last 4 digits as '*'), 5F20, 5F24 };
INTERNAL AUTHENTICATE 00 88 00 00 gives the first 8 bytes of AES-CMAC(key, challenge).
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import Final

from cardsim.apdu import CommandApdu, Response
from cardsim.applets.base import Applet
from cardsim.primitives import aes_cmac
from cardsim.sw import SW, ApduError
from cardsim.tlv import parse_tlv, tlv

DGI_CARDHOLDER: Final = 0x0101
DGI_PAN: Final = 0x8101
DGI_AUTH_KEY: Final = 0x8000
TAG_PAN: Final = 0x5A
TAG_NAME: Final = 0x5F20
TAG_EXPIRY: Final = 0x5F24
TAG_MASKED_PAN: Final = 0xDF10
RECORD_P1P2: Final = (0x01, 0x0C)


@unique
class BankIns(IntEnum):
    """Instructions of the bank card (ISO/IEC 7816-4 class 00)."""

    INTERNAL_AUTHENTICATE = 0x88
    READ_RECORD = 0xB2


def pan_digits(bcd: bytes) -> str:
    """Digits of a BCD PAN, padding nibbles F removed; 6A80 when not 12-19 decimal digits."""
    digits = bcd.hex().upper().rstrip("F")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise ApduError(SW.WRONG_DATA, "PAN must be 12-19 BCD digits")
    return digits


def mask_pan(digits: str) -> str:
    """All digits but the last four replaced by '*'."""
    return "*" * (len(digits) - 4) + digits[-4:]


class BankCard(Applet):
    """Holds a PAN and a key; exposes only masked data and a challenge-response."""

    module_aid = bytes.fromhex("F000000002010101")

    def store_data(self, records: list[tuple[int, bytes]], last: bool) -> None:
        for dgi, value in records:
            if dgi == DGI_CARDHOLDER:
                objects = parse_tlv(value)
                self.state["name"] = objects.get(TAG_NAME, b"").hex()
                self.state["expiry"] = objects.get(TAG_EXPIRY, b"").hex()
            elif dgi == DGI_PAN:
                pan = parse_tlv(value).get(TAG_PAN)
                if pan is None:
                    raise ApduError(SW.WRONG_DATA, "DGI 8101 without tag 5A")
                self.state["pan"] = pan_digits(pan)
            elif dgi == DGI_AUTH_KEY and len(value) == 16:
                self.state["key"] = value.hex()
            else:
                raise ApduError(SW.WRONG_DATA, f"unexpected DGI {dgi:04X}")
        if last:
            if not {"pan", "key", "name"} <= self.state.keys():
                raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "personalization incomplete")
            self.personalized()

    def process(self, apdu: CommandApdu) -> Response:
        if apdu.cla != 0x00:
            return Response(sw=SW.CLA_NOT_SUPPORTED)
        if apdu.ins not in frozenset(BankIns):
            return Response(sw=SW.INS_NOT_SUPPORTED)
        if "pan" not in self.state or "key" not in self.state:
            return Response(sw=SW.CONDITIONS_NOT_SATISFIED)
        if apdu.ins == BankIns.READ_RECORD:
            if (apdu.p1, apdu.p2) != RECORD_P1P2:
                return Response(sw=SW.RECORD_NOT_FOUND)
            record = tlv(TAG_MASKED_PAN, mask_pan(str(self.state["pan"])).encode("ascii"))
            record += tlv(TAG_NAME, bytes.fromhex(str(self.state["name"])))
            record += tlv(TAG_EXPIRY, bytes.fromhex(str(self.state["expiry"])))
            return Response(tlv(0x70, record))
        if apdu.p1 or apdu.p2:
            return Response(sw=SW.WRONG_P1P2)
        if not 8 <= len(apdu.data) <= 16:
            return Response(sw=SW.WRONG_LENGTH)
        key = bytes.fromhex(str(self.state["key"]))
        return Response(aes_cmac(key, apdu.data)[:8])
