"""`tsm_core.flows.discover`: what a card says about itself, its Registry and the proof that the ISD key opens it.

Against every cardsim profile in process (a real SoftHSM2 key service opens the channels), one card through real
pcscd + vpcd + pyscard, cards that refuse or garble optional GET DATA objects (published refusals replayed), a
card that wants FF21 over the secure channel, and a wrong key (nothing authenticates).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cardsim.memory import free_memory
from cardsim.state import new_card
from cardsim.vpcd import serve
from globalplatform import cplc, tlv
from globalplatform.apdu import Ins
from globalplatform.errors import InvalidParameter
from globalplatform.keys import KeyAlgorithm
from keyservice.channels import ChannelSpec, DivMethod
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from tests.cardsim import gp
from tests.cardsim.host import Host
from tests.tsm_core.cards import Recorder
from tests.tsm_core.conftest import GP_TEST_KEY, READER, wait_for_card, wait_for_removal
from tsm_core.flows.channel import IsdInfo
from tsm_core.flows.discover import CardSurvey, SurveySw, Unread, discover
from tsm_core.flows.errors import CardCryptogramMismatch
from tsm_core.gp.commands import DataObject
from tsm_core.gp.getstatus import CardLifeCycle
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport

REQUEST = Request(Caller("alice", CallerKind.OFFICER), Purpose.SE_MANAGEMENT, "card-under-test")
REFERENCED_DATA_NOT_FOUND = 0x6A88
GET_CPLC, GET_FF21 = bytes.fromhex("80CA9F7F00"), bytes.fromhex("80CAFF2100")
GET_IIN, GET_CIN = bytes.fromhex("80CA004200"), bytes.fromhex("80CA004500")
NOT_FOUND = bytes.fromhex("6A88")
GPPRO_221_CPLC = tlv.h(cplc.CPLC_EXAMPLES[0][0]) + b"\x90\x00"
"""The JCOP 4 card of martinpaljak/GlobalPlatformPro issue #221: its 80CA9F7F answer, as published."""


@pytest.fixture
def keys(service):
    """The conftest key service (`gp` AES, `gp-des` DES3 test keys) plus the test key as KMCs and a wrong key."""
    req = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
    for label, algorithm, usage, value in (("kmc", KeyAlgorithm.DES3, KeyUsage.KMC, GP_TEST_KEY),
                                           ("kmc-aes", KeyAlgorithm.AES, KeyUsage.KMC, GP_TEST_KEY),
                                           ("other", KeyAlgorithm.AES, KeyUsage.ISD_KEYSET, bytes(16))):
        service.keys.import_test(req, NewKey(label, algorithm, 16, usage, "lab"), value)
    return service


def opener(service, label: str = "gp", div: DivMethod | None = None, level: int = 0x01):
    """`tsm se discover`'s opener: the key service's channel with the AID and "i" the card gave."""
    def open_channel(isd: IsdInfo):
        return service.channels.open(REQUEST, ChannelSpec((label,), div, level, aid=isd.aid, i=isd.i))
    return open_channel


PROFILES = [  # profile, key label, diversification, SCP, i, key version, card life cycle
    ("default", "gp", None, 0x03, 0x70, 0xFF, CardLifeCycle.SECURED),
    ("scp03-i00", "gp", None, 0x03, 0x00, 0xFF, CardLifeCycle.INITIALIZED),
    ("scp03-kdf3", "kmc-aes", DivMethod.KDF3, 0x03, 0x70, 0x30, CardLifeCycle.SECURED),
    ("scp02-i55", "gp-des", None, 0x02, 0x55, 0xFF, CardLifeCycle.OP_READY),
    ("scp02-emv", "kmc", DivMethod.EMV, 0x02, 0x15, 0x01, CardLifeCycle.SECURED),
]


@pytest.mark.parametrize(("profile", "label", "div", "scp", "i", "kvn", "life_cycle"), PROFILES,
                         ids=[p[0] for p in PROFILES])
