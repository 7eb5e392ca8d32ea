"""INITIALIZE UPDATE and EXTERNAL AUTHENTICATE (GPCS 2.3.1 11.12/11.13 via E.5.1/E.5.2 for SCP02;
Amd D 7.1.1/7.1.2 for SCP03), with the retry limit of the selected SD."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Response
from cardsim.keys import ReservedKvn
from cardsim.lifecycle import AppLifeCycle, CardLifeCycle
from cardsim.registry import SecurityDomainData
from cardsim.scp02 import Scp02Channel
from cardsim.scp03 import Scp03Channel, Scp03Option
from cardsim.securechannel import SecureChannel
from cardsim.sw import SW, ApduError

if TYPE_CHECKING:
    from cardsim.card import Card

HOST_CHALLENGE_LENGTH: Final = 8
SCP02: Final = 0x02
SCP02_COUNTER_MAX: Final = 0xFFFF
SCP03_COUNTER_MAX: Final = 0xFFFFFF


def default_kvn(sd: SecurityDomainData) -> int:
    """KVN used when P1 = 00: the lowest KVN holding an SCP key set (GPCS 2.3.1 E.5.1.2)."""
    for kvn in sorted(sd.keysets):
        if sd.keysets[kvn].is_scp_set() and not ReservedKvn.TOKEN <= kvn <= ReservedKvn.DAP:
            return kvn
    raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no secure channel key set")


def initialize_update(card: Card, apdu: CommandApdu) -> Response:
    """Open a session: derive session keys, answer key diversification data, challenge and cryptogram."""
    card.channel = None
    entry = card.selected
    sd = entry.sd
    if sd is None:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
    if apdu.p2 != 0:
        raise ApduError(SW.WRONG_P1P2)
    if len(apdu.data) != HOST_CHALLENGE_LENGTH:
        raise ApduError(SW.WRONG_LENGTH, "host challenge must be 8 bytes")
    if sd.blocked:
        raise ApduError(SW.AUTH_METHOD_BLOCKED, "retry limit exhausted")
    kvn = apdu.p1 or default_kvn(sd)
    keyset = sd.keysets.get(kvn)
    if keyset is None or not keyset.is_scp_set():
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no such key set")
    forced = card.take_forced_challenge()
    if forced is not None and forced.sequence_counter is not None:
        sd.sequence_counter = forced.sequence_counter
    elif sd.scp != SCP02 and sd.i & Scp03Option.PSEUDO_RANDOM_CHALLENGE:
        if sd.sequence_counter >= SCP03_COUNTER_MAX:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "sequence counter exhausted")
        sd.sequence_counter += 1  # Amd D 6.2.2.1: incremented each time a card challenge is generated
    challenge = forced.card_challenge if forced else None
    kdd = sd.data_objects.get(0xCF, card.identity.kdd)
    channel: SecureChannel
    if sd.scp == SCP02:
        if sd.sequence_counter > SCP02_COUNTER_MAX:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "sequence counter exhausted")
        channel = Scp02Channel(keyset, sd.i, sd.sequence_counter, entry.aid, kdd, apdu.data, challenge)
    else:
        channel = Scp03Channel(keyset, sd.i, sd.sequence_counter, entry.aid, kdd, apdu.data, challenge)
    card.channel = channel
    return Response(channel.initialize_update_response())


def external_authenticate(card: Card, apdu: CommandApdu) -> Response:
    """Authenticate the host; 6300 on a wrong cryptogram or C-MAC, counted against the retry limit."""
    channel, card.channel = card.channel, None
    entry = card.selected
    sd = entry.sd
    if channel is None or channel.authenticated or sd is None:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "INITIALIZE UPDATE must come first")
    if not channel.external_authenticate(apdu):
        sd.failed_authentications += 1
        if sd.blocked:
            if entry.aid == card.registry.isd_aid:
                if card.life_cycle is CardLifeCycle.SECURED:
                    card.life_cycle = CardLifeCycle.CARD_LOCKED
            else:
                entry.life_cycle |= AppLifeCycle.LOCKED
        return Response(sw=SW.AUTH_FAILED)
    sd.failed_authentications = 0
    if sd.scp == SCP02:
        sd.sequence_counter += 1  # GPCS E.4.1: incremented after each successful session opening
    card.channel = channel
    return Response()
