"""The INITIALIZE UPDATE exchange (GPCS 2.3.1 §11.14, §E.5.1; Amd D §7.1.1): the command and the card's answer.

Response layout (without the status word):
- SCP02 (Table E-13): key diversification data (10) | key information: KVN, SCP id '02' | sequence counter (2) |
  card challenge (6) | card cryptogram (8): 28 bytes.
- SCP03 (Amd D Table 7-2): key diversification data (10) | key information: KVN, SCP id '03', "i" |
  card challenge (8 or 16) | card cryptogram (8 or 16) | [sequence counter (3), when "i" says the challenge is
  pseudo-random]: 29, 32, 45 or 48 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from globalplatform.apdu import SHORT_NE_MAX, Cla, CommandApdu, Ins
from globalplatform.errors import GpError

KDD_LENGTH: Final = 10
HOST_CHALLENGE_LENGTH: Final = 8
SCP02_RESPONSE_LENGTH: Final = 28
SCP03_HEADER_LENGTH: Final = 13
SCP03_COUNTER_LENGTH: Final = 3
SCP02_ID: Final = 0x02
SCP03_ID: Final = 0x03
KEY_INFO_OFFSET: Final = KDD_LENGTH
"""Offset of the key information (KVN, then the SCP identifier) in the response."""


class InitUpdateFormatError(GpError):
    """An INITIALIZE UPDATE response that does not have the layout of its protocol."""

    code = "initialize_update_format"


@dataclass(frozen=True)
class InitUpdateResponse:
    """The fields of the card's answer; `i` is None for SCP02 (not in its response)."""

    kdd: bytes
    kvn: int
    scp: int
    i: int | None
    card_challenge: bytes
    card_cryptogram: bytes
    sequence_counter: bytes

    @property
    def key_information(self) -> str:
        """"key version 30, SCP03 i=70" for messages."""
        i = "" if self.i is None else f" i={self.i:02X}"
        return f"key version {self.kvn:02X}, SCP{self.scp:02X}{i}"


def command(kvn: int, host_challenge: bytes, *, with_le: bool = True) -> bytes:
    """CLA 80 INS 50 P1 = key version number (00: first available) P2 00 Lc 08 host challenge [Le 00]."""
    if not 0 <= kvn <= 0xFF:
        raise InitUpdateFormatError(f"key version number {kvn} is not a byte")
    if len(host_challenge) != HOST_CHALLENGE_LENGTH:
        raise InitUpdateFormatError(f"the host challenge is {HOST_CHALLENGE_LENGTH} bytes, not {len(host_challenge)}")
    le = SHORT_NE_MAX if with_le else None
    return CommandApdu(Cla.GP, Ins.INITIALIZE_UPDATE, kvn, 0, host_challenge, le).to_bytes()


def scp_id(response: bytes) -> int:
    """The SCP identifier in the key information of a response."""
    if len(response) <= KEY_INFO_OFFSET + 1:
        raise InitUpdateFormatError(f"an INITIALIZE UPDATE response is at least 28 bytes, not {len(response)}")
    return response[KEY_INFO_OFFSET + 1]


def parse(response: bytes) -> InitUpdateResponse:
    """Split a response (without SW) by the layout its SCP identifier names."""
    scp = scp_id(response)
    kdd, kvn = response[:KDD_LENGTH], response[KEY_INFO_OFFSET]
    if scp == SCP02_ID:
        if len(response) != SCP02_RESPONSE_LENGTH:
            raise InitUpdateFormatError(f"an SCP02 INITIALIZE UPDATE response is 28 bytes, not {len(response)}")
        return InitUpdateResponse(kdd, kvn, scp, None, response[14:20], response[20:28], response[12:14])
    if scp != SCP03_ID:
        return InitUpdateResponse(kdd, kvn, scp, None, b"", b"", b"")
    rest = len(response) - SCP03_HEADER_LENGTH
    counter = b""
    if rest in (16 + SCP03_COUNTER_LENGTH, 32 + SCP03_COUNTER_LENGTH):
        counter, rest = response[-SCP03_COUNTER_LENGTH:], rest - SCP03_COUNTER_LENGTH
    elif rest not in (16, 32):
        raise InitUpdateFormatError(f"an SCP03 INITIALIZE UPDATE response is 29, 32, 45 or 48 bytes, "
                                    f"not {len(response)}")
    half = rest // 2
    challenge = response[SCP03_HEADER_LENGTH: SCP03_HEADER_LENGTH + half]
    cryptogram = response[SCP03_HEADER_LENGTH + half: SCP03_HEADER_LENGTH + rest]
    return InitUpdateResponse(kdd, kvn, scp, response[12], challenge, cryptogram, counter)
