"""PC/SC transport through pcscd with pyscard's thin `smartcard.scard` layer (PC/SC Workgroup Part 5).

The low-level API is used rather than pyscard's object layer: every call returns the PC/SC result code, which
maps one-to-one onto our typed errors, and a transmit costs one C call. A reader is chosen by name substring
("Virtual PCD 00 00", "Virtual PCD") or by its index in `list_readers()`.
"""

from __future__ import annotations

from typing import Final

from smartcard import scard

from tsm_core.transport.base import ContextManagedTransport, exchange
from tsm_core.transport.errors import (
    CardRemoved,
    NoCard,
    NoReader,
    NotConnected,
    PcscUnavailable,
    TransmitFailed,
    TransportError,
)

_ERRORS: Final[dict[int, type[TransportError]]] = {
    scard.SCARD_E_NO_SERVICE: PcscUnavailable,
    scard.SCARD_E_SERVICE_STOPPED: PcscUnavailable,
    scard.SCARD_E_NO_READERS_AVAILABLE: NoReader,
    scard.SCARD_E_UNKNOWN_READER: NoReader,
    scard.SCARD_E_READER_UNAVAILABLE: NoReader,
    scard.SCARD_E_NO_SMARTCARD: NoCard,
    scard.SCARD_W_REMOVED_CARD: CardRemoved,
    scard.SCARD_W_RESET_CARD: CardRemoved,
    scard.SCARD_W_UNPOWERED_CARD: CardRemoved,
    scard.SCARD_W_UNRESPONSIVE_CARD: CardRemoved,
    scard.SCARD_E_INVALID_HANDLE: CardRemoved,
}
"""PC/SC result codes -> typed errors; any other code becomes `TransmitFailed`."""

_PROTOCOLS: Final = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_PCI: Final[dict[int, int]] = {scard.SCARD_PROTOCOL_T0: scard.SCARD_PCI_T0, scard.SCARD_PROTOCOL_T1: scard.SCARD_PCI_T1}


def _raise(hresult: int, what: str, default: type[TransportError] = TransmitFailed) -> None:
    if hresult != scard.SCARD_S_SUCCESS:
        message = scard.SCardGetErrorMessage(hresult)
        raise _ERRORS.get(hresult, default)(f"{what}: {message} (0x{hresult & 0xFFFFFFFF:08X})")


def _establish() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _raise(hresult, "PC/SC context", PcscUnavailable)
    return int(context)


def _readers(context: int) -> list[str]:
    hresult, readers = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    _raise(hresult, "list readers", PcscUnavailable)
    return [str(reader) for reader in readers]


def list_readers() -> list[str]:
    """The names of the readers pcscd knows, in its order (indexes for `PcscTransport`)."""
    context = _establish()
    try:
        return _readers(context)
    finally:
        scard.SCardReleaseContext(context)


def select_reader(readers: list[str], reader: str | int) -> str:
    """The reader named by index, exact name or unique name substring; `NoReader` otherwise."""
    if isinstance(reader, int):
        if 0 <= reader < len(readers):
            return readers[reader]
        raise NoReader(f"no reader with index {reader} ({len(readers)} readers present)")
    if reader in readers:
        return reader
    matches = [name for name in readers if reader in name]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoReader(f"no reader matches {reader!r}; present: {readers or 'none'}")
    raise NoReader(f"{reader!r} matches several readers: {matches}; be more specific")


class PcscTransport(ContextManagedTransport):
    """One card in one PC/SC reader, shared mode, T=0 or T=1."""

    def __init__(self, reader: str | int) -> None:
        self._reader = reader
        self._context: int | None = None
        self._card: int | None = None
        self._pci = scard.SCARD_PCI_T1
        self.reader_name = ""

    def connect(self) -> bytes:
        """Resolve the reader, connect to its card and return the ATR."""
        self.close()
        self._context = _establish()
        try:
            self.reader_name = select_reader(_readers(self._context), self._reader)
            hresult, card, protocol = scard.SCardConnect(
                self._context, self.reader_name, scard.SCARD_SHARE_SHARED, _PROTOCOLS
            )
            _raise(hresult, f"connect to {self.reader_name!r}", NoCard)
            self._card = int(card)
            self._pci = _PCI.get(protocol, scard.SCARD_PCI_T1)
            hresult, _name, _state, _protocol, atr = scard.SCardStatus(self._card)
            _raise(hresult, f"status of {self.reader_name!r}")
        except TransportError:
            self.close()
            raise
        self.atr = bytes(atr)
        return self.atr

    def _raw(self, apdu: bytes) -> bytes:
        if self._card is None:
            raise NotConnected("PC/SC transport: connect() first")
        hresult, response = scard.SCardTransmit(self._card, self._pci, list(apdu))
        _raise(hresult, f"transmit to {self.reader_name!r}")
        return bytes(response)

    def transmit(self, apdu: bytes) -> bytes:
        """One C-APDU; '61XX' and '6CXX' are resolved here (the reader may be T=0)."""
        return exchange(self._raw, apdu)

    def close(self) -> None:
        """Disconnect (leaving the card powered) and release the PC/SC context; idempotent."""
        if self._card is not None:
            scard.SCardDisconnect(self._card, scard.SCARD_LEAVE_CARD)
            self._card = None
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None
