"""Card-side SCP02/SCP03 at every security level, key lengths, diversified profiles, refusals, lock-out."""

from __future__ import annotations

import dataclasses

import pytest

from cardsim.diversify import Diversification, diversify
from cardsim.keys import KeyId
from cardsim.lifecycle import CardLifeCycle
from cardsim.profiles import load_profile
from cardsim.state import card_from_profile, new_card
from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY, vector_file
from tests.cardsim.host import C_DEC, C_MAC, R_ENC, R_MAC, AuthError, Host, cmac, kdf, tdes

SCP03_LEVELS = [0x00, C_MAC, C_MAC | C_DEC, C_MAC | R_MAC, C_MAC | C_DEC | R_MAC, C_MAC | C_DEC | R_MAC | R_ENC]
SCP02_LEVELS = SCP03_LEVELS[:-1]


def _exchange(host: Host) -> None:
    data, sw = host.send(gp.get_status(0x80))
    assert sw == 0x9000 and data[:1] == b"\xe3"
    data, sw = host.send(gp.apdu(0x80, 0xCA, 0x00, 0xE0, le=0))
    assert sw == 0x9000 and data[:1] == b"\xe0"
    data, sw = host.send(gp.get_status(0x40, b"\xa0\x99"))
    assert (data, sw) == (b"", 0x6A88)
    data, sw = host.send(gp.get_status(0x80))  # after an error the chaining still holds
    assert sw == 0x9000


@pytest.mark.parametrize("level", SCP03_LEVELS)
@pytest.mark.parametrize("key_length", [16, 24, 32])
def test_scp03_levels_and_key_lengths(level, key_length):
    master = bytes(range(0x40, 0x40 + key_length))
    profile = dataclasses.replace(load_profile(None), master_key=master)
    card = card_from_profile(profile)
    card.power_on()
    _exchange(Host(card, master).open(level))


@pytest.mark.parametrize("level", SCP02_LEVELS)
def test_scp02_levels(scp02_card, level):
    _exchange(Host(scp02_card, TEST_KEY, scp=2).open(level))


@pytest.mark.parametrize("i", [0x05, 0x15, 0x45])
def test_scp02_other_i_values(i):
    profile = dataclasses.replace(load_profile("scp02-i55"), i=i)
    card = card_from_profile(profile)
    card.power_on()
    _exchange(Host(card, TEST_KEY, scp=2, i=i).open(C_MAC | C_DEC | R_MAC))


def test_r_enc_really_encrypts(card):
    host = Host(card, TEST_KEY).open(C_MAC | C_DEC | R_MAC | R_ENC)
    raw = card.transmit(host.wrap(gp.get_status(0x80)))
    assert b"\xa0\x00\x00\x01\x51" not in raw  # ISD AID not visible on the wire
    data, sw = host.unwrap(raw)
    assert sw == 0x9000 and b"\xa0\x00\x00\x01\x51" in data


def test_unsupported_levels_are_refused():
    card = new_card("scp03-i00")
    card.power_on()
    with pytest.raises(AuthError, match="6a86"):
        Host(card, TEST_KEY).open(C_MAC | R_MAC)
    scp02 = new_card("scp02-i55")
    scp02.power_on()
    with pytest.raises(AuthError, match="6a86"):
        Host(scp02, TEST_KEY, scp=2).open(0x33)


def test_scp03_pseudo_random_challenge_and_counter(card):
    isd_aid = card.registry.isd_aid
    for expected_counter in (1, 2):
        host = Host(card, TEST_KEY)
        data, sw = host.initialize_update()
        assert sw == b"\x90\x00" and len(data) == 32
        counter = data[29:32]
        assert int.from_bytes(counter, "big") == expected_counter
        assert data[13:21] == kdf(TEST_KEY, 0x02, counter + isd_aid, 64)


def _emv_keys(kdd: bytes) -> list[bytes]:
    return [tdes(TEST_KEY, kdd[4:10] + bytes([0xF0, k]) + kdd[4:10] + bytes([0x0F, k])) for k in (1, 2, 3)]


def test_diversified_scp02_emv_card():
    card = new_card("scp02-emv")
    card.power_on()
    with pytest.raises(AuthError):
        Host(card, TEST_KEY, scp=2, i=0x15).open()
    host = Host(card, *_emv_keys(card.identity.kdd), scp=2, i=0x15).open(C_MAC | C_DEC)
    assert host.kvn == 0x01
    _exchange(host)


def test_diversified_scp03_kdf3_card():
    card = new_card("scp03-kdf3")
    card.power_on()
    kdd = card.identity.kdd
    keys = [cmac(TEST_KEY, bytes([1, 0, 0, 0, k, 0]) + kdd) for k in (1, 2, 3)]
    _exchange(Host(card, *keys).open(C_MAC | C_DEC | R_MAC | R_ENC))


@pytest.mark.parametrize("vector", vector_file("diversify.json")["vectors"], ids=lambda v: v["id"])
def test_card_diversification_matches_published_vectors(vector):
    method = Diversification(vector["method"])
    master, kdd = bytes.fromhex(vector["master"]), bytes.fromhex(vector["kdd"])
    for name, key_id in (("enc", KeyId.ENC), ("mac", KeyId.MAC), ("dek", KeyId.DEK)):
        if name in vector["expect"]:
            assert diversify(method, master, kdd, key_id).hex() == vector["expect"][name].lower()


def test_commands_need_a_secure_channel(card):
    assert card.transmit(gp.get_status(0x80)).hex() == "6982"
    assert card.transmit(b"\x84\xf2\x80\x02\x0a\x4f\x00" + bytes(8)).hex() == "6982"
    assert card.transmit(b"\x84\x82\x01\x00\x10" + bytes(16)).hex() == "6985"  # no INITIALIZE UPDATE


def test_plain_command_inside_mac_session_is_refused_and_ends_it(card, host):
    assert card.transmit(gp.get_status(0x80)).hex() == "6982"
    assert host.send(gp.get_status(0x80))[1] == 0x6982


def test_initialize_update_refusals(card):
    assert card.transmit(bytes.fromhex("8050000004 01020304".replace(" ", ""))).hex() == "6700"
    assert card.transmit(bytes.fromhex("8050000108") + bytes(8)).hex() == "6a86"
    assert card.transmit(bytes.fromhex("8050200008") + bytes(8)).hex() == "6a88"
    assert card.transmit(bytes.fromhex("0050000008") + bytes(8)).hex() == "6e00"


def test_retry_limit_locks_the_card():
    card = new_card("scp02-emv")  # retry limit 3, SECURED
    card.power_on()
    keys = _emv_keys(card.identity.kdd)
    for _ in range(3):
        with pytest.raises(AuthError, match="6300"):
            Host(card, *keys, scp=2, i=0x15).open(tamper=True)
    assert card.life_cycle is CardLifeCycle.CARD_LOCKED
    assert card.transmit(bytes.fromhex("8050000008") + bytes(8)).hex() == "6983"
    assert card.transmit(gp.select(card.registry.isd_aid))[-2:].hex() == "6283"


def test_success_resets_the_failure_count(card):
    for _ in range(9):
        with pytest.raises(AuthError):
            Host(card, TEST_KEY).open(tamper=True)
    Host(card, TEST_KEY).open()
    for _ in range(9):
        with pytest.raises(AuthError):
            Host(card, TEST_KEY).open(tamper=True)
    Host(card, TEST_KEY).open()
