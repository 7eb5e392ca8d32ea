"""Discover a card: what it says about itself, its Registry, and the proof that the given ISD key(s) open it.

This is the card-reading half of `tsm se discover`: a pure flow over a `Transport` that returns what the card said
(`CardSurvey`); storing it in the SE registry is the caller's business. The steps, in this order:

1. SELECT the ISD (GPCS 2.3.1 §11.9) and GET DATA '66' (§11.3, Annex H): the ISD's AID (FCI tag '84'), the card
   recognition data, the ISD's SCP and "i" (`channel.select`, `channel.read_recognition_data`).
2. GET DATA without a secure channel (§11.3; the ISD answers these to anyone): '9F7F' CPLC (Annex H.6), '42'
   IIN, '45' CIN, 'C1' sequence counter, 'E0' key information (§11.3.3.1), 'FF21' extended card resources (ETSI
   TS 102 226 §8.2.1.7.2). A status word other than '9000' ('6A88' referenced data not found, '6985' on cards
   that disabled a proprietary object, ...) leaves the object absent; so does an answer that does not parse.
   Either way `CardSurvey.unread` names the object, the status word and why.
3. The secure channel opened with the given key(s), as `tsm gp list` opens it (`channel.open_described_isd`):
   the security level checked against the SCP and "i", INITIALIZE UPDATE (§E.5.1, Amd D §7.1.1) whose answer
   gives the KDD, key version, SCP and "i", the card cryptogram verified by the key service, EXTERNAL
   AUTHENTICATE (§E.5.2, Amd D §7.1.2). A wrong key ends the flow with `CardCryptogramMismatch` (one line,
   `cryptogram_mismatch`) and no EXTERNAL AUTHENTICATE is sent.
4. GET DATA 'FF21' again, wrapped by the channel, when step 2 got '6982' (security status not satisfied).
5. GET STATUS (§11.4) over the channel, as `list_content.read_registry` reads it: ISD, applications and SDs,
   load files with their modules, '6310' paging and the legacy-format fallback.

The flow owns the session it opens and closes it when it ends, whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, unique
from typing import TypeVar

from globalplatform import cplc, dataobjects, keyinfo, sw
from globalplatform.apdu import ResponseApdu
from globalplatform.cardinfo import CardRecognitionData, SecurityDomainFci
from globalplatform.cplc import Cplc
from globalplatform.dataobjects import CardResources
from globalplatform.errors import GpError
from globalplatform.keyinfo import KeyInformation
from globalplatform.scp import SecurityLevel, security_level
from tsm_core.flows.channel import ChannelOpener, describe_isd, open_described_isd, read_recognition_data, select
from tsm_core.flows.list_content import CardContent, read_registry, secure_exchange
from tsm_core.gp import commands
from tsm_core.gp.commands import DataObject
from tsm_core.gp.getstatus import CardLifeCycle
from tsm_core.transport.base import ContextManagedTransport, Transport

T = TypeVar("T")


@unique
class SurveySw(IntEnum):
    """Status words this flow reacts to by value."""

    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    """GET DATA refused without a secure channel (ISO 7816-4 §5.6, GPCS 2.3.1 Table 11-10): read it over one."""


@dataclass(frozen=True)
class Unread:
    """A data object the survey does not have: the status word the card answered, and why it is absent."""

    tag: DataObject
    sw: int
    reason: str


@dataclass(frozen=True)
class AuthenticatedChannel:
    """The proof: the secure channel the given key(s) opened (from the card's INITIALIZE UPDATE answer)."""

    key_version: int
    scp: int
    i: int | None
    """From the INITIALIZE UPDATE answer (SCP03), else from the recognition data or FCI; None if neither said."""
    security_level: int


@dataclass(frozen=True)
class CardSurvey:
    """Everything `discover` read, as the card said it."""

    atr: bytes | None
    """The ATR, when the transport has one."""
    isd_aid: bytes | None
    """From the FCI, else from GET STATUS P1 '80'."""
    fci: SecurityDomainFci | None
    recognition: CardRecognitionData | None
    cplc: Cplc | None
    iin: bytes | None
    cin: bytes | None
    kdd: bytes
    """Key diversification data, from the INITIALIZE UPDATE answer (the data the card's keys derive from)."""
    sequence_counter: int | None
    """GET DATA 'C1', read before INITIALIZE UPDATE."""
    key_information: tuple[KeyInformation, ...] | None
    resources: CardResources | None
    """Free memory ('FF21'); None when the card does not answer it."""
    channel: AuthenticatedChannel
    content: CardContent
    unread: tuple[Unread, ...]

    @property
    def life_cycle(self) -> CardLifeCycle | None:
        """The card life cycle: the ISD's life cycle in GET STATUS (GPCS 2.3.1 §11.1.1)."""
        if not self.content.isd:
            return None
        state = self.content.isd[0].state
        return state if isinstance(state, CardLifeCycle) else None


class _Reads:
    """GET DATA answers turned into values, absent ones recorded."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.unread: list[Unread] = []

    def answer(self, tag: DataObject) -> ResponseApdu:
        """GET DATA `tag` without secure messaging."""
        return ResponseApdu.from_bytes(self.transport.transmit(commands.get_data(tag).to_bytes()))

    def read(self, tag: DataObject, parse: Callable[[bytes], T]) -> T | None:
        """GET DATA `tag` without secure messaging, parsed; None (and recorded) when absent."""
        return self.take(tag, self.answer(tag), parse)

    def take(self, tag: DataObject, response: ResponseApdu, parse: Callable[[bytes], T]) -> T | None:
        """`response` parsed when it is '9000' and parses; else None, recorded in `unread`."""
        if response.sw != sw.Sw.SUCCESS:
            self.unread.append(Unread(tag, response.sw, sw.lookup(response.sw).meaning))
            return None
        try:
            return parse(response.data)
        except GpError as exc:
            self.unread.append(Unread(tag, response.sw, str(exc)))
            return None


def _atr(transport: Transport) -> bytes | None:
    return (transport.atr or None) if isinstance(transport, ContextManagedTransport) else None


def discover(transport: Transport, open_channel: ChannelOpener, level: int = SecurityLevel.C_MAC) -> CardSurvey:
    """Read the card behind `transport` and prove that `open_channel`'s keys open its ISD at security `level`.

    `open_channel` opens the key service's channel session once the card has named its ISD's AID and "i"; the
    key labels, diversification and key version are in it, as for `list_content`, e.g.
    `lambda isd: service.channels.open(request, ChannelSpec(("kmc",), DivMethod.KDF3, aid=isd.aid, i=isd.i))`.
    Raises the typed errors of `channel.open_isd_channel` (wrong key, missing key version, level not offered)
    and of GET STATUS; refused or malformed GET DATA objects are recorded in `CardSurvey.unread` instead.
    """
    security_level(level)
    fci = select(transport)
    recognition = read_recognition_data(transport)
    isd = describe_isd(fci, recognition)
    reads = _Reads(transport)
    found_cplc = reads.read(DataObject.CPLC, cplc.parse_cplc)
    iin = reads.read(DataObject.IIN, dataobjects.parse_iin)
    cin = reads.read(DataObject.CIN, dataobjects.parse_cin)
    counter = reads.read(DataObject.SEQUENCE_COUNTER, dataobjects.parse_sequence_counter)
    keys = reads.read(DataObject.KEY_INFORMATION, keyinfo.parse_key_information)
    resources_answer = reads.answer(DataObject.EXTENDED_CARD_RESOURCES)
    session, answer = open_described_isd(transport, level, open_channel, isd)
    try:
        if resources_answer.sw == SurveySw.SECURITY_STATUS_NOT_SATISFIED:
            resources_answer = secure_exchange(transport, session,
                                               commands.get_data(DataObject.EXTENDED_CARD_RESOURCES))
        resources = reads.take(DataObject.EXTENDED_CARD_RESOURCES, resources_answer,
                               dataobjects.parse_card_resources)
        content = read_registry(transport, session)
    finally:
        session.close()
    return CardSurvey(
        atr=_atr(transport),
        isd_aid=fci.aid if fci is not None else (content.isd[0].aid if content.isd else None),
        fci=fci,
        recognition=recognition,
        cplc=found_cplc,
        iin=iin,
        cin=cin,
        kdd=answer.kdd,
        sequence_counter=counter,
        key_information=keys,
        resources=resources,
        channel=AuthenticatedChannel(answer.kvn, answer.scp, answer.i if answer.i is not None else isd.i, level),
        content=content,
        unread=tuple(reads.unread),
    )

