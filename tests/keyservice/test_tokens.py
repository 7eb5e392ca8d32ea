"""Delegated Management tokens, receipts and DAP signatures through the facade (GPCS 2.3.1 Annex C), checked by the
independent card simulator (cardsim verifies tokens and DAPs, and makes the receipts), on SQLite and PostgreSQL.

No published vector frames a GP token, receipt or DAP: the RSA signature primitive is proven by the Wycheproof
vectors (tests/vectors/rsa_pkcs1_sign_wycheproof.json), the MACs by the SCP02/SCP03 and KCV vectors; the framing
here against cardsim, and RSA DAPs (which cardsim does not verify) against pyca/cryptography.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardsim.keys import Key, KeySet, KeyType
from cardsim.state import new_card
from globalplatform.keys import KeyAlgorithm
from keyservice.channels import ChannelSession, ChannelSpec, DivMethod
from keyservice.errors import InvalidInput, MacMismatch
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from tests.cardsim import gp

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
TSM = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-1")
TEST_KEY = bytes(range(0x40, 0x50))
PKG = bytes.fromhex("D27600012301")
MOD = PKG + b"\x01"
APP = PKG + b"\x01\x01"
SSD = bytes.fromhex("D2760001239900")
SSD_ELF, SSD_MOD = bytes.fromhex("F0000000010101"), bytes.fromhex("F000000001010101")
DM_SSD = b"\xa0\x00\x00"  # Security Domain + Delegated Management (GPCS 2.3.1 Table 11-7)
MANDATED_DAP_SSD = b"\xc1\x40\x00"  # Security Domain + DAP Verification + Mandated DAP Verification
OK = 0x9000

# card profile -> (ISD channel, SSD channel, the receipt / DAP key algorithm the profile's DEK can carry)
PROFILES = {
    "default": (ChannelSpec(("gp-aes",)), ChannelSpec(("gp-aes",)), "aes"),
    "scp02-emv": (ChannelSpec(("kmc-des",), DivMethod.EMV, i=0x15), ChannelSpec(("gp-des",), i=0x15), "des"),
}


def _make(ks, label: str, algorithm: KeyAlgorithm, length: int, usage: KeyUsage, value: bytes | None = None,
          exportable: bool = False) -> None:
    spec = NewKey(label, algorithm, length, usage, "issuer", exportable=exportable)
    if value is None:
        ks.keys.generate(OFFICER, spec)
        ks.keys.change_state(OFFICER, label, KeyState.ACTIVE)
    else:
        ks.keys.import_test(OFFICER, spec, value)


@pytest.fixture
def dm(keyservice):
    ks = keyservice
    for alg, name in ((KeyAlgorithm.AES, "gp-aes"), (KeyAlgorithm.DES3, "gp-des")):
        _make(ks, name, alg, 16, KeyUsage.ISD_KEYSET, TEST_KEY)
    _make(ks, "kmc-des", KeyAlgorithm.DES3, 16, KeyUsage.KMC, TEST_KEY)
    _make(ks, "token-1k", KeyAlgorithm.RSA, 1024, KeyUsage.TOKEN_KEY)
    for alg, name in ((KeyAlgorithm.AES, "aes"), (KeyAlgorithm.DES3, "des")):
        _make(ks, f"receipt-{name}", alg, 16, KeyUsage.RECEIPT_KEY, bytes(range(0x70, 0x80)), exportable=True)
        _make(ks, f"dap-{name}", alg, 16, KeyUsage.DAP_KEY, bytes(range(0x60, 0x70)), exportable=True)
    return ks


class Link:
    """One card and one secure channel of the key service to the selected SD."""

    def __init__(self, ks, card, spec: ChannelSpec, aid: bytes | None = None) -> None:
        if aid is not None:
            assert card.transmit(gp.select(aid))[-2:] == b"\x90\x00"
        self.card = card
        self.session: ChannelSession = ks.channels.open(TSM, spec)
        response = card.transmit(self.session.initialize_update())
        assert card.transmit(self.session.authenticate(response[:-2]))[-2:] == b"\x90\x00"

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.session.unwrap(self.card.transmit(self.session.wrap(apdu)))
        return response[:-2], int.from_bytes(response[-2:], "big")

    def put(self, label: str, kvn: int) -> None:
        command = self.session.put_single_key(label, kvn)
        data, sw = self.send(command.apdu)
        assert sw == OK
        self.session.check_put_key(command, data)


def _card(profile: str):
    card = new_card(None if profile == "default" else profile)
    card.power_on()
    return card


def _dm_ssd(ks, card, profile: str, receipt: str | None) -> Link:
    """The ISD gets the token key (KVN 70) and a receipt key (KVN 71); an SSD with Delegated Management."""
    isd_spec, ssd_spec, _ = PROFILES[profile]
    isd = Link(ks, card, isd_spec, card.registry.isd_aid)
    isd.put("token-1k", 0x70)
    if receipt is not None:
        isd.put(receipt, 0x71)
    data = gp.install_data(SSD_ELF, SSD_MOD, SSD, DM_SSD, gp.tlv(0xC9, b""))
    assert isd.send(gp.install(0x0C, data))[1] == OK
    return Link(ks, card, ssd_spec, SSD)


def _last(ks):
    record = ks.audit.records(1)[0]
    return record.operation, record.outcome, record.detail


@pytest.mark.parametrize("profile", PROFILES)
def test_delegated_management_load_install_delete_with_receipts(dm, profile):
    """Tokens signed in the HSM are accepted by the card; each receipt the card returns verifies."""
    card = _card(profile)
    receipt_key = f"receipt-{PROFILES[profile][2]}"
    ssd = _dm_ssd(dm, card, profile, receipt_key)
    kdd = card.identity.kdd

    load = gp.install_for_load_data(PKG, SSD)
    assert ssd.send(gp.install(0x02, load))[1] == 0x6982  # no token
    token = dm.tokens.dm_token(TSM, "token-1k", 0x02, 0x00, load)
    assert len(token) == 128 and _last(dm)[:2] == ("dm-token", "ok")
    assert ssd.send(gp.install(0x02, load, token)) == (b"\x00", OK)
    for block in gp.load_blocks(gp.cap_file(PKG, [MOD])):
        confirmation, sw = ssd.send(block)
    assert sw == OK
    first = dm.tokens.verify_receipt(TSM, receipt_key, gp.lv(PKG) + gp.lv(SSD), confirmation)
    assert first.card_unique_data == kdd and len(first.receipt) == (16 if profile == "default" else 8)
    assert _last(dm) == ("verify-receipt", "ok", f"counter={first.counter:04X} card={kdd.hex().upper()}")

    install = gp.install_data(PKG, MOD, APP)
    confirmation, sw = ssd.send(gp.install(0x0C, install, dm.tokens.dm_token(TSM, "token-1k", 0x0C, 0x00, install)))
    assert sw == OK
    assert dm.tokens.verify_receipt(TSM, receipt_key, gp.lv(PKG) + gp.lv(APP), confirmation).counter == \
        first.counter + 1
    with pytest.raises(MacMismatch):  # the receipt of one command does not confirm another
        dm.tokens.verify_receipt(TSM, receipt_key, gp.lv(PKG) + gp.lv(SSD), confirmation)
    assert _last(dm) == ("verify-receipt", "refused", "mac_mismatch")

    delete = gp.tlv(0x4F, APP)
    confirmation, sw = ssd.send(gp.delete(APP, token=dm.tokens.dm_token(TSM, "token-1k", 0x00, 0x00, delete)))
    assert sw == OK and APP not in card.registry.apps
    tampered = confirmation[:-1] + bytes([confirmation[-1] ^ 1])
    with pytest.raises(MacMismatch):
        dm.tokens.verify_receipt(TSM, receipt_key, gp.lv(APP), tampered)
    assert dm.tokens.verify_receipt(TSM, receipt_key, gp.lv(APP), confirmation).counter == first.counter + 2


def test_a_token_of_another_key_is_refused_by_the_card(dm):
    _make(dm, "token-other", KeyAlgorithm.RSA, 1024, KeyUsage.TOKEN_KEY)
    card = _card("default")
    ssd = _dm_ssd(dm, card, "default", None)
    load = gp.install_for_load_data(PKG, SSD)
    assert ssd.send(gp.install(0x02, load, dm.tokens.dm_token(TSM, "token-other", 0x02, 0x00, load)))[1] == 0x6982
    assert ssd.send(gp.install(0x02, load, dm.tokens.dm_token(TSM, "token-1k", 0x02, 0x80, load)))[1] != OK


@pytest.mark.parametrize("bits", [2048, 3072])
def test_longer_token_keys_sign_with_sha256_as_the_card_verifies(dm, bits):
    """A 2048/3072-bit public key does not fit one short PUT KEY (refused, audited), nor does its token fit a
    short INSTALL: cardsim speaks short APDUs only. Its own token check (cardsim.dm.verify_token) is called
    directly, with the public key put into the card's ISD: SHA-256 for keys above 1024 bits."""
    from cardsim import dm as card_dm
    from cardsim.sw import ApduError

    _make(dm, "token-long", KeyAlgorithm.RSA, bits, KeyUsage.TOKEN_KEY)
    card = _card("default")
    isd = Link(dm, card, PROFILES["default"][0], card.registry.isd_aid)
    with pytest.raises(InvalidInput, match="does not fit one short PUT KEY"):
        isd.session.put_single_key("token-long", 0x70)
    assert _last(dm) == ("put-key", "refused", "invalid_input")
    public = dm.tokens.public_key("token-long")
    assert public.bits == bits
    card.registry.isd.sd.keysets[0x70] = KeySet(0x70, {1: Key(1, KeyType.RSA_MODULUS, public.modulus,
                                                                public.exponent)})
    load = gp.install_for_load_data(PKG, SSD)
    token = dm.tokens.dm_token(TSM, "token-long", 0x02, 0x00, load)
    assert len(token) == bits // 8
    card_dm.verify_token(card, bytes([0x02, 0x00, len(load)]) + load, token)
    with pytest.raises(ApduError):
        card_dm.verify_token(card, bytes([0x02, 0x80, len(load)]) + load, token)


