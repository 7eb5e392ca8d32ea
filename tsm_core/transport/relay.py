"""The phone relay path's TSM side: `RelayTransport`, a `Transport` whose card is an SE behind a phone app
(docs/relay.md). Batches go through a `RelayStore` (the database), so the job and the web worker that talks
to the phone may be different processes.

OMAPI forbids SELECT by DF name through `transmit` (Open Mobile API 3.3 §6.5): the phone selects by opening a
channel. So `transmit_batch` cuts its APDUs before each SELECT by AID (ISO 7816-4 §11.2.2: CLA 00 on the
basic channel, INS A4, P1 04, P2 00 "first or only occurrence") and sends each piece as a batch whose target
is that AID; the phone's SELECT response stands for the SELECT's R-APDU. Other SELECTs cannot be relayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from globalplatform.apdu import HEADER_LEN, Ins
from tsm_core.transport.base import ContextManagedTransport
from tsm_core.transport.errors import RelayProtocolError
from tsm_core.transport.relay_store import RelayStore
from tsm_core.transport.relay_wire import FAILURES, GOES_ON, MAX_AID_LEN, Command, PhoneStatus

DEFAULT_ANSWER_TIMEOUT: Final = 30.0
"""Seconds the phone has to answer a batch (and to make its first request): the `relay_timeout` setting."""
BY_NAME: Final = 0x04
FIRST_OR_ONLY: Final = 0x00
LC_OFFSET: Final = HEADER_LEN


def selected_aid(apdu: bytes) -> bytes | None:
    """The AID a SELECT by name selects (b"" for the default applet), or None for any other command;
    `RelayProtocolError` for a SELECT the phone cannot make (another P1/P2, a logical channel, bad length)."""
    if len(apdu) < HEADER_LEN or apdu[1] != Ins.SELECT:
        return None
    cla, _, p1, p2 = apdu[:HEADER_LEN]
    if cla != 0 or p1 != BY_NAME or p2 != FIRST_OR_ONLY:
        raise RelayProtocolError(f"cannot relay SELECT {apdu[:HEADER_LEN].hex().upper()}: a phone (OMAPI) only "
                                 "opens a channel to an AID (00 A4 04 00)")
    if len(apdu) <= LC_OFFSET + 1:  # case 1 or 2: no AID, the default applet
        return b""
    lc = apdu[LC_OFFSET]
    aid = apdu[LC_OFFSET + 1:LC_OFFSET + 1 + lc]
    if lc > MAX_AID_LEN or len(aid) != lc:
        raise RelayProtocolError("cannot relay a SELECT whose AID is not 0 to 16 bytes")
    return aid


def pieces(apdus: Sequence[bytes]) -> list[tuple[bytes | None, list[bytes]]]:
    """`apdus` cut before each SELECT by AID: (target AID or None, the commands after it)."""
    cut: list[tuple[bytes | None, list[bytes]]] = []
    for apdu in apdus:
        aid = selected_aid(apdu)
        if aid is not None or not cut:
            cut.append((aid, []))
        if aid is None:
            cut[-1][1].append(apdu)
    return cut


class RelayTransport(ContextManagedTransport):
    """`Transport` over the relay session `session_id`, bound to `se_id`.

    `connect()` checks the session and returns the ATR the phone last reported (empty before its first report:
    the phone owns the card connection). `close()` closes the session.
    """

    def __init__(self, store: RelayStore, session_id: str, se_id: str, *,
                 answer_timeout: float = DEFAULT_ANSWER_TIMEOUT, stop_on_error: bool = True) -> None:
        self._store = store
        self._session_id = session_id
        self._se_id = se_id
        self._answer_timeout = answer_timeout
        self._expect = GOES_ON if stop_on_error else ()

    def connect(self) -> bytes:
        """Check the session is live and bound to this SE; return the last ATR reported by the phone."""
        self._store.session(self._session_id, self._se_id)
        self.atr = self._store.atr(self._session_id)
        return self.atr

    def transmit_batch(self, apdus: Sequence[bytes]) -> list[bytes]:
        """Send several C-APDUs, as few batches as OMAPI allows (one per SELECT by AID); fewer responses come
        back if the phone stopped at a status word not expected (with `stop_on_error`: an error, ISO 7816-4
        §5.6). A failure the phone reports raises its typed error (`NoCard`, `RelayAccessDenied`, ...)."""
        responses: list[bytes] = []
        for aid, commands in pieces(apdus):
            batch = self._store.submit(self._session_id, self._se_id, aid,
                                       [Command(apdu, self._expect) for apdu in commands])
            report = self._store.wait(self._session_id, batch, self._answer_timeout)
            self.atr = self._store.atr(self._session_id) or self.atr
            if report.status != PhoneStatus.PROCESSED:
                raise FAILURES[report.status](f"the phone reported {report.status}: {report.detail or 'no detail'}")
            responses += report.responses
            if len(report.responses) < len(commands) + (aid is not None):
                break  # stopped at an unexpected status word
        return responses

    def transmit(self, apdu: bytes) -> bytes:
        """One C-APDU as a batch of one."""
        (response,) = self.transmit_batch([apdu])
        return response

    def close(self) -> None:
        """Close the session: the phone app stops."""
        self._store.close_session(self._session_id)
