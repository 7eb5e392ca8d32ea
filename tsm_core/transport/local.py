"""The in-process transport: the card simulator called directly, no reader, no I/O."""

from __future__ import annotations

from tsm_core.transport.base import CardLike, ContextManagedTransport, exchange
from tsm_core.transport.errors import NotConnected


class LocalTransport(ContextManagedTransport):
    """Drive a `CardLike` object (`cardsim.card.Card`) in the same process."""

    def __init__(self, card: CardLike) -> None:
        self._card = card
        self._connected = False

    def connect(self) -> bytes:
        """Power the card on (a cold reset of its volatile state) and return the ATR."""
        self.atr = self._card.power_on()
        self._connected = True
        return self.atr

    def transmit(self, apdu: bytes) -> bytes:
        """One C-APDU to the card, with '61XX'/'6CXX' resolved like a reader driver would."""
        if not self._connected:
            raise NotConnected("local transport: connect() first")
        return exchange(self._card.transmit, apdu)

    def close(self) -> None:
        """Forget the connection; the card object keeps its persistent state."""
        self._connected = False
