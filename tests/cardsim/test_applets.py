"""The demo applets end to end: install, personalize with (encrypted) DGIs, use, lock."""

from __future__ import annotations

import pytest

from cardsim.state import new_card
from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY
from tests.cardsim.host import C_DEC, C_MAC, Host, cmac, pad, tdes

TRANSIT_ELF = bytes.fromhex("F0000000010101")
TRANSIT_MOD = bytes.fromhex("F000000001010101")
PURSE = bytes.fromhex("F00000000101010101")
BANK_ELF = bytes.fromhex("F0000000020101")
BANK_MOD = bytes.fromhex("F000000002010101")
BANK = bytes.fromhex("F00000000201010101")
SP_KEY = bytes(range(0xA0, 0xB0))
CARD_KEY = bytes(range(0xB0, 0xC0))
PAN = "4761739001010119"


def _install_and_personalize(host: Host, elf, mod, aid, blocks: list[tuple[int, bytes]]) -> list[int]:
    assert host.send(gp.install(0x0C, gp.install_data(elf, mod, aid)))[1] == 0x9000
    perso = gp.lv(b"") + gp.lv(b"") + gp.lv(aid) + gp.lv(b"") + gp.lv(b"") + gp.lv(b"")
    assert host.send(gp.install(0x20, perso))[1] == 0x9000
    return [host.send(gp.store_data(p1, n, data))[1] for n, (p1, data) in enumerate(blocks)]


def _purse(card) -> Host:
    host = Host(card, TEST_KEY).open(C_MAC | C_DEC)
    purse = bytes.fromhex("0978") + (500).to_bytes(4, "big") + (10000).to_bytes(4, "big") + (2000).to_bytes(4, "big")
    encrypted_key = host.encrypt(pad(SP_KEY, 16))
    sws = _install_and_personalize(
        host,
        TRANSIT_ELF,
        TRANSIT_MOD,
        PURSE,
        [(0x08, gp.dgi(0x0101, purse)), (0x80 | 0x20 | 0x08, gp.dgi(0x8001, encrypted_key))],
    )
    assert sws == [0x9000, 0x9000]
    return host


def _top_up(card, amount: int, counter: int, key: bytes = SP_KEY) -> bytes:
    msg = bytes([0x52, len(PURSE)]) + PURSE + counter.to_bytes(2, "big") + amount.to_bytes(4, "big")
    return card.transmit(gp.apdu(0x80, 0x52, 0, 0, amount.to_bytes(4, "big") + cmac(key, msg)[:8], 0))


def test_transit_purse(card):
    _purse(card)
    assert card.registry.apps[PURSE].life_cycle == 0x0F  # PERSONALIZED
    assert card.transmit(gp.select(PURSE))[-2:].hex() == "9000"
    balance = card.transmit(bytes.fromhex("805C000000"))
    assert balance.hex() == f"{500:08x}{10000:08x}00000978" + "9000"
    assert card.transmit(gp.apdu(0x80, 0x54, 0, 0, (200).to_bytes(4, "big"), 0)).hex() == f"{300:08x}9000"
    assert card.transmit(gp.apdu(0x80, 0x54, 0, 0, (301).to_bytes(4, "big"))).hex() == "6985"
    assert card.transmit(gp.apdu(0x80, 0x54, 0, 0, (2001).to_bytes(4, "big"))).hex() == "6a80"
    assert _top_up(card, 1000, 0).hex() == f"{1300:08x}0001" + "9000"
    assert _top_up(card, 1000, 0).hex() == "6982"  # replayed MAC: the counter moved on
    assert _top_up(card, 1000, 1, key=TEST_KEY).hex() == "6982"
    assert _top_up(card, 9000, 1).hex() == "6a80"  # above the maximum balance
    assert card.transmit(bytes.fromhex("80AA000000")).hex() == "6d00"
    assert card.transmit(bytes.fromhex("005C000000")).hex() == "6e00"


def test_purse_lock_and_unlock(card):
    host = _purse(card)
    assert host.send(gp.set_status(0x40, 0x80, PURSE))[1] == 0x9000
    assert card.transmit(gp.select(PURSE)).hex() == "6999"
    host = Host(card, TEST_KEY).open()
    assert host.send(gp.set_status(0x40, 0x00, PURSE))[1] == 0x9000
    assert host.send(gp.set_status(0x40, 0x00, PURSE))[1] == 0x6985  # not locked
    assert card.transmit(gp.select(PURSE))[-2:].hex() == "9000"


