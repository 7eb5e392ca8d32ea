"""Short command APDUs (ISO/IEC 7816-3 12.1, cases 1-4); extended length is not supported (answered 6700)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique

from cardsim.sw import SW, ApduError


@unique
class Cla(IntEnum):
    """Class-byte bits (ISO/IEC 7816-4 5.4.1; GPCS 2.3.1 11.1.4)."""

    PROPRIETARY = 0x80
    """b8: GlobalPlatform (proprietary) class."""
    SECURE_MESSAGING = 0x04
    """b3: secure messaging (C-MAC) present."""
    CHANNEL_MASK = 0x03
    """b2-b1: logical channel number."""


@unique
class Ins(IntEnum):
    """Instruction bytes the card knows (GPCS 2.3.1 11.1.2)."""

    DELETE = 0xE4
    GET_DATA = 0xCA
    GET_STATUS = 0xF2
    INSTALL = 0xE6
    LOAD = 0xE8
    PUT_KEY = 0xD8
    SELECT = 0xA4
    SET_STATUS = 0xF0
    STORE_DATA = 0xE2
    INITIALIZE_UPDATE = 0x50
    EXTERNAL_AUTHENTICATE = 0x82


@dataclass(frozen=True)
class CommandApdu:
    """A decoded short C-APDU."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode cases 1-4; 6700 for anything else (including extended length)."""
        if len(raw) < 4:
            raise ApduError(SW.WRONG_LENGTH, "APDU shorter than a header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        lc = body[0]
        if lc == 0:
            raise ApduError(SW.WRONG_LENGTH, "extended length not supported")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[-1] or 256)
        raise ApduError(SW.WRONG_LENGTH, "Lc does not match the data length")

    @property
    def secure_messaging(self) -> bool:
        """CLA b3 set: the command claims a C-MAC."""
        return bool(self.cla & Cla.SECURE_MESSAGING)

    @property
    def proprietary(self) -> bool:
        """CLA b8 set: GlobalPlatform class."""
        return bool(self.cla & Cla.PROPRIETARY)

    @property
    def channel(self) -> int:
        """Logical channel number from CLA."""
        return self.cla & Cla.CHANNEL_MASK

    def with_data(self, data: bytes, *, cla: int | None = None) -> CommandApdu:
        """The same command with other data (and optionally another CLA)."""
        return CommandApdu(self.cla if cla is None else cla, self.ins, self.p1, self.p2, data, self.le)

    def header(self) -> bytes:
        """CLA INS P1 P2."""
        return bytes([self.cla, self.ins, self.p1, self.p2])


@dataclass(frozen=True)
class Response:
    """Response data and status word."""

    data: bytes = b""
    sw: int = SW.OK

    def to_bytes(self) -> bytes:
        """R-APDU bytes: data || SW1 SW2."""
        return self.data + self.sw.to_bytes(2, "big")
