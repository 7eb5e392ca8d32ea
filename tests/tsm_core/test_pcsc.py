"""The PC/SC transport end to end: real pcscd + vsmartcard vpcd + pyscard + `cardsim.vpcd.serve`."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.tsm_core.cards import ATR, CHAINED, ISD_STATUS
from tests.tsm_core.conftest import EMPTY_READER, READER
from tsm_core.gp import commands, getstatus
from tsm_core.transport.errors import CardRemoved, NoCard, NoReader, NotConnected
from tsm_core.transport.pcsc import PcscTransport, list_readers, select_reader

pytestmark = pytest.mark.pcsc


def test_connect_returns_atr(served_card):
    with PcscTransport(READER) as transport:
        assert transport.atr == ATR
        assert transport.reader_name == READER
    assert served_card.card.resets >= 1


def test_ambiguous_substring_is_no_reader(pcscd):
    with pytest.raises(NoReader, match="several readers"):
        PcscTransport("Virtual PCD").connect()


def test_transmit_parses(served_card):
    apdu = commands.get_status(getstatus.StatusSubset.ISD, le=None).to_bytes()
    with PcscTransport(0) as transport:
        response = transport.transmit(apdu)
    assert response == ISD_STATUS + b"\x90\x00"
    (isd,) = getstatus.parse_tlv(getstatus.StatusSubset.ISD, response[:-2])
    assert isd.state is getstatus.CardLifeCycle.INITIALIZED
    assert served_card.card.apdus[-1] == apdu
    assert served_card.changes[-1] == len(served_card.card.apdus)


def test_get_response_and_wrong_le(served_card):
    with PcscTransport(READER) as transport:
        assert transport.transmit(bytes.fromhex("00020000")) == CHAINED + b"\x90\x00"
        assert transport.transmit(bytes.fromhex("0003000000")) == bytes.fromhex("CAFEBABE9000")


def test_no_reader(pcscd):
    with pytest.raises(NoReader) as caught:
        PcscTransport("No Such Reader 42").connect()
    assert caught.value.code == "no_reader"
    with pytest.raises(NoReader):
        PcscTransport(len(list_readers())).connect()


def test_no_card(pcscd):
    with pytest.raises(NoCard) as caught:
        PcscTransport(EMPTY_READER).connect()
    assert caught.value.code == "no_card"


def test_card_removed(served_card):
    transport = PcscTransport(READER)
    transport.connect()
    try:
        assert transport.transmit(bytes.fromhex("0001000002ABCD")) == bytes.fromhex("ABCD9000")
        served_card.remove()
        with pytest.raises(CardRemoved) as caught:
            transport.transmit(bytes.fromhex("00A4040000"))
        assert caught.value.code == "card_removed"
    finally:
        transport.close()
    with pytest.raises(NotConnected):
        transport.transmit(bytes.fromhex("00A4040000"))


def test_select_reader_rules():
    readers = ["Virtual PCD 00 00", "Virtual PCD 00 01", "ACME Reader"]
    assert select_reader(readers, 1) == "Virtual PCD 00 01"
    assert select_reader(readers, "ACME") == "ACME Reader"
    assert select_reader(readers, "Virtual PCD 00 00") == "Virtual PCD 00 00"
    for bad in (3, -1, "Virtual", "nope"):
        with pytest.raises(NoReader):
            select_reader(readers, bad)


@pytest.mark.skipif(shutil.which("opensc-tool") is None, reason="opensc-tool not installed")
def test_opensc_tool_sees_the_card(served_card):
    listing = subprocess.run(["opensc-tool", "-l"], capture_output=True, text=True, timeout=30, check=True)
    line = next(line for line in listing.stdout.splitlines() if READER in line)
    assert "Yes" in line
    atr = subprocess.run(["opensc-tool", "-r", "0", "-a"], capture_output=True, text=True, timeout=30)
    assert ATR.hex(":") in atr.stdout.lower()


@pytest.mark.skipif(shutil.which("pcsc_scan") is None, reason="pcsc_scan not installed (pcsc-tools)")
def test_pcsc_scan_lists_the_reader(served_card):
    listing = subprocess.run(["pcsc_scan", "-r"], capture_output=True, text=True, timeout=30, check=True)
    assert READER in listing.stdout
