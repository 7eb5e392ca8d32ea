"""STORE DATA (GPCS 2.3.1 11.11): to the application named by INSTALL [for personalization], or else to the
selected SD. P1 b8 = last block; b7-b6 = encryption (00 none, 01 application dependent, 11 encrypted);
b5-b4 = structure (00 none, 01 DGI, 10 BER-TLV) (11.11.2.1); P2 = block number from 00.

Encrypted data: with b7-b6 = 11 every DGI value is encrypted; with 01 the DGIs 8000-8FFF are (EMV CPS
convention). A value is decrypted with the DEK like PUT KEY key data and then stripped of its ISO 9797-1
method 2 padding (80 00..), which the host always adds.
To an SD, the objects 42 (IIN), 45 (CIN) and 66 (card data), as BER-TLV or as DGIs of the same number.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Response
from cardsim.applets import applet_for
from cardsim.primitives import unpad80
from cardsim.securechannel import SecureChannel, SecurityLevel
from cardsim.sw import SW, ApduError
from cardsim.tlv import iter_tlv

if TYPE_CHECKING:
    from cardsim.card import Card

LAST_BLOCK: Final = 0x80
ENCRYPTION_MASK: Final = 0x60
STRUCTURE_MASK: Final = 0x18
EMV_ENCRYPTED_DGIS: Final = range(0x8000, 0x9000)
SD_OBJECTS: Final = frozenset({0x42, 0x45, 0x66})
DGI_LONG_LENGTH: Final = 0xFF


@unique
class Encryption(IntEnum):
    """P1 b7-b6."""

    NONE = 0x00
    APPLICATION_DEPENDENT = 0x20
    ENCRYPTED = 0x60


@unique
class Structure(IntEnum):
    """P1 b5-b4."""

    NONE = 0x00
    DGI = 0x08
    BER_TLV = 0x10


def iter_dgi(data: bytes) -> list[tuple[int, bytes]]:
    """DGIs (EMV CPS 1.1 A.1): tag (2) || length (1, or FF || 2 bytes) || value; 6A80 when malformed."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if pos + 3 > len(data):
            raise ApduError(SW.WRONG_DATA, "truncated DGI")
        dgi, length, pos = int.from_bytes(data[pos : pos + 2], "big"), data[pos + 2], pos + 3
        if length == DGI_LONG_LENGTH:
            if pos + 2 > len(data):
                raise ApduError(SW.WRONG_DATA, "truncated DGI length")
            length, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        if pos + length > len(data):
            raise ApduError(SW.WRONG_DATA, "DGI overruns the block")
        out.append((dgi, data[pos : pos + length]))
        pos += length
    return out


def _records(apdu: CommandApdu, channel: SecureChannel) -> list[tuple[int, bytes]]:
    try:
        encryption = Encryption(apdu.p1 & ENCRYPTION_MASK)
        structure = Structure(apdu.p1 & STRUCTURE_MASK)
    except ValueError as exc:
        raise ApduError(SW.WRONG_P1P2, "reserved P1 coding") from exc
    if structure is Structure.DGI:
        records = iter_dgi(apdu.data)
    elif structure is Structure.BER_TLV:
        records = list(iter_tlv(apdu.data))
    else:
        records = [(0, apdu.data)]
    if encryption is Encryption.NONE:
        return records
    decrypted: list[tuple[int, bytes]] = []
    for number, value in records:
        if encryption is Encryption.ENCRYPTED or number in EMV_ENCRYPTED_DGIS:
            try:
                value = unpad80(channel.decrypt_sensitive(value))
            except ValueError as exc:
                raise ApduError(SW.WRONG_DATA, "bad padding in encrypted data") from exc
        decrypted.append((number, value))
    return decrypted


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Route one block to the personalized application or to the SD."""
    channel = card.require_channel(SecurityLevel.C_MAC)
    if apdu.p2 != card.perso_next_block:
        raise ApduError(SW.WRONG_P1P2, "block number out of sequence")
    records = _records(apdu, channel)
    last = bool(apdu.p1 & LAST_BLOCK)
    if card.perso_target is not None:
        entry = card.registry.app(card.perso_target)
        applet_for(entry).store_data(records, last)
    else:
        sd = card.selected.sd
        if sd is None:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
        for number, value in records:
            if number not in SD_OBJECTS:
                raise ApduError(SW.WRONG_DATA, f"SD does not accept {number:04X}")
            sd.data_objects[number] = value
    card.perso_next_block = 0 if last else card.perso_next_block + 1
    return Response()