@pytest.mark.parametrize("profile", PROFILES)
def test_dap_accepted_by_the_cards_mandated_dap_verification(dm, profile):
    """An SSD with Mandated DAP Verification gets the DAP key (KVN 73); a load through the ISD then needs the DAP
    the key service computes, and a DAP over another load file is refused."""
    card = _card(profile)
    isd_spec, ssd_spec, alg = PROFILES[profile]
    isd = Link(dm, card, isd_spec, card.registry.isd_aid)
    data = gp.install_data(SSD_ELF, SSD_MOD, SSD, MANDATED_DAP_SSD, gp.tlv(0xC9, b""))
    assert isd.send(gp.install(0x0C, data))[1] == OK
    Link(dm, card, ssd_spec, SSD).put(f"dap-{alg}", 0x73)
    lfdb = gp.cap_file(PKG, [MOD])
    right = dm.tokens.dap_signature(TSM, f"dap-{alg}", hashlib.sha256(lfdb).digest())
    wrong = dm.tokens.dap_signature(TSM, f"dap-{alg}", hashlib.sha256(lfdb + b"\x00").digest())
    assert _last(dm)[:2] == ("dap-signature", "ok") and len(right) == (16 if alg == "aes" else 8)
    isd = Link(dm, card, isd_spec, card.registry.isd_aid)
    for dap, expect in ((wrong, 0x6982), (right, OK)):
        assert isd.send(gp.install(0x02, gp.install_for_load_data(PKG)))[1] == OK
        block = gp.tlv(0xE2, gp.tlv(0x4F, SSD) + gp.tlv(0xC3, dap))
        for apdu in gp.load_blocks(lfdb, block):
            sw = isd.send(apdu)[1]
        assert sw == expect
    assert PKG in card.registry.load_files


