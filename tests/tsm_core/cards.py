"""Test-only cards: a tiny one with fixed answers, enough to exercise transports (`MiniCard`), and a recording
wire in front of any card (`Recorder`).

INS behaviour (CLA ignored):
- 'A4' SELECT: '9000'.
- 'F2' GET STATUS P1 '80' P2 '02': the omfgp ISD entry (tests/vectors/secure_channel_scp03.json) + '9000'.
- '01' echo: returns the command data + '9000'.
- '02' chained: returns '61 10' then, on GET RESPONSE ('C0') with Le = 16, 16 bytes 00..0F + '9000'.
- '03' strict Le: '6C 04' unless Le = 4, then 'CAFEBABE 9000'.
- anything else: '6D00'.
"""

from __future__ import annotations

ATR = bytes.fromhex("3B80800101")
"""TS '3B', T0 '80' (TD1 follows), TD1 '80' (T=0, TD2 follows), TD2 '01' (T=1), TCK '01'."""
ISD_STATUS = bytes.fromhex("E32A4F08A0000001510000009F700107C5039EFE80C407A0000000620001CE020100CC08A000000151000000")
CHAINED = bytes(range(16))


class MiniCard:
    """Stateless apart from counters; `power_on` counts resets, `apdus` the C-APDUs seen."""

    def __init__(self) -> None:
        self.resets = 0
        self.apdus: list[bytes] = []

    def power_on(self) -> bytes:
        self.resets += 1
        return ATR

    def transmit(self, apdu: bytes) -> bytes:
        self.apdus.append(apdu)
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        if ins == 0xA4:
            return b"\x90\x00"
        if ins == 0xF2 and (p1, p2) == (0x80, 0x02):
            return ISD_STATUS + b"\x90\x00"
        if ins == 0x01:
            return apdu[5 : 5 + apdu[4]] + b"\x90\x00" if len(apdu) > 5 else b"\x90\x00"
        if ins == 0x02:
            return bytes((0x61, len(CHAINED)))
        if ins == 0xC0 and apdu[4:5] == bytes((len(CHAINED),)):
            return CHAINED + b"\x90\x00"
        if ins == 0x03:
            return b"\xca\xfe\xba\xbe\x90\x00" if apdu[4:] == b"\x04" else b"\x6c\x04"
        return b"\x6d\x00"


class Recorder:
    """A card behind a recording wire; `answers` replaces the card's answer to some exact C-APDUs."""

    def __init__(self, card, answers: dict[bytes, bytes] | None = None) -> None:
        self.card, self.answers, self.sent = card, answers or {}, []

    def power_on(self) -> bytes:
        return self.card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.answers.get(apdu) or self.card.transmit(apdu)

    @property
    def instructions(self) -> list[int]:
        return [apdu[1] for apdu in self.sent]
