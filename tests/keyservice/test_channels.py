"""Secure channels and diagnosis through the facade, against the independent card simulator (cardsim)."""

from __future__ import annotations

import pytest

from cardsim.state import new_card
from globalplatform.keys import KeyAlgorithm
from keyservice.channels import ChannelSpec
from keyservice.errors import CryptogramMismatch, InvalidInput, PolicyDenied
from keyservice.gp.channel import SecurityLevel
from keyservice.gp.diversify import DivMethod
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
TSM = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-1")
GP_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
SELECT_ISD = bytes.fromhex("00A4040000")
GET_STATUS_ISD = bytes.fromhex("80F28002024F0000")
OK = b"\x90\x00"


@pytest.fixture
def lab(keyservice):
    keyservice.keys.import_test(OFFICER, NewKey("gp-aes", KeyAlgorithm.AES, 16, KeyUsage.ISD_KEYSET, "lab"), GP_KEY)
    keyservice.keys.import_test(OFFICER, NewKey("gp-des", KeyAlgorithm.DES3, 16, KeyUsage.ISD_KEYSET, "lab"), GP_KEY)
    keyservice.keys.import_test(OFFICER, NewKey("kmc-des", KeyAlgorithm.DES3, 16, KeyUsage.KMC, "lab"), GP_KEY)
    return keyservice


def _open(card, session):
    assert card.transmit(SELECT_ISD)[-2:] == OK
    response = card.transmit(session.initialize_update())
    assert response[-2:] == OK
    ext = session.authenticate(response[:-2])
    assert card.transmit(ext)[-2:] == OK, "the card refused EXTERNAL AUTHENTICATE"


@pytest.mark.parametrize("level", [SecurityLevel.C_MAC, 0x33])
def test_scp03_channel_against_the_simulator(lab, level):
    card = new_card(None)  # default profile: SCP03 i=70, GP test key
    card.power_on()
    with lab.channels.open(TSM, ChannelSpec(("gp-aes",), security_level=level)) as session:
        _open(card, session)
        plain = session.unwrap(card.transmit(session.wrap(GET_STATUS_ISD)))
        assert plain[-2:] == OK and plain[0] == 0xE3
    assert lab.audit.records(1)[0].operation == "secure-channel"
    assert lab.audit.records(1)[0].detail.startswith("scp=03")


def test_scp02_emv_diversified_channel(lab):
    card = new_card("scp02-emv")
    card.power_on()
    spec = ChannelSpec(("kmc-des",), diversification=DivMethod.EMV, i=0x15)
    with lab.channels.open(TSM, spec) as session:
        _open(card, session)
        assert session.unwrap(card.transmit(session.wrap(GET_STATUS_ISD)))[-2:] == OK


def test_wrong_key_never_sends_external_authenticate(lab):
    card = new_card("scp02-emv")
    card.power_on()
    session = lab.channels.open(TSM, ChannelSpec(("gp-des",)))  # no diversification: wrong card keys
    card.transmit(SELECT_ISD)
    response = card.transmit(session.initialize_update())
    with pytest.raises(CryptogramMismatch):
        session.authenticate(response[:-2])
    with pytest.raises(InvalidInput):
        session.wrap(GET_STATUS_ISD)
    last = lab.audit.records(1)[0]
    assert (last.operation, last.outcome, last.detail) == ("secure-channel", "refused", "cryptogram_mismatch")


def test_policy_refuses_wrong_purpose(lab):
    with pytest.raises(PolicyDenied):
        lab.channels.open(Request(TSM.caller, Purpose.VENDOR_EXPORT, "se-1"), ChannelSpec(("gp-aes",)))


def test_diagnose_names_the_matching_combination(lab):
    card = new_card("scp02-emv")
    card.power_on()
    card.transmit(SELECT_ISD)
    host = bytes.fromhex("0102030405060708")
    response = card.transmit(bytes.fromhex("8050000008") + host + b"\x00")[:-2]
    req = Request(OFFICER.caller, Purpose.DIAGNOSTIC, "card-under-test")
    trials = lab.channels.diagnose(req, ["gp-des", "kmc-des", "gp-aes"], response, host)
    assert [(t.key, t.diversification) for t in trials if t.matched] == [("gp-des", "emv"), ("kmc-des", "emv")]
    assert any(t.key == "gp-aes" and not t.matched for t in trials)
    # the card saw no EXTERNAL AUTHENTICATE: a correct one still works afterwards
    with lab.channels.open(TSM, ChannelSpec(("kmc-des",), diversification=DivMethod.EMV)) as session:
        _open(card, session)


ROTATE = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.KEY_ROTATION, "se-1")


