"""A card held by the test process and served over a local TCP socket to a job run in another process: the card
outlives a worker killed with SIGKILL, as a card in a reader outlives a crashed TSM.

Wire: each message is a 2-byte big-endian length and a payload. The worker sends `01` + its PID to connect (the
card powers on and answers its ATR), then `00` + a C-APDU for each command (the card answers the R-APDU). The
server can kill the worker once the card has processed its k-th command, before the answer leaves (the worker
never learns it), and can hold the worker's k-th command until the test releases it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import struct
import threading
from dataclasses import dataclass, field

from storage.config import Settings
from storage.session import make_engine, session_factory
from tests.tsm_core.lab import OFFICER, Wire
from tsm_core.context import Tsm
from tsm_core.jobs import engine
from tsm_core.transport.base import ContextManagedTransport, exchange
from tsm_core.transport.errors import CardRemoved, NotConnected

CONNECT, APDU = 0x01, 0x00
LENGTH = struct.Struct(">H")
WORKERS = multiprocessing.get_context("forkserver")
"""Worker processes forked from a server that has imported this module but loaded no PKCS#11 library: each
opens its own HSM session, as a worker process does."""
WORKERS.set_forkserver_preload([__name__])


def _send(conn: socket.socket, payload: bytes) -> None:
    conn.sendall(LENGTH.pack(len(payload)) + payload)


def _exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = conn.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def _receive(conn: socket.socket) -> bytes | None:
    """One message, or None when the peer went away."""
    header = _exactly(conn, LENGTH.size)
    return None if header is None else _exactly(conn, LENGTH.unpack(header)[0])


@dataclass
class CardServer:
    """Serves `wire` (a recording card) to one worker connection in a thread."""

    wire: Wire
    kill_at: int | None = None
    hold_at: int | None = None
    processed: int = 0
    worker: int = 0
    killed: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="card-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        self.listener.close()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while (message := _receive(conn)) is not None:
                if message[0] == CONNECT:
                    self.worker = int(message[1:])
                    _send(conn, self.wire.power_on())
                    continue
                if self.processed + 1 == self.hold_at:
                    self.holding.set()
                    self.release.wait()
                answer = self.wire.transmit(message[1:])
                self.processed += 1
                if self.processed == self.kill_at:
                    os.kill(self.worker, signal.SIGKILL)
                    self.killed.set()
                    return
                _send(conn, answer)

    def join(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the card server did not end"


class SocketTransport(ContextManagedTransport):
    """The worker's side: the card behind a `CardServer`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def connect(self) -> bytes:
        self.sock = socket.create_connection(("127.0.0.1", self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._exchange(bytes((CONNECT,)) + str(os.getpid()).encode())

    def transmit(self, apdu: bytes) -> bytes:
        return exchange(lambda raw: self._exchange(bytes((APDU,)) + raw), apdu)

    def _exchange(self, message: bytes) -> bytes:
        if self.sock is None:
            raise NotConnected("socket transport: connect() first")
        _send(self.sock, message)
        answer = _receive(self.sock)
        if answer is None:
            raise CardRemoved("the card server went away")
        return answer

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def run_job(settings: Settings, job_id: str, port: int, perso: dict[int, bytes] | None) -> None:
    """A worker process: open the key service and the database of `settings`, run the job against the served
    card."""
    from keyservice.runtime import open_service

    tsm = Tsm(session_factory(make_engine(settings.database_url, settings.database_busy_timeout)),
              open_service(settings), OFFICER)
    with SocketTransport(port) as transport:
        engine.run(tsm, job_id, transport, perso=perso)
