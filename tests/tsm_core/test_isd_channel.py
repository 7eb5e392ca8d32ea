"""Opening the ISD's secure channel from what the card says (tsm_core.flows.channel), over the real simulator
and over published card answers: the AID, SCP and "i" come from SELECT and GET DATA, a level the card does not
offer never reaches INITIALIZE UPDATE, a missing key version is named, and the pseudo-random SCP03 challenge is
checked against the AID the card gave."""

from __future__ import annotations

import pytest

from cardsim.state import new_card
from globalplatform import tlv
from globalplatform.apdu import Ins
from globalplatform.cardinfo import FCI_EXAMPLES, ScpOption
from globalplatform.errors import InvalidParameter
from keyservice.channels import ChannelSpec
from keyservice.identity import Caller, CallerKind
from keyservice.policy import Purpose, Request
from tests.tsm_core.cards import Recorder
from tsm_core.flows.channel import IsdInfo, open_isd_channel, select_isd
from tsm_core.flows.errors import CardCryptogramMismatch, KeyVersionNotFound, SecurityLevelNotAllowed
from tsm_core.flows.list_content import list_content
from tsm_core.transport.local import LocalTransport

REQUEST = Request(Caller("alice", CallerKind.OFFICER), Purpose.SE_MANAGEMENT, "card-under-test")
SELECT_ISD = bytes.fromhex("00A4040000")
GET_CARD_DATA = bytes.fromhex("80CA006600")
GET_KEY_INFORMATION = bytes.fromhex("80CA00E000")


class Opener:
    """`tsm gp list`'s opener: the key service's channel with the AID and "i" the card gave."""

    def __init__(self, service, *labels: str, level: int = 0x01, pass_aid: bool = True, kvn: int = 0) -> None:
        self.service, self.labels, self.level = service, labels or ("gp",), level
        self.pass_aid, self.kvn = pass_aid, kvn
        self.seen: list[IsdInfo] = []

    def __call__(self, isd: IsdInfo):
        self.seen.append(isd)
        spec = ChannelSpec(self.labels, security_level=self.level, kvn=self.kvn,
                           aid=isd.aid if self.pass_aid else None, i=isd.i)
        return self.service.channels.open(REQUEST, spec)


@pytest.mark.parametrize(("profile", "aid", "channel", "labels"), [
    ("default", "A000000151000000", ScpOption(0x03, 0x70), ("gp",)),
    ("scp03-i00", "A000000151000000", ScpOption(0x03, 0x00), ("gp",)),
    ("scp02-i55", "A000000003000000", ScpOption(0x02, 0x55), ("gp-des",)),
])
def test_the_card_names_its_isd_and_channel(service, profile, aid, channel, labels):
    card = Recorder(new_card(profile))
    opener = Opener(service, *labels, level=0x03)
    with LocalTransport(card) as transport:
        found = list_content(transport, 0x03, opener)
    assert opener.seen == [IsdInfo(bytes.fromhex(aid), channel, "recognition data (GET DATA 66)")]
    assert found.isd[0].aid == bytes.fromhex(aid)
    assert card.instructions[:5] == [Ins.SELECT, Ins.GET_DATA, Ins.INITIALIZE_UPDATE, Ins.EXTERNAL_AUTHENTICATE,
                                     Ins.GET_STATUS]


@pytest.mark.parametrize(("profile", "level", "labels"), [
    ("scp03-i00", 0x33, ("gp",)),
    ("scp03-i00", 0x13, ("gp",)),
    ("scp02-i55", 0x33, ("gp-des",)),
])
def test_a_level_the_card_does_not_offer_never_reaches_initialize_update(service, profile, level, labels):
    card = Recorder(new_card(profile))
    sd = card.card.registry.isd.sd
    opener = Opener(service, *labels, level=level)
    with LocalTransport(card) as transport, pytest.raises(SecurityLevelNotAllowed) as caught:
        list_content(transport, level, opener)
    assert card.instructions == [Ins.SELECT, Ins.GET_DATA]  # no INITIALIZE UPDATE, no EXTERNAL AUTHENTICATE
    assert opener.seen == [] and sd.failed_authentications == 0
    assert caught.value.code == "security_level_not_allowed"
    assert "INITIALIZE UPDATE was not sent" in str(caught.value)


