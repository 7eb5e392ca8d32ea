"""Make a virtual card appear in pcscd's "Virtual PCD" reader by speaking the vsmartcard vpcd protocol.

The card connects to pcscd's vpcd driver (TCP 127.0.0.1:35963 for reader "Virtual PCD 00 00", 35964 for
"... 00 01"). Every message in both directions is a 2-byte big-endian length followed by the payload. A
one-byte payload from the reader is a control code (`Control`); anything longer is a C-APDU, answered with
the R-APDU. Only a GET ATR request and a C-APDU are answered.

Latency: Debian's vpcd writes the length and the payload separately, so with delayed ACKs every APDU waits
for the peer's ACK timer (~40 ms). The card side sets TCP_NODELAY and re-arms TCP_QUICKACK before every
recv() (Linux resets it after each ACK), which brings a round trip well under a millisecond.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from enum import IntEnum, unique
from typing import Protocol

from cardsim.errors import CardSimError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
LENGTH_BYTES = 2
POLL_INTERVAL = 0.1
"""Seconds a blocking recv() waits before checking the stop event again."""
CONNECT_TIMEOUT = 2.0
BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 1.0
TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
"""Linux only; elsewhere delayed ACKs stay on (slower, still correct)."""


@unique
class Control(IntEnum):
    """One-byte messages from the vpcd driver (vsmartcard vpcd.h: VPCD_CTRL_*)."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


class VpcdProtocolError(CardSimError):
    """The vpcd driver sent something that is not part of the protocol."""

    code = "vpcd_protocol"


class VirtualCard(Protocol):
    """What `serve` needs from a card: `cardsim.card.Card` satisfies it."""

    def power_on(self) -> bytes:
        """Reset the card and return its ATR."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Process one C-APDU and return the R-APDU (data + SW1 SW2)."""
        ...


def _quickack(sock: socket.socket) -> None:
    if TCP_QUICKACK is not None:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)


def _recv_exact(sock: socket.socket, size: int, stop: threading.Event) -> bytes | None:
    """Read exactly `size` bytes; None when the peer closed the connection or `stop` is set."""
    buffer = bytearray()
    while len(buffer) < size:
        if stop.is_set():
            return None
        _quickack(sock)
        try:
            chunk = sock.recv(size - len(buffer))
        except TimeoutError:
            continue
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(LENGTH_BYTES, "big") + payload)


def _session(
    sock: socket.socket, card: VirtualCard, on_change: Callable[[], None] | None, stop: threading.Event
) -> None:
    """Serve one connection until pcscd closes it or `stop` is set."""
    atr: bytes | None = None
    while True:
        header = _recv_exact(sock, LENGTH_BYTES, stop)
        if header is None:
            return
        length = int.from_bytes(header, "big")
        payload = _recv_exact(sock, length, stop) if length else b""
        if payload is None:
            return
        if len(payload) > 1:
            _send(sock, card.transmit(payload))
            if on_change is not None:
                on_change()
            continue
        if not payload:
            raise VpcdProtocolError("empty message from vpcd")
        try:
            control = Control(payload[0])
        except ValueError:
            raise VpcdProtocolError(f"unknown vpcd control byte {payload[0]:02X}") from None
        if control in (Control.POWER_ON, Control.RESET):
            atr = card.power_on()
        elif control == Control.GET_ATR:
            if atr is None:
                atr = card.power_on()
            _send(sock, atr)


def serve(
    card: VirtualCard,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_change: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Insert `card` into pcscd's virtual reader and serve it until `stop` is set.

    Connects to the vpcd driver, reconnecting with exponential back-off while pcscd is not (yet) there or
    after it went away. Setting `stop` closes the connection, which pcscd reports as card removal.
    `on_change` is called after each C-APDU; the card's owner decides whether to persist its state.
    """
    stop = stop if stop is not None else threading.Event()
    backoff = BACKOFF_INITIAL
    while not stop.is_set():
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
        except OSError:
            stop.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            continue
        backoff = BACKOFF_INITIAL
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(POLL_INTERVAL)
            try:
                _session(sock, card, on_change, stop)
            except (ConnectionResetError, BrokenPipeError):
                continue
