"""The card side of the published SCP02/SCP03 host traces (omfgp): same IU response, accepts the
EXTERNAL AUTHENTICATE and the wrapped commands, answers the published responses."""

from __future__ import annotations

import pytest

from cardsim.state import new_card
from tests.cardsim.conftest import vector_file

PROFILES = {"02": "scp02-i55", "03": "scp03-i00"}


def _vectors() -> list:
    return [
        pytest.param(vector, id=vector["id"])
        for name in ("secure_channel_scp02.json", "secure_channel_scp03.json")
        for vector in vector_file(name)["vectors"]
    ]


def _card_for(vector):
    card = new_card(PROFILES[vector["scp"]])
    card.power_on()
    response = bytes.fromhex(vector["initialize_update"]["response"])
    if vector["scp"] == "02":
        counter, challenge = int.from_bytes(response[12:14], "big"), response[14:20]
    else:
        counter, challenge = None, response[13:21]
    card.force_next_challenge(challenge, counter)
    return card


@pytest.mark.parametrize("vector", _vectors())
def test_card_replays_published_trace(vector):
    card = _card_for(vector)
    iu = card.transmit(bytes.fromhex(vector["initialize_update"]["command"]))
    assert iu.hex().upper() == vector["initialize_update"]["response"].upper() + "9000"
    assert card.transmit(bytes.fromhex(vector["external_authenticate"])).hex() == "9000"
    for command in vector["commands"]:
        response = card.transmit(bytes.fromhex(command["wrapped"]))
        assert response.hex().upper() == command["response"].upper()


@pytest.mark.parametrize("vector", _vectors())
def test_flipped_host_cryptogram_is_refused(vector):
    card = _card_for(vector)
    card.transmit(bytes.fromhex(vector["initialize_update"]["command"]))
    ea = bytearray.fromhex(vector["external_authenticate"])
    ea[5] ^= 0x01
    assert card.transmit(bytes(ea)).hex() == "6300"
    # no session: the wrapped command is refused
    assert card.transmit(bytes.fromhex(vector["commands"][0]["wrapped"])).hex() == "6982"


@pytest.mark.parametrize("vector", _vectors())
def test_flipped_cmac_on_command_is_refused_and_closes_session(vector):
    card = _card_for(vector)
    card.transmit(bytes.fromhex(vector["initialize_update"]["command"]))
    card.transmit(bytes.fromhex(vector["external_authenticate"]))
    wrapped = bytearray.fromhex(vector["commands"][0]["wrapped"])
    wrapped[-1] ^= 0x01
    assert card.transmit(bytes(wrapped)).hex() == "6982"
    assert card.transmit(bytes.fromhex(vector["commands"][1]["wrapped"])).hex() == "6982"


def test_scp02_pseudo_random_challenge_matches_trace():
    """i=55 (b7): the card computes the published challenge itself from counter 0007 and the ISD AID."""
    vector = vector_file("secure_channel_scp02.json")["vectors"][0]
    card = new_card("scp02-i55")
    card.power_on()
    card.registry.isd.sd.sequence_counter = 7
    iu = card.transmit(bytes.fromhex(vector["initialize_update"]["command"]))
    assert iu.hex().upper() == vector["initialize_update"]["response"].upper() + "9000"
