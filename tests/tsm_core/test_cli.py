"""`tsm gp ...`, `tsm readers`, `tsm relay-client` through click's runner."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from keyservice.errors import InvalidInput
from tests.tsm_core.cards import ISD_STATUS
from tests.tsm_core.conftest import READER
from tests.tsm_core.relay_env import database, store_on
from tsm.commands.gp import gp_group
from tsm.commands.pcsc import readers_command, relay_client_command
from tsm_core.transport.errors import NoReader
from tsm_core.transport.relay import RelayTransport
from web.relay_server import serve_relay


def test_sw():
    result = CliRunner().invoke(gp_group, ["sw", "6A88"])
    assert result.exit_code == 0
    assert result.output.strip() == "6A88  checking error  Referenced data not found  (error code: card_not_found)"
    assert CliRunner().invoke(gp_group, ["sw", "XY"]).exit_code == 2


def test_tlv_tree():
    result = CliRunner().invoke(gp_group, ["tlv", "E3144F07A00000015100009F700107C50180EA028000"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "E3",
        "  4F A0000001510000",
        "  9F70 07",
        "  C5 80",
        "  EA",
        "    80 ",
    ]


def test_parse_status():
    result = CliRunner().invoke(gp_group, ["parse-status", "--subset", "isd", ISD_STATUS.hex()])
    assert result.exit_code == 0
    header, row = result.output.splitlines()
    assert header.split() == ["AID", "STATE", "PRIVILEGES", "MODULES"]
    assert row.startswith("A000000151000000  INITIALIZED  SECURITY_DOMAIN,CARD_LOCK,")
    legacy = ["parse-status", "--subset", "modules", "--legacy", "07A0000000620001010001 08A000000062000101"]
    assert CliRunner().invoke(gp_group, legacy).output.splitlines()[1].split() == [
        "A0000000620001", "LOADED", "-", "A000000062000101"]
    entries = json.loads(CliRunner().invoke(gp_group, [*legacy, "--json"]).output)
    assert entries == [{"aid": "A0000000620001", "state": "LOADED", "life_cycle": 1, "privileges": [],
                        "parent": None, "load_file": None, "version": None, "modules": ["A000000062000101"]}]


@pytest.mark.pcsc
def test_readers_and_send(served_card):
    readers = CliRunner().invoke(readers_command, [])
    assert readers.exit_code == 0
    assert readers.output.splitlines()[0].split() == ["INDEX", "NAME"]
    assert f"0      {READER}" in readers.output
    sent = CliRunner().invoke(gp_group, ["send", "--reader", "0", "80F28002024F00", "80FF0000"])
    assert sent.exit_code == 0, sent.output
    assert f"<< {ISD_STATUS.hex().upper()}9000  (Success)" in sent.output
    assert "<< 6D00  (Invalid instruction)" in sent.output
    missing = CliRunner().invoke(gp_group, ["send", "--reader", "Nope", "00A4040000"])
    assert isinstance(missing.exception, NoReader)


@pytest.mark.pcsc
def test_relay_client_command(served_card, tmp_path):
    store = store_on(next(database("sqlite", tmp_path)))
    session = store.open_session("se-cli")
    with serve_relay(store, "127.0.0.1", 0) as url:
        outcome = {}
        args = ["--url", url, "--session", session.session_id, "--reader", READER, "--poll-interval", "0.02"]
        thread = threading.Thread(target=lambda: outcome.update(result=CliRunner().invoke(relay_client_command, args)))
        thread.start()
        with RelayTransport(store, session.session_id, "se-cli", answer_timeout=10) as transport:
            assert transport.transmit(bytes.fromhex("0001000001AA")) == bytes.fromhex("AA9000")
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert outcome["result"].exit_code == 0
    assert outcome["result"].output.strip() == "session closed after 1 batches"


def test_relay_client_needs_the_devices_key_for_a_device_session(tmp_path):
    """A session a phone opened over the API answers nothing without that device's key: no key, an unknown key
    (both before any APDU reaches a reader) and an unreadable key file are each one typed error."""
    store = store_on(next(database("sqlite", tmp_path)))
    session = store.open_session("se-cli", device_id="device:se-cli")
    (tmp_path / "wrong.key").write_text("tsm_000000000000_not-a-key\n")
    (tmp_path / "empty.key").write_text("")
    with serve_relay(store, "127.0.0.1", 0) as url:
        base = ["--url", url, "--session", session.session_id, "--reader", READER, "--retry-window", "0.1"]
        for extra, code in (([], "relay_unauthenticated"), (["--api-key-file", str(tmp_path / "wrong.key")],
                                                      "relay_unauthenticated")):
            result = CliRunner().invoke(relay_client_command, [*base, *extra])
            assert getattr(result.exception, "code", None) == code, (extra, result.output, result.exception)
        empty = CliRunner().invoke(relay_client_command, [*base, "--api-key-file", str(tmp_path / "empty.key")])
        assert isinstance(empty.exception, InvalidInput) and "empty" in str(empty.exception)
