"""List a card's GlobalPlatform Registry over an authenticated secure channel (what `gp -l` does).

1. Open a secure channel to the ISD from what the card says about itself (`tsm_core.flows.channel`: SELECT,
   GET DATA '66', the security level checked against the card's SCP and "i", INITIALIZE UPDATE, EXTERNAL
   AUTHENTICATE).
2. GET STATUS (GPCS 2.3.1 §11.4) for the ISD (P1 '80'), applications and SDs (P1 '40') and load files with
   their modules (P1 '10', or P1 '20' when the card refuses '10'), TLV format (P2 '02', Table 11-36) unless
   the card refuses it, then legacy (P2 '00', Tables 11-37/11-38). '6310' continues with P2 "next"
   (§11.4.3); '6A88' means no entry matches (Table 11-39). Every command is wrapped and every response
   unwrapped by the session (C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION as negotiated).

The flow owns the session it opens: it closes it when it ends, whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from globalplatform import sw
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.errors import FunctionNotSupported, WrongLengthOrParameters
from tsm_core.flows.channel import ChannelOpener, ChannelSessionLike, check, open_isd_channel
from tsm_core.flows.errors import EndlessPaging
from tsm_core.gp import commands, getstatus
from tsm_core.gp.getstatus import StatusEntry, StatusSubset
from tsm_core.transport.base import Transport

MAX_PAGES: Final = 256
"""Bound on '6310' continuations of one GET STATUS (far beyond any card's Registry)."""


@unique
class ListSw(IntEnum):
    """Status words this flow accepts besides '9000' and '6310' (GPCS 2.3.1 §11.4.3)."""

    NO_MATCH = 0x6A88
    """GET STATUS: referenced data not found, i.e. no entry of this kind (Table 11-39)."""


@dataclass(frozen=True)
class CardContent:
    """The Registry as GET STATUS showed it: ISD, applications and SDs, load files (with modules if listed)."""

    isd: tuple[StatusEntry, ...]
    applications: tuple[StatusEntry, ...]
    load_files: tuple[StatusEntry, ...]
    load_file_subset: StatusSubset
    """P1 '10' when the modules were listed, P1 '20' when the card refused '10'."""
    tlv_format: bool
    """True for the TLV format (P2 '02'), False when the card only answered the legacy format."""


def secure_exchange(transport: Transport, session: ChannelSessionLike, command: CommandApdu) -> ResponseApdu:
    """One command wrapped by the session, its response unwrapped (secure messaging as negotiated)."""
    return ResponseApdu.from_bytes(session.unwrap(transport.transmit(session.wrap(command.to_bytes()))))


def get_status(transport: Transport, session: ChannelSessionLike, subset: StatusSubset,
               tlv_format: bool) -> list[StatusEntry]:
    """Every entry of one subset, following '6310' pages (GPCS 2.3.1 §11.4.2.2, §11.4.3)."""
    data = b""
    step = f"GET STATUS P1 {subset:02X}"
    command = commands.get_status(subset, tlv_format=tlv_format)
    for _ in range(MAX_PAGES):
        response = secure_exchange(transport, session, command)
        if response.sw == ListSw.NO_MATCH and not data:
            return []
        check(response.sw, step, (sw.Sw.SUCCESS, sw.Sw.MORE_DATA))
        data += response.data
        if response.sw == sw.Sw.SUCCESS:
            parse = getstatus.parse_tlv if tlv_format else getstatus.parse_legacy
            return parse(subset, data)
        command = commands.get_status(subset, tlv_format=tlv_format, next_occurrence=True)
    raise EndlessPaging(f"{step}: the card still answered 6310 after {MAX_PAGES} pages")


def read_registry(transport: Transport, session: ChannelSessionLike) -> CardContent:
    """Step 4 on an authenticated channel: the ISD, applications/SDs and load files."""
    tlv_format = True
    try:
        isd = get_status(transport, session, StatusSubset.ISD, tlv_format)
    except WrongLengthOrParameters:
        tlv_format = False  # a GP 2.1.1 card: P2 '02' unknown
        isd = get_status(transport, session, StatusSubset.ISD, tlv_format)
    applications = get_status(transport, session, StatusSubset.APPLICATIONS, tlv_format)
    subset = StatusSubset.LOAD_FILES_AND_MODULES
    try:
        load_files = get_status(transport, session, subset, tlv_format)
    except (WrongLengthOrParameters, FunctionNotSupported):
        subset = StatusSubset.LOAD_FILES
        load_files = get_status(transport, session, subset, tlv_format)
    return CardContent(tuple(isd), tuple(applications), tuple(load_files), subset, tlv_format)


def list_content(transport: Transport, level: int, open_channel: ChannelOpener) -> CardContent:
    """Authenticate to the ISD of the card behind `transport` at security `level` and read its Registry.

    `open_channel` opens the key service's session once the card has named its ISD's AID and "i"; the session
    is closed when the flow ends.
    """
    session = open_isd_channel(transport, level, open_channel)
    try:
        return read_registry(transport, session)
    finally:
        session.close()
