"""Command and response APDUs (ISO/IEC 7816-4 §5.1 command-response pairs, §5.2 status bytes).

A `CommandApdu` holds the header, the command data field (Nc = len(data)) and Ne, the maximum number of
response bytes expected (`le`, None when absent). Encoding chooses the short form when Nc <= 255 and
Ne <= 256 and the extended form otherwise (ISO 7816-4 §5.1, Table 1 "cases 1 to 4"); Ne = 256 is coded
'00' in a short Le field and Ne = 65536 as '0000' in an extended one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag, unique

from globalplatform.errors import ApduFormatError, InvalidParameter

SHORT_NC_MAX = 255
SHORT_NE_MAX = 256
EXTENDED_NC_MAX = 65535
EXTENDED_NE_MAX = 65536
HEADER_LEN = 4
SW_LEN = 2


@unique
class Cla(IntFlag):
    """Class byte values and bits (ISO 7816-4 §5.4.1; GPCS 2.3.1 §11.1.4)."""

    ISO = 0x00
    GP = 0x80
    """Proprietary class used by GlobalPlatform commands, no secure messaging."""
    SECURE_MESSAGING = 0x04
    """b3: the command is protected by the secure channel (GPCS 2.3.1 §11.1.4.1)."""
    CHANNEL_MASK = 0x03
    """b2..b1: the logical channel number (ISO 7816-4 §5.4.1)."""


@unique
class Ins(IntEnum):
    """Instruction bytes (GPCS 2.3.1 §11.1.5 Table 11-11)."""

    SELECT = 0xA4
    GET_DATA = 0xCA
    GET_STATUS = 0xF2
    INSTALL = 0xE6
    LOAD = 0xE8
    DELETE = 0xE4
    SET_STATUS = 0xF0
    STORE_DATA = 0xE2
    PUT_KEY = 0xD8
    GET_RESPONSE = 0xC0
    INITIALIZE_UPDATE = 0x50
    EXTERNAL_AUTHENTICATE = 0x82


@unique
class ApduCase(IntEnum):
    """ISO 7816-4 §5.1 command cases: whether a data field (Nc > 0) and an Le field are present."""

    CASE_1 = 1
    """No command data, no response data expected."""
    CASE_2 = 2
    """No command data, response data expected (Le present)."""
    CASE_3 = 3
    """Command data, no response data expected."""
    CASE_4 = 4
    """Command data and response data expected."""


def _byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise InvalidParameter(f"{name} must be one byte, got {value}")


@dataclass(frozen=True)
class CommandApdu:
    """A C-APDU: CLA INS P1 P2 [Lc data] [Le] (ISO 7816-4 §5.1)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    """Ne, the maximum number of response data bytes: 1..65536, or None for no Le field."""

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            _byte(name, getattr(self, name))
        if len(self.data) > EXTENDED_NC_MAX:
            raise InvalidParameter(f"command data of {len(self.data)} bytes exceeds {EXTENDED_NC_MAX}")
        if self.le is not None and not 1 <= self.le <= EXTENDED_NE_MAX:
            raise InvalidParameter(f"Ne must be 1..{EXTENDED_NE_MAX} or absent, got {self.le}")

    @property
    def case(self) -> ApduCase:
        """The ISO 7816-4 case of this command."""
        if self.data:
            return ApduCase.CASE_3 if self.le is None else ApduCase.CASE_4
        return ApduCase.CASE_1 if self.le is None else ApduCase.CASE_2

    @property
    def extended(self) -> bool:
        """True when this command needs extended length fields (Nc > 255 or Ne > 256)."""
        return len(self.data) > SHORT_NC_MAX or (self.le is not None and self.le > SHORT_NE_MAX)

    def to_bytes(self) -> bytes:
        """Encode in the short form when possible, otherwise the extended form (ISO 7816-4 §5.1)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        nc = len(self.data)
        if not self.extended:
            lc = bytes((nc,)) + self.data if nc else b""
            le = b"" if self.le is None else bytes((self.le % SHORT_NE_MAX,))
            return header + lc + le
        lc = b"\x00" + nc.to_bytes(2, "big") + self.data if nc else b""
        if self.le is None:
            return header + lc
        le = (self.le % EXTENDED_NE_MAX).to_bytes(2, "big")
        # Case 2E: the extended Le field is three bytes '00' Le1 Le2; in case 4E the '00' is already in Lc.
        return header + (lc + le if nc else b"\x00" + le)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandApdu:
        """Parse any of the seven encodings 1, 2S, 3S, 4S, 2E, 3E, 4E (ISO 7816-3 §12.1.3)."""
        if len(raw) < HEADER_LEN:
            raise ApduFormatError(f"a C-APDU has at least {HEADER_LEN} bytes, got {len(raw)}")
        cla, ins, p1, p2 = raw[:HEADER_LEN]
        body = raw[HEADER_LEN:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or SHORT_NE_MAX)
        if body[0]:
            nc = body[0]
            if len(body) == 1 + nc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + nc:
                return cls(cla, ins, p1, p2, body[1:-1], body[-1] or SHORT_NE_MAX)
            raise ApduFormatError(f"short Lc={nc} does not match a body of {len(body)} bytes")
        if len(body) == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:], "big") or EXTENDED_NE_MAX)
        nc = int.from_bytes(body[1:3], "big")
        if nc == 0:
            raise ApduFormatError("extended Lc of zero")
        if len(body) == 3 + nc:
            return cls(cla, ins, p1, p2, body[3:])
        if len(body) == 5 + nc:
            ne = int.from_bytes(body[-2:], "big") or EXTENDED_NE_MAX
            return cls(cla, ins, p1, p2, body[3:-2], ne)
        raise ApduFormatError(f"extended Lc={nc} does not match a body of {len(body)} bytes")


@dataclass(frozen=True)
class ResponseApdu:
    """An R-APDU: response data followed by the status bytes SW1 SW2 (ISO 7816-4 §5.1, §5.6)."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise InvalidParameter(f"SW must be two bytes, got {self.sw}")

    @property
    def sw1(self) -> int:
        """The first status byte."""
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        """The second status byte."""
        return self.sw & 0xFF

    def to_bytes(self) -> bytes:
        """The R-APDU as sent by the card."""
        return self.data + self.sw.to_bytes(SW_LEN, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        """Split data and trailer; an R-APDU has at least the two status bytes."""
        if len(raw) < SW_LEN:
            raise ApduFormatError(f"an R-APDU has at least {SW_LEN} bytes, got {len(raw)}")
        return cls(raw[:-SW_LEN], int.from_bytes(raw[-SW_LEN:], "big"))
