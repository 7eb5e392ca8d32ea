"""A job's line to its card: every command logged (header, data length, status word, time; never the data),
the security domain to talk to selected by AID (GPCS 2.3.1 §11.9), and secure channels opened with the key
sets the registry names, through the key service.

Only what the card answers is relied on: status words, the SD's FCI, INITIALIZE UPDATE's key information.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from globalplatform import sw
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.scp import SecurityLevel
from keyservice.channels import ChannelSession, ChannelSpec, DivMethod
from keyservice.policy import Purpose
from tsm_core.context import Tsm
from tsm_core.flows.channel import authenticate, check
from tsm_core.gp import commands
from tsm_core.registry.views import KeySetView
from tsm_core.transport.base import Transport

CARD_LOCKED: Final = 0x6283
HEADER: Final = 4


@dataclass(frozen=True)
class LoggedApdu:
    """One command of a job as the APDU log keeps it."""

    step: str
    header: str
    lc: int
    sw: str
    micros: int
    at: datetime


class LoggedTransport:
    """A `Transport` that records each exchange's header and status word (no data) for the job's APDU log."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.step = ""
        self.entries: list[LoggedApdu] = []
        self.sent = 0
        """Commands sent in this run."""

    def transmit(self, apdu: bytes) -> bytes:
        start = time.perf_counter_ns()
        self.sent += 1
        response = self.inner.transmit(apdu)
        micros = (time.perf_counter_ns() - start) // 1000
        lc = apdu[HEADER] if len(apdu) > HEADER + 1 else 0
        self.entries.append(LoggedApdu(self.step, apdu[:HEADER].hex().upper(), lc, response[-2:].hex().upper(),
                                       micros, datetime.now(UTC)))
        return response

    def take(self) -> list[LoggedApdu]:
        """The entries logged since the last call."""
        entries, self.entries = self.entries, []
        return entries

    def connect(self) -> bytes:
        return self.inner.connect()

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> LoggedTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spec_for(key_set: KeySetView, level: int, i: int | None, aid: bytes) -> ChannelSpec:
    """The key-service channel spec for a registry key set of the SD `aid`."""
    method = None if key_set.diversification in ("", "none") else DivMethod(key_set.diversification)
    return ChannelSpec(key_set.keys, method, level, key_set.kvn, i, aid)


class CardLink:
    """The card of one job: plain commands, SD selection and one secure channel at a time."""

    def __init__(self, tsm: Tsm, target: str, transport: Transport, i: int, kdd: bytes,
                 level: int = SecurityLevel.C_MAC) -> None:
        self.tsm, self.target, self.i, self.kdd, self.level = tsm, target, i, kdd, level
        self.wire = LoggedTransport(transport)
        self.session: ChannelSession | None = None
        self.selected = b""

    def send(self, command: CommandApdu) -> ResponseApdu:
        """One command without secure messaging."""
        return ResponseApdu.from_bytes(self.wire.transmit(command.to_bytes()))

    def select(self, aid: bytes) -> ResponseApdu:
        """SELECT by AID (the channel, if any, ends: GPCS 2.3.1 §10.2.2); '6A82' answers when it is absent."""
        self.close_channel()
        response = self.send(commands.select(aid))
        if response.sw in (sw.Sw.SUCCESS, CARD_LOCKED):
            self.selected = aid
        return response

    def open(self, aid: bytes, key_set: KeySetView, purpose: Purpose) -> ChannelSession:
        """SELECT the SD and open a secure channel with `key_set` (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE); a
        card whose INITIALIZE UPDATE answer names another KDD than the SE's is refused (`WrongCard`)."""
        check(self.select(aid).sw, f"SELECT {aid.hex().upper()}", (sw.Sw.SUCCESS, CARD_LOCKED))
        session = self.tsm.keys.channels.open(self.tsm.request(purpose, self.target),
                                              spec_for(key_set, self.level, self.i, aid))
        try:
            authenticate(self.wire, session, self.level, expect_kdd=self.kdd)
        except BaseException:
            session.close()
            raise
        self.session = session
        return session

    def secure(self, command: CommandApdu | bytes) -> ResponseApdu:
        """One command through the open channel, its response verified (and decrypted) by it."""
        if self.session is None:
            raise RuntimeError("no secure channel is open")  # a step's programming error, never the card's
        raw = command if isinstance(command, bytes) else command.to_bytes()
        return ResponseApdu.from_bytes(self.session.unwrap(self.wire.transmit(self.session.wrap(raw))))

    def close_channel(self) -> None:
        """End the secure channel (its session keys destroyed)."""
        session, self.session = self.session, None
        if session is not None:
            session.close()

