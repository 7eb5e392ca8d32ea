"""The service life cycle through a real pcscd with the simulated wearable behind vpcd (a PC/SC reader, as a
card terminal or a phone's OMAPI bridge would be): open card, report lost with and without the device, unlock,
top-up, balance and delete, each checked against what the card itself answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cardsim.card import Card
from cardsim.state import new_card
from cardsim.vpcd import serve
from tests.tsm_core.conftest import READER, wait_for_card, wait_for_removal
from tests.tsm_core.lab import TRANSIT_INSTANCE, Lab
from tests.tsm_core.test_lifecycle import PURSE_PERSO, life_cycle
from tsm_core.lifecycle import service as lifecycle
from tsm_core.transport.pcsc import PcscTransport

LOCKED = 0x80


@pytest.fixture
def wearable(pcscd, sqlite_lab: Lab) -> Iterator[tuple[Lab, Card, str]]:
    """A wearable card discovered, then served in the virtual reader for the test."""
    card = new_card("wearable")
    se_id = sqlite_lab.discover(card)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(card,), kwargs={"stop": stop}, name="vpcd-serve", daemon=True)
    thread.start()
    try:
        wait_for_card()
        yield sqlite_lab, card, se_id
    finally:
        stop.set()
        thread.join(timeout=5)
        wait_for_removal()


def test_the_life_cycle_through_a_pcsc_reader(wearable):
    lab, card, se_id = wearable
    lab.add_sp("metro")
    app_id = lab.app("metro", "transit", perso=PURSE_PERSO)
    with PcscTransport(READER) as reader:
        service_id = lifecycle.open_service(lab.tsm, se_id, app_id, reader).id
        assert lifecycle.topup(lab.tsm, service_id, 2500, reader).balance_after == 2500
        assert lifecycle.balance(lab.tsm, service_id, reader).balance == 2500
        assert lifecycle.lock(lab.tsm, service_id, reader).service.card_locked
    assert life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED
    with PcscTransport(READER) as reader:
        assert lifecycle.unlock(lab.tsm, service_id, reader).service.state == "active"
        lifecycle.lock(lab.tsm, service_id)  # the device out of reach: blocked now, locked at next contact
        assert [j.state for j in lifecycle.contact(lab.tsm, se_id, reader)] == ["done"]
        assert lifecycle.unlock(lab.tsm, service_id, reader).service.state == "active"
        assert lifecycle.delete(lab.tsm, service_id, reader).service.state == "deleted"
    assert life_cycle(lab, se_id, card, TRANSIT_INSTANCE) is None