GP_SHA1 = hashes.SHA1()  # noqa: S303 - GPCS 2.3.1 §C.4.1: 1024-bit keys sign with SHA-1


@pytest.mark.parametrize(("bits", "hash_"), [(1024, GP_SHA1), (2048, hashes.SHA256())])
def test_rsa_dap_verifies_with_the_public_key(dm, bits, hash_):
    """cardsim verifies symmetric DAPs only: an RSA DAP is checked with pyca/cryptography instead."""
    _make(dm, "dap-rsa", KeyAlgorithm.RSA, bits, KeyUsage.DAP_KEY)
    digest = hashlib.sha256(b"load file").digest()
    signature = dm.tokens.dap_signature(TSM, "dap-rsa", digest)
    public = dm.tokens.public_key("dap-rsa")
    key = rsa.RSAPublicNumbers(public.exponent_int, public.modulus_int).public_key()
    key.verify(signature, digest, padding.PKCS1v15(), hash_)
    with pytest.raises(InvalidSignature):
        key.verify(signature, digest[::-1], padding.PKCS1v15(), hash_)


@pytest.mark.parametrize("bits", [1024, 2048, 3072])
def test_rsa_key_pair_generated_recorded_and_checked(keyservice, bits):
    from pkcs11.constants import Attribute, ObjectClass

    from keyservice.errors import HsmOperationRefused
    from tests.conftest import core_of

    view = keyservice.keys.generate(OFFICER, NewKey("pair", KeyAlgorithm.RSA, bits, KeyUsage.TOKEN_KEY, "issuer"))
    assert (view.algorithm, view.length, view.kcv_method, view.exportable) == ("rsa", bits, "spki_sha256", False)
    public = keyservice.tokens.public_key("pair")
    spki = rsa.RSAPublicNumbers(public.exponent_int, public.modulus_int).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert view.kcv == hashlib.sha256(spki).hexdigest()[:6].upper() and public.exponent_int == 65537
    assert keyservice.keys.kcv(OFFICER, "pair") == view.kcv
    assert keyservice.audit.records(2)[0].keys == (("pair", view.kcv),)
    assert keyservice.keys.show("pair").signed and keyservice.keys.check().consistent
    hsm = core_of(keyservice).hsm
    private = hsm.handle("pair", ObjectClass.PRIVATE_KEY)
    assert hsm.raw.get_bytes(private, Attribute.MODULUS).lstrip(b"\0") == public.modulus  # public: readable
    with pytest.raises(HsmOperationRefused):
        hsm.raw.get_bytes(private, Attribute.PRIVATE_EXPONENT)  # the private key never leaves the HSM
    for attribute, want in ((Attribute.SENSITIVE, True), (Attribute.ALWAYS_SENSITIVE, True),
                            (Attribute.EXTRACTABLE, False), (Attribute.NEVER_EXTRACTABLE, True),
                            (Attribute.TOKEN, True), (Attribute.DECRYPT, False), (Attribute.SIGN, True)):
        assert hsm.raw.get_bool(private, attribute) is want, attribute
    keyservice.keys.destroy(OFFICER, "pair")
    assert "pair" not in {o.label for o in hsm.objects()} and keyservice.keys.check().consistent


