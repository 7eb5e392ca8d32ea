"""The `Transport` seam: how the TSM moves APDU bytes to one card, whatever is in between.

Implementations: `local.LocalTransport` (in-process card simulator), `pcsc.PcscTransport` (a PC/SC reader via
pcscd), `relay.RelayTransport` (a phone app polling over HTTP). They only move bytes: secure messaging and
status-word interpretation happen above them. Errors are `tsm_core.transport.errors.TransportError`s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from globalplatform.apdu import SHORT_NE_MAX, SW_LEN, CommandApdu, ResponseApdu
from globalplatform.errors import ApduFormatError
from globalplatform.sw import Sw1
from tsm_core.gp.commands import get_response
from tsm_core.transport.errors import TransmitFailed

_CHAINING_SW1 = frozenset((Sw1.BYTES_REMAINING, Sw1.WRONG_LE))
MAX_GET_RESPONSE_ROUNDS = 256
"""Bound on chained '61XX' rounds (256 x 256 bytes is more than any extended response)."""


class Transport(Protocol):
    """A connection to one card. Used as a context manager: `with t: ...` connects and closes."""

    def connect(self) -> bytes:
        """Power up / connect to the card and return its ATR."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Send one C-APDU and return the complete R-APDU (data + SW1 SW2)."""
        ...

    def close(self) -> None:
        """Release the card; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class CardLike(Protocol):
    """An in-process card (e.g. `cardsim.card.Card`)."""

    def power_on(self) -> bytes:
        """Reset the card and return its ATR."""
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Process one C-APDU and return the R-APDU."""
        ...


class ContextManagedTransport(ABC):
    """Context-manager behaviour shared by the implementations: enter connects, exit closes."""

    atr: bytes = b""

    @abstractmethod
    def connect(self) -> bytes:
        """Connect and return the ATR."""

    @abstractmethod
    def transmit(self, apdu: bytes) -> bytes:
        """One C-APDU in, the complete R-APDU out."""

    @abstractmethod
    def close(self) -> None:
        """Release the card; idempotent."""

    def __enter__(self) -> Self:
        self.atr = self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def exchange(raw_transmit: Callable[[bytes], bytes], apdu: bytes) -> bytes:
    """Send `apdu`, resolving T=0 style status words (ISO 7816-4 §5.1.3, ISO 7816-3 §12.2):

    - '6CXX': the Le was wrong; resend the same command with Le = XX.
    - '61XX': XX more bytes are waiting; fetch them with GET RESPONSE, concatenating the data.
    """
    raw = raw_transmit(apdu)
    if len(raw) >= SW_LEN and raw[-SW_LEN] not in _CHAINING_SW1:
        return raw  # the common case: nothing to resolve
    response = _checked(raw)
    if response.sw1 == Sw1.WRONG_LE:
        try:
            command = CommandApdu.from_bytes(apdu)
        except ApduFormatError as exc:
            raise TransmitFailed(f"card asked to resend with Le={response.sw2}: {exc}") from exc
        resent = CommandApdu(
            command.cla, command.ins, command.p1, command.p2, command.data, response.sw2 or SHORT_NE_MAX
        )
        response = _checked(raw_transmit(resent.to_bytes()))
    data = bytearray(response.data)
    for _ in range(MAX_GET_RESPONSE_ROUNDS):
        if response.sw1 != Sw1.BYTES_REMAINING:
            return bytes(data) + response.sw.to_bytes(SW_LEN, "big")
        response = _checked(raw_transmit(get_response(response.sw2).to_bytes()))
        data += response.data
    raise TransmitFailed(f"card kept answering '61XX' after {MAX_GET_RESPONSE_ROUNDS} GET RESPONSE rounds")


def _checked(raw: bytes) -> ResponseApdu:
    try:
        return ResponseApdu.from_bytes(raw)
    except ApduFormatError as exc:
        raise TransmitFailed(f"malformed R-APDU {raw.hex().upper()}: {exc}") from exc