def test_every_profile(keys, profile, label, div, scp, i, kvn, life_cycle):
    card = new_card(profile)
    sd = card.registry.isd.sd
    counter = sd.sequence_counter
    expected_free = free_memory(card.registry, card.registry.isd_aid)
    wire = Recorder(card)
    with LocalTransport(wire) as transport:
        survey = discover(transport, opener(keys, label, div))
    assert survey.atr == card.identity.atr
    assert survey.isd_aid == card.registry.isd_aid == survey.content.isd[0].aid
    assert cplc.encode_cplc(survey.cplc)[3:] == card.identity.cplc
    assert survey.kdd == card.identity.kdd
    assert survey.cin == sd.data_objects[0x45]
    assert survey.iin is None  # no profile has one: the card answers 6A88
    assert survey.unread == (Unread(DataObject.IIN, REFERENCED_DATA_NOT_FOUND, "Referenced data not found"),)
    assert survey.sequence_counter == counter  # read before INITIALIZE UPDATE
    assert [k.kvn for k in survey.key_information] == [kvn] * 3
    assert (survey.resources.free_non_volatile, survey.resources.free_volatile) == (expected_free.nv,
                                                                                  expected_free.volatile)
    assert survey.resources.installed_applications == 0
    assert (survey.channel.scp, survey.channel.i, survey.channel.key_version) == (scp, i, kvn)
    assert survey.recognition is not None and survey.recognition.channel(scp) is not None
    assert survey.life_cycle is life_cycle
    assert [e.aid for e in survey.content.load_files] == list(card.registry.load_files)
    assert sd.failed_authentications == 0
    assert wire.instructions[:8] == [Ins.SELECT, *[Ins.GET_DATA] * 7]  # 66, 9F7F, 42, 45, C1, E0, FF21 in clear
    assert wire.instructions[8:10] == [Ins.INITIALIZE_UPDATE, Ins.EXTERNAL_AUTHENTICATE]
    assert set(wire.instructions[10:]) == {Ins.GET_STATUS}


def test_content_installed_on_the_card_is_listed(keys):
    """Applications and SDs (P1 40) and modules (P1 10) appear, read over the channel at level 33."""
    card = new_card(None)
    card.power_on()
    host = Host(card, GP_TEST_KEY).open()
    purse = bytes.fromhex("F00000000101010101")
    assert host.send(gp.install(0x0C, gp.install_data(bytes.fromhex("F0000000010101"),
                                                      bytes.fromhex("F000000001010101"), purse, b"\x00")))[1] == 0x9000
    with LocalTransport(card) as transport:
        survey = discover(transport, opener(keys, level=0x33), level=0x33)
    assert [e.aid for e in survey.content.applications] == [purse]
    modules = {e.aid: e.modules for e in survey.content.load_files}
    assert modules[bytes.fromhex("F0000000010101")] == (bytes.fromhex("F000000001010101"),)
    assert survey.resources.installed_applications == 1
    assert survey.channel.security_level == 0x33


def test_published_answers_replayed(keys):
    """The CPLC of the JCOP 4 card of GlobalPlatformPro issue #221, and IIN and CIN refused with 6A88 as the Oberthur
    COSMO 8.1 of issue #114 refuses them: the CPLC fields are GlobalPlatformPro's, IIN and CIN absent."""
    wire = Recorder(new_card(None), {GET_CPLC: GPPRO_221_CPLC, GET_IIN: NOT_FOUND, GET_CIN: NOT_FOUND})
    with LocalTransport(wire) as transport:
        survey = discover(transport, opener(keys))
    published = cplc.CPLC_EXAMPLES[0][1]
    assert {name: survey.cplc.as_hex()[name] for name in published} == published
    assert survey.iin is None and survey.cin is None
    assert [(u.tag, u.sw) for u in survey.unread] == [(DataObject.IIN, 0x6A88), (DataObject.CIN, 0x6A88)]


def test_a_card_that_refuses_ff21_and_cplc(keys):
    wire = Recorder(new_card("scp02-i55"), {GET_CPLC: NOT_FOUND, GET_FF21: NOT_FOUND})
    with LocalTransport(wire) as transport:
        survey = discover(transport, opener(keys, "gp-des"))
    assert survey.cplc is None and survey.resources is None
    assert {u.tag: u.sw for u in survey.unread} == {DataObject.CPLC: 0x6A88, DataObject.IIN: 0x6A88,
                                                    DataObject.EXTENDED_CARD_RESOURCES: 0x6A88}
    assert survey.kdd == wire.card.identity.kdd and survey.life_cycle is CardLifeCycle.OP_READY
    assert wire.sent.count(GET_FF21) == 1  # 6A88 is final: not asked again over the channel