def test_rsa_drift_and_a_missing_half_are_reported(keyservice):
    from pkcs11.constants import Attribute, ObjectClass

    from tests.conftest import core_of

    keyservice.keys.generate(OFFICER, NewKey("pair", KeyAlgorithm.RSA, 1024, KeyUsage.DAP_KEY, "sp:bank"))
    hsm = core_of(keyservice).hsm
    with hsm.lock:
        private = next(o for o in hsm._session.get_objects({Attribute.LABEL: "pair",
                                                            Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        private[Attribute.DECRYPT] = True
    assert keyservice.keys.check().wrong_attributes == ["pair: DECRYPT is True, its template says False"]
    hsm.raw.destroy(hsm.handle("pair", ObjectClass.PUBLIC_KEY))
    hsm.forget("pair")
    assert "pair: the public key object is missing" in keyservice.keys.check().wrong_attributes


def test_rsa_serves_only_tokens_and_daps(keyservice):
    for spec in (lambda: NewKey("k", KeyAlgorithm.RSA, 2048, KeyUsage.KMC, "x"),
                 lambda: NewKey("k", KeyAlgorithm.RSA, 2048, KeyUsage.RECEIPT_KEY, "x"),
                 lambda: NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.TOKEN_KEY, "x"),
                 lambda: NewKey("k", KeyAlgorithm.RSA, 2048, KeyUsage.TOKEN_KEY, "x", exportable=True)):
        with pytest.raises(InvalidInput):
            spec()
    with pytest.raises(InvalidInput, match="1024, 2048, 3072, 4096 bits long, not 16"):
        NewKey("k", KeyAlgorithm.RSA, 16, KeyUsage.TOKEN_KEY, "x")
    with pytest.raises(InvalidInput, match="key pair generated in the HSM"):
        keyservice.keys.import_test(OFFICER, NewKey("k", KeyAlgorithm.RSA, 1024, KeyUsage.TOKEN_KEY, "x"), bytes(128))


def test_refusals_are_audited_and_a_sealed_service_refuses(dm):
    from keyservice.errors import KeyStateError, PolicyDenied, ServiceSealed

    _make(dm, "dap-rsa", KeyAlgorithm.RSA, 1024, KeyUsage.DAP_KEY)
    _make(dm, "receipt-fixed", KeyAlgorithm.AES, 16, KeyUsage.RECEIPT_KEY, bytes(16))
    dm.keys.generate(OFFICER, NewKey("token-new", KeyAlgorithm.RSA, 1024, KeyUsage.TOKEN_KEY, "issuer"))
    vendor = Request(TSM.caller, Purpose.VENDOR_EXPORT, "se-1")
    refusals = [
        (PolicyDenied, lambda: dm.tokens.dm_token(TSM, "receipt-aes", 0x02, 0x00, b""), "dm-token", "policy_denied"),
        (PolicyDenied, lambda: dm.tokens.dm_token(vendor, "token-1k", 0x02, 0x00, b""), "dm-token", "policy_denied"),
        (PolicyDenied, lambda: dm.tokens.dap_signature(TSM, "token-1k", bytes(32)), "dap-signature",
         "policy_denied"),
        (KeyStateError, lambda: dm.tokens.dm_token(TSM, "token-new", 0x02, 0x00, b""), "dm-token", "key_state"),
        (InvalidInput, lambda: dm.tokens.dm_token(TSM, "token-1k", 0x02, 0x00, bytes(256)), "dm-token",
         "invalid_input"),
        (InvalidInput, lambda: dm.tokens.dap_signature(TSM, "dap-aes", bytes(10)), "dap-signature",
         "invalid_input"),
        (InvalidInput, lambda: dm.tokens.verify_receipt(TSM, "receipt-aes", b"", b"\x00"), "verify-receipt",
         "invalid_input"),
        (InvalidInput, lambda: dm.channels.mac(TSM, "dap-rsa"), "mac", "invalid_input"),
    ]
    for error, call, operation, code in refusals:
        with pytest.raises(error):
            call()
        assert _last(dm) == (operation, "refused", code), (operation, code)
    card = _card("default")
    isd = Link(dm, card, PROFILES["default"][0], card.registry.isd_aid)
    with pytest.raises(InvalidInput, match="not exportable"):
        isd.session.put_single_key("receipt-fixed", 0x71)
    assert _last(dm) == ("put-key", "refused", "invalid_input")
    assert dm.audit.verify().records > 0
    dm.seal()
    for call in (lambda: dm.tokens.dm_token(TSM, "token-1k", 0x02, 0x00, b""),
                 lambda: dm.tokens.verify_receipt(TSM, "receipt-aes", b"", b"\x00"),
                 lambda: dm.tokens.dap_signature(TSM, "dap-aes", bytes(32)),
                 lambda: dm.tokens.public_key("token-1k")):
        with pytest.raises(ServiceSealed):
            call()
