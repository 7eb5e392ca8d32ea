"""SELECT by AID (GPCS 2.3.1 11.9; ISO/IEC 7816-4 11.1.1). Partial selection and P2 'next' are not supported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Response
from cardsim.applets import applet_for
from cardsim.lifecycle import AppLifeCycle, CardLifeCycle, is_locked
from cardsim.recognition import sd_fci
from cardsim.sw import SW, ApduError

if TYPE_CHECKING:
    from cardsim.card import Card

BY_NAME: Final = 0x04
FIRST_OR_ONLY: Final = 0x00


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Select an application; the ISD when the AID is empty."""
    if apdu.p1 != BY_NAME or apdu.p2 != FIRST_OR_ONLY:
        raise ApduError(SW.WRONG_P1P2, "only SELECT by name, first occurrence")
    registry = card.registry
    aid = apdu.data or registry.isd_aid
    entry = registry.apps.get(aid)
    restricted = card.life_cycle in (CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED)
    if entry is None or (restricted and aid != registry.isd_aid):
        raise ApduError(SW.NOT_FOUND)
    if aid != registry.isd_aid:
        if is_locked(entry.life_cycle):
            raise ApduError(SW.APPLET_SELECT_FAILED, "application locked")
        if entry.life_cycle & AppLifeCycle.SELECTABLE != AppLifeCycle.SELECTABLE:
            raise ApduError(SW.NOT_FOUND, "application not selectable")
    card.select(entry)
    if entry.sd is None:
        return applet_for(entry).select()
    fci = sd_fci(entry.aid, entry.sd.scp, entry.sd.i)
    if card.life_cycle is CardLifeCycle.CARD_LOCKED:
        return Response(fci, SW.SELECTED_FILE_INVALIDATED)
    return Response(fci)