def test_garbled_answers_are_recorded_not_raised(keys):
    """A CPLC of 3 bytes and an FF21 without '83', both with 9000: absent, with the parser's reason."""
    wire = Recorder(new_card(None), {GET_CPLC: bytes.fromhex("9F7F030102039000"),
                                 GET_FF21: bytes.fromhex("FF2106810101820101") + b"\x90\x00"})
    with LocalTransport(wire) as transport:
        survey = discover(transport, opener(keys))
    reasons = {u.tag: (u.sw, u.reason) for u in survey.unread}
    assert reasons[DataObject.CPLC] == (0x9000, "CPLC data is 42 bytes, not 3 (GPCS 2.3.1 Annex H.6)")
    assert reasons[DataObject.EXTENDED_CARD_RESOURCES][1].startswith("extended card resources without 83")
    assert survey.cplc is None and survey.resources is None and survey.content.isd


def test_ff21_refused_in_clear_is_read_over_the_channel(keys):
    """A card that answers 6982 (security status not satisfied) to FF21 without a secure channel: read again
    wrapped (CLA 84, C-MAC) once authenticated."""
    wire = Recorder(new_card(None), {GET_FF21: bytes.fromhex("6982")})
    with LocalTransport(wire) as transport:
        survey = discover(transport, opener(keys))
    assert survey.resources is not None and survey.resources.installed_applications == 0
    assert DataObject.EXTENDED_CARD_RESOURCES not in {u.tag for u in survey.unread}
    wrapped = [apdu for apdu in wire.sent if apdu[:4] == bytes.fromhex("84CAFF21")]
    assert len(wrapped) == 1
    assert wire.sent.index(wrapped[0]) > wire.instructions.index(Ins.EXTERNAL_AUTHENTICATE)
    assert SurveySw.SECURITY_STATUS_NOT_SATISFIED == 0x6982


def test_a_wrong_key_authenticates_nothing(keys):
    wire = Recorder(new_card("scp03-kdf3"))
    sd = wire.card.registry.isd.sd
    with LocalTransport(wire) as transport, pytest.raises(CardCryptogramMismatch) as caught:
        discover(transport, opener(keys, "kmc-aes"))  # the KMC itself, not diversified with kdf3
    assert caught.value.code == "cryptogram_mismatch"
    assert "EXTERNAL AUTHENTICATE was not sent" in str(caught.value) and len(str(caught.value).splitlines()) == 1
    assert Ins.EXTERNAL_AUTHENTICATE not in wire.instructions and Ins.GET_STATUS not in wire.instructions
    assert wire.instructions[-1] == Ins.INITIALIZE_UPDATE
    assert sd.failed_authentications == 0
    refused = keys.audit.records(1)[0]
    assert (refused.operation, refused.outcome, refused.detail) == ("secure-channel", "refused", "cryptogram_mismatch")


def test_an_unknown_level_is_refused_before_the_card_is_touched(keys):
    wire = Recorder(new_card(None))
    with LocalTransport(wire) as transport, pytest.raises(InvalidParameter, match="not one of"):
        discover(transport, opener(keys), level=0x02)
    assert wire.sent == []


# ---- through pcscd + vpcd + pyscard ------------------------------------------------------------------------


@pytest.fixture
def served_cardsim(pcscd) -> Iterator:
    """A cardsim card (default profile) inserted in "Virtual PCD 00 00" by a thread for one test."""
    card, stop = new_card(None), threading.Event()
    thread = threading.Thread(target=serve, args=(card,), kwargs={"stop": stop}, name="vpcd-cardsim", daemon=True)
    thread.start()
    try:
        wait_for_card()
        yield card
    finally:
        stop.set()
        thread.join(timeout=5)
        wait_for_removal()


@pytest.mark.pcsc
def test_discover_through_pcscd(keys, served_cardsim):
    with PcscTransport(READER) as transport:
        survey: CardSurvey = discover(transport, opener(keys, level=0x33), level=0x33)
    assert survey.atr == served_cardsim.identity.atr
    assert survey.isd_aid == served_cardsim.registry.isd_aid
    assert cplc.encode_cplc(survey.cplc)[3:] == served_cardsim.identity.cplc
    assert survey.kdd == served_cardsim.identity.kdd and survey.life_cycle is CardLifeCycle.SECURED
    assert survey.resources is not None and survey.channel.scp == 0x03
    assert [e.aid.hex().upper() for e in survey.content.load_files] == ["A0000001515350", "F0000000010101",
                                                                       "F0000000020101"]
    assert served_cardsim.registry.isd.sd.failed_authentications == 0
