"""State files (round trip, atomic write, typed errors) and the `tsm cardsim` commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cardsim.errors import StateFileError
from cardsim.state import dumps, load_card, new_card, save_card
from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY
from tests.cardsim.host import C_DEC, C_MAC, Host
from tsm.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_round_trip_keeps_everything(tmp_path, card):
    host = Host(card, TEST_KEY).open(C_MAC | C_DEC)
    aid = bytes.fromhex("F00000000101010103")
    assert host.send(gp.install(0x0C, gp.install_data(bytes.fromhex("F0000000010101"), aid[:8], aid)))[1] == 0x9000
    new_keys = bytes([0x30]) + b"".join(host.key_component(bytes([k]) * 16) for k in (1, 2, 3))
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x81, new_keys))[1] == 0x9000
    path = tmp_path / "card.json"
    save_card(card, path)
    again = load_card(path)
    assert dumps(again) == dumps(card)
    again.power_on()
    Host(again, *(bytes([k]) * 16 for k in (1, 2, 3))).open(kvn=0x30)
    assert again.registry.isd.sd.sequence_counter == card.registry.isd.sd.sequence_counter + 1
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]  # no temporary file left behind


@pytest.mark.parametrize("content", ["", "{", '{"format": "other"}', '{"format": "cardsim-state/1"}'])
def test_bad_state_files(tmp_path, content):
    path = tmp_path / "card.json"
    path.write_text(content)
    with pytest.raises(StateFileError):
        load_card(path)
    with pytest.raises(StateFileError):
        load_card(tmp_path / "missing.json")


def test_a_binary_file_is_not_a_state_file(tmp_path):
    """A CAP file (`tsm cardsim cap`) given as --card: not UTF-8, so a typed error, not a UnicodeDecodeError."""
    path = tmp_path / "transit.cap"
    path.write_bytes(b"PK\x03\x04\x14\x00\x08\x00\x08\x00\x00\x00!\x00\x8f\xff")
    with pytest.raises(StateFileError, match="not UTF-8"):
        load_card(path)


def test_save_into_missing_directory_is_typed(tmp_path, card):
    with pytest.raises(StateFileError):
        save_card(card, tmp_path / "no" / "such" / "card.json")


def _run(*args: str):
    return CliRunner().invoke(main, ["cardsim", *args])


def test_cli_new_show_profiles(tmp_path):
    result = _run("profiles")
    assert result.exit_code == 0 and "scp02-i55" in result.output and "default" in result.output
    out = tmp_path / "c.json"
    result = _run("new", "--profile", "scp02-emv", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["profile"] == "scp02-emv"
    result = _run("show", "--card", str(out))
    assert result.exit_code == 0 and "SCP02 i=15" in result.output and "SECURED" in result.output
    assert "F0000000010101" in result.output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["new", "--profile", "nope", "--out", "x.json"], "cardsim_profile_not_found"),
        (["show", "--card", "/nonexistent/card.json"], "cardsim_state_file"),
        (["serve", "--card", "/nonexistent/card.json"], "cardsim_state_file"),
        (["serve", "--card", "c.json", "--vpcd", "localhost"], "usage"),
        (["serve", "--card", "c.json", "--vpcd", "h:99999"], "usage"),
        (["serve", "--card", "/nonexistent/card.json", "--vpcd"], "cardsim_state_file"),
        (["serve", "--vpcd", "--card", "/nonexistent/card.json"], "cardsim_state_file"),
        (["initialize-update", "--card", "/nonexistent/card.json", "--host-challenge", "00" * 8], "cardsim_state_file"),
    ],
)
def test_cli_errors_are_one_line(args, code):
    result = _run(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error[{code}]:") and "Traceback" not in result.output


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def _recv(conn: socket.socket) -> bytes:
    size = int.from_bytes(conn.recv(2), "big")
    data = b""
    while len(data) < size:
        data += conn.recv(size - len(data))
    return data


def test_serve_persists_each_change_and_survives_a_kill(tmp_path):
    """A fake vpcd: power on, INITIALIZE UPDATE (advances the SCP03 counter), then SIGKILL the server."""
    path = tmp_path / "card.json"
    save_card(new_card(None), path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsm", "cardsim", "serve", "--card", str(path), "--vpcd", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listener.settimeout(20)
        conn, _ = listener.accept()
        with conn:
            conn.sendall(_frame(b"\x01"))
            conn.sendall(_frame(b"\x04"))
            assert _recv(conn)[:1] == b"\x3b"
            conn.sendall(_frame(bytes.fromhex("8050000008") + bytes(8)))
            response = _recv(conn)
            assert response[-2:] == b"\x90\x00" and response[29:32] == b"\x00\x00\x01"
            deadline = time.monotonic() + 10
            while load_card(path).registry.isd.sd.sequence_counter != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert load_card(path).registry.isd.sd.sequence_counter == 1
