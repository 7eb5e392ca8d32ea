"""Card and application life cycles through SET STATUS (GPCS 2.3.1 5.1, 5.3, 11.10)."""

from __future__ import annotations

from cardsim.lifecycle import CardLifeCycle
from cardsim.state import new_card
from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY
from tests.cardsim.host import Host

ELF = bytes.fromhex("F0000000010101")
MOD = bytes.fromhex("F000000001010101")
APP = bytes.fromhex("F00000000101010102")
SSD = bytes.fromhex("D2760001239900")


def test_forward_transitions_from_op_ready():
    card = new_card("scp02-i55")
    card.power_on()
    host = Host(card, TEST_KEY, scp=2).open()
    assert host.send(gp.set_status(0x80, 0x33))[1] == 0x6A86
    assert host.send(gp.set_status(0x80, 0x07))[1] == 0x9000
    assert host.send(gp.set_status(0x80, 0x01))[1] == 0x6985  # backwards
    assert host.send(gp.set_status(0x80, 0x07))[1] == 0x6985  # no transition to itself
    assert host.send(gp.set_status(0x80, 0x0F))[1] == 0x9000
    assert card.life_cycle is CardLifeCycle.SECURED


def test_lock_unlock_terminate(card, host):
    assert host.send(gp.install(0x0C, gp.install_data(ELF, MOD, APP)))[1] == 0x9000
    assert host.send(gp.set_status(0x80, 0x07))[1] == 0x6985  # SECURED → INITIALIZED
    assert host.send(gp.set_status(0x80, 0x7F))[1] == 0x9000
    assert card.transmit(gp.select(APP)).hex() == "6a82"
    select_isd = card.transmit(gp.select(card.registry.isd_aid))
    assert select_isd[-2:].hex() == "6283" and select_isd[0] == 0x6F
    host = Host(card, TEST_KEY).open()
    assert host.send(gp.install(0x0C, gp.install_data(ELF, MOD, APP + b"\x01")))[1] == 0x6985
    assert host.send(gp.get_status(0x80))[1] == 0x9000
    assert host.send(gp.set_status(0x80, 0x0F))[1] == 0x9000
    assert card.transmit(gp.select(APP))[-2:].hex() == "9000"
    card.transmit(gp.select(card.registry.isd_aid))
    host = Host(card, TEST_KEY).open()
    assert host.send(gp.set_status(0x80, 0xFF))[1] == 0x9000
    assert card.life_cycle is CardLifeCycle.TERMINATED
    assert card.transmit(bytes.fromhex("80CA9F7F00"))[-2:].hex() == "9000"
    assert card.transmit(bytes.fromhex("8050000008") + bytes(8)).hex() == "6a81"
    assert card.transmit(gp.select(APP)).hex() == "6a82"


def test_application_states_and_sd_with_its_applications(card, host):
    ssd_data = gp.install_data(ELF, MOD, SSD, b"\x80\x40\x00", gp.tlv(0xC9, b"") + gp.system_params(4000, 300))
    assert host.send(gp.install(0x0C, ssd_data))[1] == 0x9000
    card.transmit(gp.select(SSD))
    ssd = Host(card, TEST_KEY).open()
    assert ssd.send(gp.install(0x0C, gp.install_data(ELF, MOD, APP)))[1] == 0x9000
    assert ssd.send(gp.set_status(0x40, 0x0F, APP))[1] == 0x9000  # application-specific state
    assert ssd.send(gp.set_status(0x40, 0x07, APP))[1] == 0x6985  # backwards
    assert ssd.send(gp.set_status(0x40, 0x7F, APP))[1] == 0x9000
    assert ssd.send(gp.set_status(0x80, 0x7F))[1] == 0x6982  # no Card Lock privilege
    assert ssd.send(gp.set_status(0x40, 0x80, card.registry.isd_aid))[1] == 0x6A88
    big = gp.install_data(ELF, MOD, APP + b"\x01", b"\x00", gp.tlv(0xC9, b"") + gp.system_params(3900, 10))
    assert ssd.send(gp.install(0x0C, big))[1] == 0x6A84  # beyond the SSD's quota
    card.transmit(gp.select(card.registry.isd_aid))
    host = Host(card, TEST_KEY).open()
    assert host.send(gp.set_status(0x60, 0x80, SSD))[1] == 0x9000
    assert card.registry.apps[SSD].life_cycle & 0x80 and card.registry.apps[APP].life_cycle & 0x80
    assert card.transmit(gp.select(SSD)).hex() == "6999"
    assert host.send(gp.set_status(0x60, 0x80, APP))[1] == 0x6A80  # not an SD
    assert host.send(gp.set_status(0x20, 0x80, APP))[1] == 0x6A86
