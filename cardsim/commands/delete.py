"""DELETE (GPCS 2.3.1 11.2): an application, SD or load file by AID (tag 4F); P2 b8 deletes the load file
with its instances. Optional token tag 9E for Delegated Management (and B6 control reference, ignored)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cardsim import dm
from cardsim.apdu import CommandApdu, Response
from cardsim.registry import Application
from cardsim.sw import SW, ApduError
from cardsim.tlv import iter_tlv_at

if TYPE_CHECKING:
    from cardsim.card import Card

RELATED_OBJECTS: Final = 0x80
TAG_AID: Final = 0x4F
TAG_TOKEN: Final = 0x9E
TAG_CONTROL_REFERENCE: Final = 0xB6


def _parse(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(AID, signed part, token)."""
    aid: bytes | None = None
    token = b""
    signed_end = len(data)
    for offset, tag, value in iter_tlv_at(data):
        if tag == TAG_AID and aid is None:
            aid = value
        elif tag == TAG_TOKEN:
            token = value
            signed_end = offset
        elif tag != TAG_CONTROL_REFERENCE:
            raise ApduError(SW.WRONG_DATA, f"unexpected tag {tag:X}")
    if aid is None:
        raise ApduError(SW.WRONG_DATA, "AID (4F) missing")
    return aid, data[:signed_end], token


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Delete one entry (and its related objects with P2 = 80)."""
    card.require_channel()
    if apdu.p1 & 0x7F or apdu.p2 & ~RELATED_OBJECTS:
        raise ApduError(SW.WRONG_P1P2)
    aid, signed, token = _parse(apdu.data)
    dm_op = dm.authorize(card, apdu.p1, apdu.p2, signed, token)
    registry = card.registry
    own = card.selected.aid
    is_isd = own == registry.isd_aid
    if aid == registry.isd_aid:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "the ISD cannot be deleted")
    if aid in registry.load_files:
        elf = registry.load_files[aid]
        if not is_isd and elf.sd_aid != own:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        instances = registry.instances_of(aid)
        if instances and not apdu.p2 & RELATED_OBJECTS:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "load file has instances")
        for app in instances:
            _check_deletable(card, app)
        for app in instances:
            del registry.apps[app.aid]
        del registry.load_files[aid]
    elif aid in registry.apps:
        app = registry.apps[aid]
        if not is_isd and app.sd_aid != own:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
        _check_deletable(card, app)
        del registry.apps[aid]
    else:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND)
    if card.perso_target == aid:
        card.perso_target = None
    return Response(dm.confirmation(card, dm.lv(aid) if dm_op else None))


def _check_deletable(card: Card, app: Application) -> None:
    if app.is_sd and any(True for _ in card.registry.associated_with(app.aid)):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "security domain has associated content")
