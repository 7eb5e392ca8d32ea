"""The real card simulator (`cardsim.state.new_card`) behind both transports: in-process and pcscd + vpcd."""

from __future__ import annotations

import threading

import pytest

from cardsim.state import new_card
from cardsim.vpcd import serve
from globalplatform import sw
from globalplatform.apdu import ResponseApdu
from tests.tsm_core.conftest import READER, wait_for_card, wait_for_removal
from tsm_core.gp import commands
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport


def _select_isd(transport) -> ResponseApdu:
    return ResponseApdu.from_bytes(transport.transmit(commands.select().to_bytes()))


def test_local_select_isd():
    card = new_card(None)
    with LocalTransport(card) as transport:
        assert transport.atr == card.power_on()
        response = _select_isd(transport)
    sw.check(response.sw)
    assert response.data.startswith(b"\x6f")  # FCI template (GPCS 2.3.1 §11.9.3.1)


@pytest.mark.pcsc
def test_pcsc_select_isd(pcscd):
    card = new_card(None)
    atr = card.power_on()
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(card,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for_card()
        with PcscTransport(READER) as transport:
            assert transport.atr == atr
            response = _select_isd(transport)
        sw.check(response.sw)
        assert response.data.startswith(b"\x6f")
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    wait_for_removal()
