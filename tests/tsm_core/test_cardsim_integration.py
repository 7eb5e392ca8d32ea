"""The real card simulator (`cardsim.state.new_card`) behind both transports: in-process and pcscd + vpcd."""

from __future__ import annotations

import threading

import pytest

from cardsim.keys import Key, KeySet, KeyType
from cardsim.profiles import available_profiles, load_profile
from cardsim.state import new_card
from cardsim.vpcd import serve
from globalplatform import cardinfo, keyinfo, sw
from globalplatform.apdu import ResponseApdu
from globalplatform.cardinfo import ScpOption
from globalplatform.initupdate import SCP02_ID
from globalplatform.keyinfo import KeyComponent, KeyInformation
from globalplatform.keys import GpKeyType
from tests.tsm_core.conftest import READER, wait_for_card, wait_for_removal
from tsm_core.gp import commands
from tsm_core.gp.commands import DataObject
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


@pytest.mark.parametrize("name", available_profiles())
def test_the_simulator_answers_card_data_like_the_published_cards(name):
    """Every profile's SELECT FCI, GET DATA 66 and GET DATA E0 read with the parsers that read real cards'
    answers (globalplatform.cardinfo / keyinfo examples) say what the profile says."""
    profile = load_profile(name)
    card = new_card(name)
    with LocalTransport(card) as transport:
        fci = cardinfo.parse_fci(_select_isd(transport).data)
        card_data = ResponseApdu.from_bytes(transport.transmit(commands.get_data(DataObject.CARD_DATA).to_bytes()))
        keys = ResponseApdu.from_bytes(transport.transmit(commands.get_data(DataObject.KEY_INFORMATION).to_bytes()))
    channel = ScpOption(profile.scp, profile.i)
    assert fci.aid == profile.isd_aid
    assert fci.management_data is not None and fci.management_data.secure_channels == (channel,)
    recognition = cardinfo.parse_card_data(card_data.data)
    assert recognition.secure_channels == (channel,) and recognition.gp_version == (2, 3, 1)
    key_type = GpKeyType.DES if profile.scp == SCP02_ID else GpKeyType.AES
    length = len(profile.master_key)
    assert keyinfo.parse_key_information(keys.data) == tuple(
        KeyInformation(key_id, profile.kvn, (KeyComponent(key_type, length),)) for key_id in (1, 2, 3))


def test_a_2048_bit_token_key_is_listed_in_the_extended_format():
    """A modulus of 256 bytes does not fit the basic format's length byte (GPCS 2.3.1 Table 11-28): the card
    lists it in the extended format (Table 11-29)."""
    card = new_card(None)
    sd = card.registry.isd.sd
    assert sd is not None
    sd.keysets[0x70] = KeySet(0x70, {1: Key(1, KeyType.RSA_MODULUS, bytes(256), b"\x01\x00\x01")})
    with LocalTransport(card) as transport:
        _select_isd(transport)
        keys = ResponseApdu.from_bytes(transport.transmit(commands.get_data(DataObject.KEY_INFORMATION).to_bytes()))
    token = [key for key in keyinfo.parse_key_information(keys.data) if key.kvn == 0x70]
    assert token == [KeyInformation(1, 0x70, (KeyComponent(0xA1, 256), KeyComponent(0xA0, 3)), True)]