@pytest.mark.parametrize(("profile", "master", "algorithm", "method", "i"), [
    ("default", "5051525354555657585960616263646F", KeyAlgorithm.AES, DivMethod.KDF3, None),
    ("scp02-emv", "5051525354555657585960616263646F", KeyAlgorithm.DES3, DivMethod.EMV, 0x15),
])
def test_put_key_rotates_the_card_onto_a_new_kmc(lab, profile, master, algorithm, method, i):
    """The independent card accepts the key service's PUT KEY, and the new key set then opens a channel."""
    card = new_card(None if profile == "default" else profile)
    card.power_on()
    lab.keys.import_test(OFFICER, NewKey("kmc-new", algorithm, 16, KeyUsage.KMC, "issuer"), bytes.fromhex(master))
    old = ChannelSpec(("gp-aes",), i=i) if profile == "default" else ChannelSpec(("kmc-des",), DivMethod.EMV, i=i)
    with lab.channels.open(ROTATE, old) as session:
        _open(card, session)
        command = session.put_key(ChannelSpec(("kmc-new",), diversification=method), old_kvn=0, new_kvn=0x30)
        response = session.unwrap(card.transmit(session.wrap(command.apdu)))
        assert response[-2:] == OK
        session.check_put_key(command, response[:-2])
    assert lab.audit.records(1)[0].operation == "put-key"
    with lab.channels.open(TSM, ChannelSpec(("kmc-new",), diversification=method, kvn=0x30, i=i)) as session:
        _open(card, session)


def test_put_key_response_with_wrong_kcv_is_refused(lab):
    from keyservice.errors import KcvMismatch

    card = new_card(None)
    card.power_on()
    lab.keys.import_test(OFFICER, NewKey("kmc-new", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"), GP_KEY)
    with lab.channels.open(ROTATE, ChannelSpec(("gp-aes",))) as session:
        _open(card, session)
        command = session.put_key(ChannelSpec(("kmc-new",), diversification=DivMethod.KDF3), 0, 0x31)
        with pytest.raises(KcvMismatch):
            session.check_put_key(command, bytes([0x31]) + bytes(9))


PERSO = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.SE_PERSO, "se-1")
BANK_ELF, BANK_MOD, BANK = (bytes.fromhex(h) for h in ("F0000000020101", "F000000002010101", "F00000000201010101"))
PAN = "4761739001010119"  # a test PAN (cardsim docs)


@pytest.mark.parametrize(("profile", "spec"), [
    ("default", ChannelSpec(("gp-aes",), security_level=0x03)),
    ("scp02-emv", ChannelSpec(("kmc-des",), DivMethod.EMV, security_level=0x03, i=0x15)),
])
def test_bank_card_personalised_with_encrypted_dgis(lab, profile, spec):
    """Encrypted DGIs from the key service are decrypted by the independent card; only the masked PAN shows."""
    from tsm_core.gp.install import install_for_install, install_for_personalization
    from tsm_core.gp.storedata import StoreDataP1, dgi, store_data

    card = new_card(None if profile == "default" else profile)
    card.power_on()
    holder = dgi(0x0101, bytes.fromhex("5F200D") + b"A. CARDHOLDER" + bytes.fromhex("5F2403291231"))
    with lab.channels.open(PERSO, spec) as session:
        _open(card, session)
        secret = session.encrypt_dgi(0x8101, bytes.fromhex("5A08" + PAN)) + \
            session.encrypt_dgi(0x8000, bytes(range(16)))
        commands = [install_for_install(BANK_ELF, BANK_MOD, BANK), install_for_personalization(BANK),
                    *store_data(holder, structure=StoreDataP1.DGI, last=False),
                    *store_data(secret, structure=StoreDataP1.DGI, encryption=StoreDataP1.ENCRYPTED, first_block=1)]
        for command in commands:
            assert session.unwrap(card.transmit(session.wrap(command.to_bytes())))[-2:] == OK
    assert card.transmit(bytes.fromhex("00A4040009") + BANK)[-2:] == OK
    record = card.transmit(bytes.fromhex("00B2010C00"))
    assert b"************0119" in record and bytes.fromhex(PAN) not in record
    assert lab.audit.records(2)[0].detail == "dgi=8000"
    with pytest.raises(PolicyDenied), lab.channels.open(TSM, spec) as other:  # SE_MANAGEMENT may not personalise
        _open(new_card(None if profile == "default" else profile), other)
        other.encrypt_dgi(0x8101, b"x")


def test_pseudo_random_card_challenge_is_checked_with_the_sd_aid(lab):
    """i = 70: the card derives its challenge from its counter and AID (Amd D §6.2.2.1); the host checks it."""
    card = new_card(None)
    card.power_on()
    isd = bytes.fromhex("A000000151000000")
    with lab.channels.open(TSM, ChannelSpec(("gp-aes",), aid=isd)) as session:
        _open(card, session)
    card.power_on()
    card.transmit(SELECT_ISD)
    session = lab.channels.open(TSM, ChannelSpec(("gp-aes",), aid=bytes.fromhex("A000000151000001")))
    response = card.transmit(session.initialize_update())
    with pytest.raises(CryptogramMismatch):
        session.authenticate(response[:-2])
