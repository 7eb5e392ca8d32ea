"""GET DATA (GPCS 2.3.1 11.3): IIN 42, CIN 45, card data 66, key information template E0, sequence
counter C1, key diversification data CF, CPLC 9F7F, extended card resources FF21 (ETSI TS 102 226 8.2.1.7)."""

from __future__ import annotations

from enum import IntEnum, unique
from typing import TYPE_CHECKING

from cardsim.apdu import CommandApdu, Response
from cardsim.keys import key_information_template
from cardsim.memory import free_memory
from cardsim.recognition import card_data
from cardsim.sw import SW, ApduError
from cardsim.tlv import tlv

if TYPE_CHECKING:
    from cardsim.card import Card


@unique
class DataTag(IntEnum):
    """Tags (P1 P2) the card answers."""

    IIN = 0x0042
    CIN = 0x0045
    CARD_DATA = 0x0066
    SEQUENCE_COUNTER = 0x00C1
    KEY_DIVERSIFICATION_DATA = 0x00CF
    KEY_INFORMATION = 0x00E0
    CPLC = 0x9F7F
    EXTENDED_CARD_RESOURCES = 0xFF21


def _varint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Answer one data object, tag included."""
    sd_entry = card.selected
    sd = sd_entry.sd
    if sd is None:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
    tag = (apdu.p1 << 8) | apdu.p2
    if tag in (DataTag.IIN, DataTag.CIN):
        value = sd.data_objects.get(tag)
        if value is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        return Response(tlv(tag, value))
    if tag == DataTag.CARD_DATA:
        return Response(card_data(sd.scp, sd.i))
    if tag == DataTag.KEY_INFORMATION:
        return Response(key_information_template(sd.keysets))
    if tag == DataTag.SEQUENCE_COUNTER:
        return Response(tlv(tag, sd.sequence_counter.to_bytes(2 if sd.scp == 0x02 else 3, "big")))
    if tag == DataTag.KEY_DIVERSIFICATION_DATA:
        return Response(tlv(tag, card.identity.kdd))
    if tag == DataTag.CPLC:
        return Response(tlv(tag, card.identity.cplc))
    if tag == DataTag.EXTENDED_CARD_RESOURCES:
        free = free_memory(card.registry, sd_entry.aid)
        installed = sum(1 for a in card.registry.apps.values() if a.aid != card.registry.isd_aid)
        body = tlv(0x81, _varint(installed)) + tlv(0x82, _varint(max(free.nv, 0)))
        body += tlv(0x83, _varint(max(free.volatile, 0)))
        return Response(tlv(tag, body))
    raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, f"no data object {tag:04X}")
