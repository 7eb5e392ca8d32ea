"""`cardsim.vpcd.serve` against an in-test stand-in for pcscd's vpcd driver (the reader side of the socket).

The end-to-end path through the real pcscd is in test_pcsc.py; this file checks the protocol details that
pcscd does not let us provoke: back-off before the reader exists, reconnection, unknown control bytes.
"""

from __future__ import annotations

import socket
import threading

import pytest

from cardsim.vpcd import Control, VpcdProtocolError, serve
from tests.tsm_core.cards import ATR, MiniCard


def _message(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def _read(conn: socket.socket) -> bytes:
    header = conn.recv(2, socket.MSG_WAITALL)
    length = int.from_bytes(header, "big")
    return conn.recv(length, socket.MSG_WAITALL)


class _Runner:
    def __init__(self, port: int) -> None:
        self.card = MiniCard()
        self.stop = threading.Event()
        self.changes: list[int] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(port,), daemon=True)
        self.thread.start()

    def _run(self, port: int) -> None:
        try:
            serve(self.card, port=port, on_change=lambda: self.changes.append(1), stop=self.stop)
        except VpcdProtocolError as exc:
            self.error = exc

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listen(port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(10)
    return server


def test_backoff_then_protocol_then_reconnect_then_stop(free_port):
    runner = _Runner(free_port)  # nothing listens yet: serve must keep retrying
    try:
        with _listen(free_port) as server:
            conn, _ = server.accept()
            with conn:
                conn.sendall(_message(bytes((Control.GET_ATR,))))
                assert _read(conn) == ATR
                conn.sendall(_message(bytes((Control.POWER_ON,))))  # no answer expected
                conn.sendall(_message(bytes.fromhex("0001000002ABCD")))
                assert _read(conn) == bytes.fromhex("ABCD9000")
                conn.sendall(_message(bytes((Control.POWER_OFF,))) + _message(bytes((Control.RESET,))))
                conn.sendall(_message(bytes((Control.GET_ATR,))))
                assert _read(conn) == ATR
            assert runner.card.resets == 3  # first GET ATR, POWER ON, RESET
            assert runner.changes == [1]
            conn, _ = server.accept()  # pcscd went away and came back: serve reconnects
            with conn:
                conn.sendall(_message(bytes.fromhex("00A4040000")))
                assert _read(conn) == bytes.fromhex("9000")
                runner.finish()
                assert conn.recv(1) == b""  # card pulled out: the socket is closed
    finally:
        runner.finish()
    assert runner.error is None


def test_unknown_control_byte_is_a_protocol_error(free_port):
    with _listen(free_port) as server:
        runner = _Runner(free_port)
        conn, _ = server.accept()
        with conn:
            conn.sendall(_message(b"\x07"))
            runner.thread.join(timeout=5)
    runner.finish()
    assert isinstance(runner.error, VpcdProtocolError)
    assert runner.error.code == "vpcd_protocol"
