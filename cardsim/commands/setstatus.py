"""SET STATUS (GPCS 2.3.1 11.10): P1 80 = card life cycle (ISD), 40 = application or SD, 60 = SD and its
associated applications; for 40/60, P2 80 locks, 00 unlocks, another value with b1-b3 set is an
application-specific state (11.10.2.2)."""

from __future__ import annotations

from enum import IntEnum, unique
from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Response
from cardsim.lifecycle import AppLifeCycle, CardLifeCycle, app_transition_allowed, card_transition_allowed
from cardsim.privileges import Privilege
from cardsim.registry import Application
from cardsim.sw import SW, ApduError

if TYPE_CHECKING:
    from cardsim.card import Card


@unique
class StatusType(IntEnum):
    """P1 of SET STATUS (11.10.2.1)."""

    CARD = 0x80
    APPLICATION = 0x40
    SD_AND_APPLICATIONS = 0x60


LOCK: Final = 0x80
UNLOCK: Final = 0x00


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Change a life cycle state."""
    card.require_channel()
    if apdu.p1 == StatusType.CARD:
        _card_state(card, apdu.p2)
        return Response()
    if apdu.p1 not in (StatusType.APPLICATION, StatusType.SD_AND_APPLICATIONS):
        raise ApduError(SW.WRONG_P1P2)
    registry = card.registry
    target = registry.apps.get(apdu.data)
    if target is None or target.aid == registry.isd_aid:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such application")
    actor = card.selected
    if not (actor.aid == registry.isd_aid or target.sd_aid == actor.aid or actor.privileges & Privilege.GLOBAL_LOCK):
        raise ApduError(SW.SECURITY_STATUS, "not the associated SD")
    targets = [target]
    if apdu.p1 == StatusType.SD_AND_APPLICATIONS:
        if not target.is_sd:
            raise ApduError(SW.WRONG_DATA, "not a security domain")
        targets += [a for a in registry.apps.values() if a.sd_aid == target.aid and a.aid != target.aid]
    for entry in targets:
        _app_state(entry, apdu.p2)
    return Response()


def _card_state(card: Card, p2: int) -> None:
    try:
        new = CardLifeCycle(p2)
    except ValueError as exc:
        raise ApduError(SW.WRONG_P1P2, "not a card life cycle state") from exc
    actor = card.selected
    is_isd = actor.aid == card.registry.isd_aid
    if new is CardLifeCycle.CARD_LOCKED and not actor.privileges & Privilege.CARD_LOCK:
        raise ApduError(SW.SECURITY_STATUS, "Card Lock privilege needed")
    if new is CardLifeCycle.TERMINATED and not actor.privileges & Privilege.CARD_TERMINATE:
        raise ApduError(SW.SECURITY_STATUS, "Card Terminate privilege needed")
    if new in (CardLifeCycle.INITIALIZED, CardLifeCycle.SECURED) and not is_isd:
        raise ApduError(SW.SECURITY_STATUS, "only the ISD moves the card forward or unlocks it")
    if not card_transition_allowed(card.life_cycle, new):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, f"{card.life_cycle.name} → {new.name}")
    card.life_cycle = new
    if new is CardLifeCycle.TERMINATED:
        card.channel = None  # this response is still wrapped; nothing after it is (GPCS 5.1.1.5)


def _app_state(entry: Application, p2: int) -> None:
    if p2 == LOCK:
        entry.life_cycle |= AppLifeCycle.LOCKED
    elif p2 == UNLOCK:
        if not entry.life_cycle & AppLifeCycle.LOCKED:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "not locked")
        entry.life_cycle &= ~AppLifeCycle.LOCKED
    elif entry.life_cycle & AppLifeCycle.LOCKED or not app_transition_allowed(entry.life_cycle, p2):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "transition not allowed")
    else:
        entry.life_cycle = p2
