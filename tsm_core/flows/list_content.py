"""List a card's GlobalPlatform Registry over an authenticated secure channel (what `gp -l` does).

Steps, each a pure builder from `tsm_core.gp.commands` sent through a `Transport`:

1. SELECT the Issuer Security Domain by an empty AID (GPCS 2.3.1 §11.9; the ISD is the default selected
   application, §9.3.1). '6283' (card locked, Table 11-85) still allows the Registry to be read.
2. INITIALIZE UPDATE (GPCS 2.3.1 §E.5.1, Amd D §7.1.1), built by the channel session; the card's answer goes
   to the session, which verifies the card cryptogram (§E.4.2.1, Amd D §6.2.2.2). When it does not verify,
   no EXTERNAL AUTHENTICATE exists: nothing is sent, so the card's retry counter (§E.5.2) is never spent.
3. EXTERNAL AUTHENTICATE (GPCS 2.3.1 §E.5.2, Amd D §7.1.2), as built by the session.
4. GET STATUS (GPCS 2.3.1 §11.4) for the ISD (P1 '80'), applications and SDs (P1 '40') and load files with
   their modules (P1 '10', or P1 '20' when the card refuses '10'), TLV format (P2 '02', Table 11-36) unless
   the card refuses it, then legacy (P2 '00', Tables 11-37/11-38). '6310' continues with P2 "next"
   (§11.4.3); '6A88' means no entry matches (Table 11-39). Every command is wrapped and every response
   unwrapped by the session (C-MAC, C-DECRYPTION, R-MAC, R-ENCRYPTION as negotiated).

The flow owns the session it is given: it closes it when it ends, whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final, Protocol

from globalplatform import sw
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.errors import CardExecutionError, FunctionNotSupported, WrongLengthOrParameters
from keyservice.errors import CryptogramMismatch
from tsm_core.flows.errors import CardCryptogramMismatch, EndlessPaging
from tsm_core.gp import commands, getstatus
from tsm_core.gp.getstatus import StatusEntry, StatusSubset
from tsm_core.transport.base import Transport

SCP03_ID: Final = 0x03
"""SCP identifier of SCP03 in the key information (Amd D §5.1)."""
MAX_PAGES: Final = 256
"""Bound on '6310' continuations of one GET STATUS (far beyond any card's Registry)."""


@unique
class ListSw(IntEnum):
    """Status words this flow accepts besides '9000' (GPCS 2.3.1 §11.9.3.2, §11.4.3)."""

    CARD_LOCKED = 0x6283
    """SELECT of the ISD on a CARD_LOCKED card (Table 11-85): selected, with a warning."""
    NO_MATCH = 0x6A88
    """GET STATUS: referenced data not found, i.e. no entry of this kind (Table 11-39)."""


@unique
class KeyInformation(IntEnum):
    """Offsets in the INITIALIZE UPDATE response (GPCS 2.3.1 Table E-13; Amd D Table 7-2)."""

    KVN = 10
    """After the 10 bytes of key diversification data: the key version number."""
    SCP = 11
    """The Secure Channel Protocol identifier."""
    SCP03_I = 12
    """SCP03 only: the "i" parameter."""


class ChannelSessionLike(Protocol):
    """What the flow needs of a secure channel (`keyservice.scoped.ChannelSession` in production)."""

    def initialize_update(self, host_challenge: bytes | None = None) -> bytes:
        """The INITIALIZE UPDATE C-APDU (random host challenge by default)."""
        ...

    def authenticate(self, response: bytes) -> bytes:
        """Verify the card cryptogram (response without SW); the EXTERNAL AUTHENTICATE C-APDU.

        Raises `keyservice.errors.CryptogramMismatch` and builds nothing when it does not verify.
        """
        ...

    def wrap(self, capdu: bytes) -> bytes:
        """Protect one command."""
        ...

    def unwrap(self, rapdu: bytes) -> bytes:
        """Verify/decrypt one response (data + SW)."""
        ...

    def close(self) -> None:
        """End the session; idempotent."""
        ...


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


def _check(status: int, step: str, accept: tuple[int, ...] = (sw.Sw.SUCCESS,)) -> None:
    """`sw.check` with the step named in the message (which command the card refused)."""
    if status in accept:
        return
    info = sw.lookup(status)
    raise (info.error or CardExecutionError)(status, f"{info.meaning} ({step})")


def _mismatch_message(response: bytes, host_challenge: bytes) -> str:
    """Why authentication stopped, in one line, with what the card said about its keys."""
    kvn, scp = response[KeyInformation.KVN], response[KeyInformation.SCP]
    has_i = scp == SCP03_ID and len(response) > KeyInformation.SCP03_I
    i = f" i={response[KeyInformation.SCP03_I]:02X}" if has_i else ""
    return (f"the card cryptogram does not verify with the given key(s): the card uses key version {kvn:02X}, "
            f"SCP{scp:02X}{i} — wrong key, key version or diversification; EXTERNAL AUTHENTICATE was not sent "
            f"(find the key: tsm gp diagnose --init-update-response {response.hex().upper()} "
            f"--host-challenge {host_challenge.hex().upper()} --key LABEL ...)")


def authenticate(transport: Transport, session: ChannelSessionLike) -> None:
    """Steps 1 to 3: SELECT the ISD, INITIALIZE UPDATE, verify the card, EXTERNAL AUTHENTICATE."""
    selected = ResponseApdu.from_bytes(transport.transmit(commands.select().to_bytes()))
    _check(selected.sw, "SELECT of the ISD", (sw.Sw.SUCCESS, ListSw.CARD_LOCKED))
    initialize_update = session.initialize_update()
    answer = ResponseApdu.from_bytes(transport.transmit(initialize_update))
    _check(answer.sw, "INITIALIZE UPDATE")
    try:
        external_authenticate = session.authenticate(answer.data)
    except CryptogramMismatch as exc:
        host_challenge = CommandApdu.from_bytes(initialize_update).data
        raise CardCryptogramMismatch(_mismatch_message(answer.data, host_challenge)) from exc
    done = ResponseApdu.from_bytes(transport.transmit(external_authenticate))
    _check(done.sw, "EXTERNAL AUTHENTICATE")


def _exchange(transport: Transport, session: ChannelSessionLike, command: CommandApdu) -> ResponseApdu:
    return ResponseApdu.from_bytes(session.unwrap(transport.transmit(session.wrap(command.to_bytes()))))


def get_status(transport: Transport, session: ChannelSessionLike, subset: StatusSubset,
               tlv_format: bool) -> list[StatusEntry]:
    """Every entry of one subset, following '6310' pages (GPCS 2.3.1 §11.4.2.2, §11.4.3)."""
    data = b""
    step = f"GET STATUS P1 {subset:02X}"
    command = commands.get_status(subset, tlv_format=tlv_format)
    for _ in range(MAX_PAGES):
        response = _exchange(transport, session, command)
        if response.sw == ListSw.NO_MATCH and not data:
            return []
        _check(response.sw, step, (sw.Sw.SUCCESS, sw.Sw.MORE_DATA))
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


def list_content(transport: Transport, session: ChannelSessionLike) -> CardContent:
    """Authenticate to the ISD of the card behind `transport` and read its Registry; closes `session`."""
    try:
        authenticate(transport, session)
        return read_registry(transport, session)
    finally:
        session.close()
