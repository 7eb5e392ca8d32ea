"""Short command APDUs as the secure-channel layer sees them (ISO/IEC 7816-4 §5.1, cases 1 to 4).

Extended-length APDUs are refused: GP secure messaging with short APDUs only (GPCS 2.3.1 §E.4.4, Amd D §6.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag, unique
from typing import Final

from keyservice.errors import InvalidInput

HEADER_LENGTH: Final = 4
MAX_SHORT: Final = 255


@unique
class Cla(IntFlag):
    """CLA bits used by GP secure messaging (GPCS 2.3.1 §11.1.4)."""

    PROPRIETARY = 0x80
    SECURE_MESSAGING = 0x04
    CHANNEL_MASK = 0x03


@unique
class Ins(IntEnum):
    """Instructions the secure-channel layer builds itself (GPCS 2.3.1 §11)."""

    INITIALIZE_UPDATE = 0x50
    EXTERNAL_AUTHENTICATE = 0x82
    PUT_KEY = 0xD8
    STORE_DATA = 0xE2


@unique
class Sw(IntEnum):
    """Status words the response protection rules refer to (Amd D §6.2.5)."""

    OK = 0x9000
    WARNING_62 = 0x62
    WARNING_63 = 0x63


@dataclass(frozen=True)
class CommandApdu:
    """CLA INS P1 P2, the command data and the Le byte (None when absent)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: bytes | None

    @property
    def header(self) -> bytes:
        return bytes([self.cla, self.ins, self.p1, self.p2])

    def encode(self) -> bytes:
        """The APDU bytes (Lc present iff data is)."""
        if len(self.data) > MAX_SHORT:
            raise InvalidInput(f"command data of {len(self.data)} bytes does not fit a short APDU")
        body = bytes([len(self.data)]) + self.data if self.data else b""
        return self.header + body + (self.le or b"")


def parse(apdu: bytes) -> CommandApdu:
    """Parse a short command APDU (cases 1-4); InvalidInput for anything else."""
    if len(apdu) < HEADER_LENGTH:
        raise InvalidInput(f"a command APDU has at least {HEADER_LENGTH} bytes, not {len(apdu)}")
    cla, ins, p1, p2 = apdu[:HEADER_LENGTH]
    body = apdu[HEADER_LENGTH:]
    if not body:
        return CommandApdu(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return CommandApdu(cla, ins, p1, p2, b"", body)
    lc = body[0]
    if lc == 0:
        raise InvalidInput("extended-length APDUs are not supported by the secure channel")
    if len(body) == 1 + lc:
        return CommandApdu(cla, ins, p1, p2, body[1:], None)
    if len(body) == 2 + lc:
        return CommandApdu(cla, ins, p1, p2, body[1:-1], body[-1:])
    raise InvalidInput(f"Lc {lc} does not match the {len(body) - 1} bytes that follow it")


def status(rapdu: bytes) -> tuple[bytes, bytes]:
    """Split a response APDU into (data, SW1 SW2)."""
    if len(rapdu) < 2:
        raise InvalidInput("a response APDU has at least the 2-byte status word")
    return rapdu[:-2], rapdu[-2:]


def is_success(sw: bytes) -> bool:
    """9000 or a warning (62xx, 63xx): the statuses that carry R-MAC / R-ENC (Amd D §6.2.5)."""
    return int.from_bytes(sw, "big") == Sw.OK or sw[0] in (Sw.WARNING_62, Sw.WARNING_63)