def test_purse_refuses_use_before_personalization(card):
    host = Host(card, TEST_KEY).open()
    assert host.send(gp.install(0x0C, gp.install_data(TRANSIT_ELF, TRANSIT_MOD, PURSE)))[1] == 0x9000
    card.transmit(gp.select(PURSE))
    assert card.transmit(bytes.fromhex("805C000000")).hex() == "6985"


def test_store_data_refusals(card):
    host = Host(card, TEST_KEY).open(C_MAC | C_DEC)
    assert host.send(gp.install(0x0C, gp.install_data(TRANSIT_ELF, TRANSIT_MOD, PURSE)))[1] == 0x9000
    perso = gp.lv(b"") + gp.lv(b"") + gp.lv(PURSE) + gp.lv(b"") + gp.lv(b"") + gp.lv(b"")
    assert host.send(gp.install(0x20, perso))[1] == 0x9000
    assert host.send(gp.store_data(0x08, 0x01, gp.dgi(0x0101, bytes(14))))[1] == 0x6A86  # block 1 first
    assert host.send(gp.store_data(0x08, 0x00, gp.dgi(0x0999, b"\x00")))[1] == 0x6A80  # unknown DGI
    assert host.send(gp.store_data(0x08, 0x00, b"\x01\x01\x09\x00"))[1] == 0x6A80  # DGI overruns
    bad_padding = host.encrypt(bytes(16))
    assert host.send(gp.store_data(0x68, 0x00, gp.dgi(0x8001, bad_padding)))[1] == 0x6A80
    assert host.send(gp.store_data(0x88, 0x00, gp.dgi(0x0101, bytes(14))))[1] == 0x6985  # no key yet
    assert card.transmit(gp.store_data(0x80, 0x00, b"")).hex() == "6982"  # session over


def test_bank_card_on_scp02_with_encrypted_dgis():
    card = new_card("scp02-emv")
    card.power_on()
    kdd = card.identity.kdd
    keys = [tdes(TEST_KEY, kdd[4:10] + bytes([0xF0, k]) + kdd[4:10] + bytes([0x0F, k])) for k in (1, 2, 3)]
    host = Host(card, *keys, scp=2, i=0x15).open(C_MAC | C_DEC)
    holder = gp.tlv(0x5F20, b"A. CARDHOLDER") + gp.tlv(0x5F24, bytes.fromhex("291231"))
    pan = host.encrypt(pad(gp.tlv(0x5A, bytes.fromhex(PAN)), 8))
    key = host.encrypt(pad(CARD_KEY, 8))
    blocks = [(0x08, gp.dgi(0x0101, holder)), (0xE8, gp.dgi(0x8101, pan) + gp.dgi(0x8000, key))]
    assert _install_and_personalize(host, BANK_ELF, BANK_MOD, BANK, blocks) == [0x9000, 0x9000]
    assert card.transmit(gp.select(BANK))[-2:].hex() == "9000"
    record = card.transmit(bytes.fromhex("00B2010C00"))
    assert record[-2:].hex() == "9000"
    assert gp.tlv(0xDF10, b"************0119") in record and b"A. CARDHOLDER" in record
    assert bytes.fromhex(PAN) not in record and PAN.encode() not in record
    assert card.transmit(bytes.fromhex("00B2020C00")).hex() == "6a83"
    challenge = bytes(range(8))
    assert card.transmit(gp.apdu(0, 0x88, 0, 0, challenge, 0))[:-2] == cmac(CARD_KEY, challenge)[:8]
    assert card.transmit(gp.apdu(0, 0x88, 0, 0, b"\x01", 0)).hex() == "6700"


@pytest.mark.parametrize("pan", ["12345", "47617390010101199999"])
def test_bank_card_rejects_bad_pan(card, pan):
    host = Host(card, TEST_KEY).open(C_MAC | C_DEC)
    value = host.encrypt(pad(gp.tlv(0x5A, bytes.fromhex(pan.ljust(len(pan) + len(pan) % 2, "F"))), 16))
    sws = _install_and_personalize(host, BANK_ELF, BANK_MOD, BANK, [(0x68, gp.dgi(0x8101, value))])
    assert sws == [0x6A80]
