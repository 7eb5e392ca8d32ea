"""Open a secure channel to a card's Issuer Security Domain from what the card says about itself.

Steps, each a pure builder from `tsm_core.gp.commands` sent through a `Transport`:

1. SELECT the ISD by an empty AID (GPCS 2.3.1 §11.9; the ISD is the default selected application, §9.3.1).
   '6283' (card locked, Table 11-85) still allows the ISD to be used. Its FCI (§11.9.3.1) names the ISD's AID
   (tag '84'); it may carry Security Domain Management Data (Table H-2) with the SCP and "i".
2. GET DATA '66' (§11.3, Annex H Table H-1) without a secure channel: the card recognition data names the SCP of
   the ISD and its "i". A card that does not answer it (OP 2.0.1 cards answer '6A86', others '6A88'), or
   answers something that is not card recognition data, leaves the choice to the FCI, then to the key
   information INITIALIZE UPDATE returns (SCP03 "i" is in it; SCP02 "i" is not: the key service assumes 55).
3. The security level is checked against the protocol and "i" (`globalplatform.scp.check_level`) before
   INITIALIZE UPDATE: a level the card would refuse is never sent (a card may count the refused EXTERNAL
   AUTHENTICATE as a failed authentication, and a pseudo-random SCP03 card spends a counter value on each
   INITIALIZE UPDATE).
4. The channel session is opened with the ISD's AID and "i": with the AID the key service checks that a
   pseudo-random SCP03 card challenge derives from the card's counter and AID (Amd D §6.2.2.1).
5. INITIALIZE UPDATE (§E.5.1, Amd D §7.1.1), built by the session. '6A88': the card has no key set of that
   version; the error names it and the versions the key information template (GET DATA 'E0', §11.3.3.1)
   lists. The key information of the answer is checked against the level again.
6. The session verifies the card cryptogram (§E.4.2.1, Amd D §6.2.2.2); when it does not verify no EXTERNAL
   AUTHENTICATE exists, so the card's retry counter (§E.5.2) is never spent.
7. EXTERNAL AUTHENTICATE (§E.5.2, Amd D §7.1.2), as built by the session.

Only what the card sends is relied on (status words, FCI, GET DATA), so any GlobalPlatform card will do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from globalplatform import cardinfo, initupdate, keyinfo, sw
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.cardinfo import CardRecognitionData, ScpOption, SecurityDomainFci
from globalplatform.errors import CardExecutionError, GpError, InvalidParameter
from globalplatform.initupdate import SCP02_ID, SCP03_ID, InitUpdateResponse
from globalplatform.scp import Scp, Scp03Option, check_level, security_level
from keyservice.errors import CryptogramMismatch
from tsm_core.flows.errors import CardCryptogramMismatch, KeyVersionNotFound, SecurityLevelNotAllowed, WrongCard
from tsm_core.gp import commands
from tsm_core.gp.commands import DataObject
from tsm_core.transport.base import Transport

CARD_LOCKED = 0x6283
"""SELECT of the ISD on a CARD_LOCKED card (GPCS 2.3.1 Table 11-85): selected, with a warning."""
REFERENCED_DATA_NOT_FOUND = 0x6A88
"""INITIALIZE UPDATE: no key set with the key version of P1 (GPCS 2.3.1 §11.14.3)."""


class ChannelSessionLike(Protocol):
    """What a flow needs of a secure channel (`keyservice.channels.ChannelSession` in production)."""

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
class IsdInfo:
    """What the card said about its ISD before any authentication."""

    aid: bytes | None
    """The selected ISD's AID, from the FCI (tag '84'); None when the card sent no FCI."""
    channel: ScpOption | None
    """The ISD's SCP and "i"; None when the card did not say (INITIALIZE UPDATE will)."""
    source: str = ""
    """Where `channel` was read, for messages."""

    @property
    def i(self) -> int | None:
        """The card's "i", for the key service's `ChannelSpec`."""
        return None if self.channel is None else self.channel.i