def test_without_recognition_data_the_initialize_update_answer_decides(service):
    """A card that answers neither GET DATA 66 nor SD management data in its FCI (JCOP 4 style, GlobalPlatformPro
    issue #221): the SCP03 "i" of the INITIALIZE UPDATE answer refuses level 33 before EXTERNAL AUTHENTICATE."""
    jcop4_fci = tlv.h(FCI_EXAMPLES[1][0]) + b"\x90\x00"
    card = Recorder(new_card("scp03-i00"), {SELECT_ISD: jcop4_fci, GET_CARD_DATA: b"\x6a\x88"})
    opener = Opener(service, level=0x33)
    with LocalTransport(card) as transport, pytest.raises(SecurityLevelNotAllowed) as caught:
        list_content(transport, 0x33, opener)
    assert opener.seen == [IsdInfo(bytes.fromhex("A000000151000000"), None)]
    assert card.instructions == [Ins.SELECT, Ins.GET_DATA, Ins.INITIALIZE_UPDATE]
    assert "INITIALIZE UPDATE answer (key version FF, SCP03 i=00)" in str(caught.value)
    assert str(caught.value).endswith("EXTERNAL AUTHENTICATE was not sent")


def test_the_fci_speaks_when_get_data_66_is_refused():
    """A published ISD FCI (GlobalPlatformPro issue #112: a 7-byte ISD AID, SCP03 i=70) and GET DATA 66 refused
    with '6A86' as on Open Platform 2.0.1 cards: the AID and the channel come from the FCI."""
    fci = tlv.h(FCI_EXAMPLES[0][0])

    class PublishedCard:
        def power_on(self) -> bytes:
            return b"\x3b\x00"

        def transmit(self, apdu: bytes) -> bytes:
            return fci + b"\x90\x00" if apdu == SELECT_ISD else b"\x6a\x86"

    with LocalTransport(PublishedCard()) as transport:
        isd = select_isd(transport)
    assert isd == IsdInfo(bytes.fromhex("A0000001510000"), ScpOption(0x03, 0x70),
                          "Security Domain management data (SELECT of the ISD)")


def test_the_isd_channel_of_an_euicc_fci():
    """GlobalPlatformPro issue #152: SCP80, SCP02 i=55 and SCP81 in the FCI, GET DATA 66 not answered."""
    fci = tlv.h(FCI_EXAMPLES[2][0])

    class PublishedCard:
        def power_on(self) -> bytes:
            return b"\x3b\x00"

        def transmit(self, apdu: bytes) -> bytes:
            return fci + b"\x90\x00" if apdu == SELECT_ISD else b"\x6a\x88"

    with LocalTransport(PublishedCard()) as transport:
        assert select_isd(transport).channel == ScpOption(0x02, 0x55)


def test_a_missing_key_version_is_named_with_the_ones_the_card_has(service):
    card = Recorder(new_card("scp03-kdf3"))  # one key set, version 30
    opener = Opener(service, kvn=0x45)
    with LocalTransport(card) as transport, pytest.raises(KeyVersionNotFound) as caught:
        list_content(transport, 0x01, opener)
    assert str(caught.value) == ("the card has no key set with key version 45: INITIALIZE UPDATE answered 6A88; "
                                 "its key information (GET DATA E0) lists key version(s) 30")
    assert card.sent[-1] == GET_KEY_INFORMATION and card.instructions.count(Ins.EXTERNAL_AUTHENTICATE) == 0


def test_a_missing_key_version_when_the_card_gives_no_key_information(service):
    card = Recorder(new_card(None), {GET_KEY_INFORMATION: b"\x6a\x88"})
    with LocalTransport(card) as transport, pytest.raises(KeyVersionNotFound, match="gives no key information"):
        list_content(transport, 0x01, Opener(service, kvn=0x45))


def test_a_challenge_not_derived_from_counter_and_aid_is_refused(service):
    """Amd D §6.2.2.1: an i=70 card's challenge is KDF(K-ENC, counter || AID). A card answering another challenge
    with a correct cryptogram (what a replaying or cloned card could do) is refused because the AID the card gave
    is passed to the channel; without it the same answer is accepted."""
    card = Recorder(new_card(None))  # SCP03 i=70
    opener = Opener(service)
    with LocalTransport(card) as transport:
        card.card.force_next_challenge(bytes(8))
        with pytest.raises(CardCryptogramMismatch, match="does not derive from the card's counter and AID"):
            list_content(transport, 0x01, opener)
    assert opener.seen[0].aid == bytes.fromhex("A000000151000000")
    assert Ins.EXTERNAL_AUTHENTICATE not in card.instructions
    refused = service.audit.records(1)[0]
    assert (refused.operation, refused.outcome, refused.detail) == ("secure-channel", "refused", "cryptogram_mismatch")

    blind = Opener(service, pass_aid=False)
    with LocalTransport(card) as transport:
        card.card.force_next_challenge(bytes(8))
        found = list_content(transport, 0x01, blind)
    assert found.isd[0].aid == bytes.fromhex("A000000151000000")


def test_an_unknown_level_is_refused_before_the_card_is_touched(service):
    card = Recorder(new_card(None))
    with LocalTransport(card) as transport, pytest.raises(InvalidParameter, match="not one of"):
        open_isd_channel(transport, 0x02, Opener(service))
    assert card.sent == []