ChannelOpener = Callable[[IsdInfo], ChannelSessionLike]
"""Opens the key service's channel session for the ISD the card described (its AID and "i")."""


def check(status: int, step: str, accept: tuple[int, ...] = (sw.Sw.SUCCESS,)) -> None:
    """`sw.check` with the step named in the message (which command the card refused)."""
    if status in accept:
        return
    info = sw.lookup(status)
    raise (info.error or CardExecutionError)(status, f"{info.meaning} ({step})")


def _get_data(transport: Transport, tag: DataObject) -> bytes | None:
    """A data object read without secure messaging; None when the card does not give it."""
    response = ResponseApdu.from_bytes(transport.transmit(commands.get_data(tag).to_bytes()))
    return response.data if response.sw == sw.Sw.SUCCESS else None


def read_recognition_data(transport: Transport) -> CardRecognitionData | None:
    """Step 2: GET DATA '66'; None when the card does not answer it or answers something else."""
    data = _get_data(transport, DataObject.CARD_DATA)
    if data is None:
        return None
    try:
        return cardinfo.parse_card_data(data)
    except GpError:
        return None  # not card recognition data: the FCI or INITIALIZE UPDATE will tell


def select(transport: Transport) -> SecurityDomainFci | None:
    """Step 1: SELECT the ISD; its FCI, or None when the card sent none (or a proprietary one)."""
    selected = ResponseApdu.from_bytes(transport.transmit(commands.select().to_bytes()))
    check(selected.sw, "SELECT of the ISD", (sw.Sw.SUCCESS, CARD_LOCKED))
    try:
        return cardinfo.parse_fci(selected.data) if selected.data else None
    except GpError:
        return None  # a proprietary answer: no AID, and the SCP from GET DATA or INITIALIZE UPDATE


def describe_isd(fci: SecurityDomainFci | None, recognition: CardRecognitionData | None) -> IsdInfo:
    """The ISD's AID and channel from the FCI and the recognition data (the recognition data first)."""
    aid = None if fci is None else fci.aid
    if recognition is not None and (option := recognition.channel(SCP02_ID, SCP03_ID)) is not None:
        return IsdInfo(aid, option, "recognition data (GET DATA 66)")
    management = None if fci is None else fci.management_data
    if management is not None and (option := management.channel(SCP02_ID, SCP03_ID)) is not None:
        return IsdInfo(aid, option, "Security Domain management data (SELECT of the ISD)")
    return IsdInfo(aid, None)


def select_isd(transport: Transport) -> IsdInfo:
    """Steps 1 and 2: SELECT the ISD, read its AID and the card's SCP and "i"."""
    fci = select(transport)
    return describe_isd(fci, read_recognition_data(transport))


def _require_level(scp: int, i: int | None, level: int, said: str, unsent: str) -> None:
    """Step 3 (and again after INITIALIZE UPDATE): `said` is where the card named its SCP and "i"."""
    try:
        check_level(Scp(f"{scp:02X}"), i, level)
    except InvalidParameter as exc:
        raise SecurityLevelNotAllowed(f"{exc} — from the card's {said}; {unsent} was not sent") from None


def _missing_key_set(transport: Transport, kvn: int) -> KeyVersionNotFound:
    """Step 5 on '6A88': which key version was asked for and which ones the card lists."""
    asked = "no default key set (key version 00)" if kvn == 0 else f"no key set with key version {kvn:02X}"
    data = _get_data(transport, DataObject.KEY_INFORMATION)
    try:
        versions = None if data is None else keyinfo.key_versions(keyinfo.parse_key_information(data))
    except GpError:
        versions = None
    listed = ("its key information (GET DATA E0) lists key version(s) " + ", ".join(f"{v:02X}" for v in versions)
              if versions else "it gives no key information (GET DATA E0)")
    return KeyVersionNotFound(f"the card has {asked}: INITIALIZE UPDATE answered 6A88; {listed}")


def _mismatch_message(response: InitUpdateResponse, host_challenge: bytes, raw: bytes) -> str:
    """Why authentication stopped, in one line, with what the card said about its keys."""
    pseudo_random = response.scp == SCP03_ID and (response.i or 0) & Scp03Option.PSEUDO_RANDOM_CHALLENGE
    challenge = ", or a card challenge that does not derive from the card's counter and AID" if pseudo_random else ""
    return (f"the card cryptogram does not verify with the given key(s): the card uses "
            f"{response.key_information} — wrong key, key version or diversification{challenge}; "
            f"EXTERNAL AUTHENTICATE was not sent "
            f"(find the key: tsm gp diagnose --init-update-response {raw.hex().upper()} "
            f"--host-challenge {host_challenge.hex().upper()} --key LABEL ...)")


def authenticate(transport: Transport, session: ChannelSessionLike, level: int, *,
                 expect_kdd: bytes | None = None) -> InitUpdateResponse:
    """Steps 5 to 7 on the selected ISD: INITIALIZE UPDATE, level and card cryptogram, EXTERNAL AUTHENTICATE.

    With `expect_kdd`, a card whose INITIALIZE UPDATE answer names other key diversification data is not the
    SE meant (`WrongCard`), and nothing more is sent to it. Returns what the card said in its INITIALIZE UPDATE
    answer (KDD, key version, SCP, "i", counter)."""
    initialize_update = session.initialize_update()
    answer = ResponseApdu.from_bytes(transport.transmit(initialize_update))
    command = CommandApdu.from_bytes(initialize_update)
    if answer.sw == REFERENCED_DATA_NOT_FOUND:
        raise _missing_key_set(transport, command.p1)
    check(answer.sw, "INITIALIZE UPDATE")
    parsed = initupdate.parse(answer.data)
    if expect_kdd is not None and parsed.kdd != expect_kdd:
        raise WrongCard(f"the card answering is not the SE meant: its key diversification data is "
                        f"{parsed.kdd.hex().upper()}, not {expect_kdd.hex().upper()}; EXTERNAL AUTHENTICATE was "
                        "not sent")
    if parsed.scp in (SCP02_ID, SCP03_ID):
        _require_level(parsed.scp, parsed.i, level, f"INITIALIZE UPDATE answer ({parsed.key_information})",
                       "EXTERNAL AUTHENTICATE")
    try:
        external_authenticate = session.authenticate(answer.data)
    except CryptogramMismatch as exc:
        raise CardCryptogramMismatch(_mismatch_message(parsed, command.data, answer.data)) from exc
    done = ResponseApdu.from_bytes(transport.transmit(external_authenticate))
    check(done.sw, "EXTERNAL AUTHENTICATE")
    return parsed


def open_described_isd(transport: Transport, level: int, open_channel: ChannelOpener,
                       isd: IsdInfo) -> tuple[ChannelSessionLike, InitUpdateResponse]:
    """Steps 3 to 7 on an ISD already selected and described: the session and the INITIALIZE UPDATE answer.

    The caller closes the session; on any error it is closed here.
    """
    security_level(level)
    if isd.channel is not None:
        _require_level(isd.channel.scp, isd.i, level, f"{isd.source}: {isd.channel}", "INITIALIZE UPDATE")
    session = open_channel(isd)
    try:
        answer = authenticate(transport, session, level)
    except BaseException:
        session.close()
        raise
    return session, answer


def open_isd_channel(transport: Transport, level: int, open_channel: ChannelOpener) -> ChannelSessionLike:
    """Steps 1 to 7: an authenticated session with the ISD of the card behind `transport`.

    The caller closes the session; on any error it is closed here.
    """
    security_level(level)
    session, _ = open_described_isd(transport, level, open_channel, select_isd(transport))
    return session
