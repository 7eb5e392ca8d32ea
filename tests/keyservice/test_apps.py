"""Service providers' application keys and sealed service data (`KeyService.apps`, `ChannelSession.app_key_dgi`),
on a real SoftHSM2 token, SQLite and PostgreSQL, against the independent card simulator.

Published vectors: the per-SE application key is the KDF3 'mac' key, whose KCVs GlobalPlatformPro publishes
(tests/vectors/diversify_gpp.json); AES-GCM is proven by the NIST CAVP vectors (tests/vectors/aes_gcm_cavp.json,
through the KAT runner). Here: the same values reach the card end to end, the card's purse accepts the MACs, the
sealed format opens with pyca/cryptography, and every refusal is audited without a secret in the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import MetaData, select

from cardsim.applets import TRANSIT_ELF_AID
from cardsim.applets.transit import DGI_PURSE, DGI_TOPUP_KEY, TransitPurse, top_up_message
from cardsim.profiles import load_profile
from cardsim.state import card_from_profile
from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice.channels import ChannelSession, ChannelSpec, DivMethod
from keyservice.errors import HsmMechanismUnsupported, InvalidInput, KeyStateError, PolicyDenied, UnsealFailed
from keyservice.gp import appkey
from keyservice.gp.kcv import kcv
from keyservice.hsm import Hsm
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from storage.config import with_overrides
from tests.conftest import core_of, make_service
from tests.keyservice.conftest import KeyFactory, count_objects
from tests.keyservice.test_facade import _profile
from tsm_core.gp.install import install_for_install, install_for_personalization
from tsm_core.gp.storedata import StoreDataP1, dgi, store_data

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
TSM = Caller("tsm-core", CallerKind.SERVICE)
PERSO = Request(TSM, Purpose.SE_PERSO, "se-1")
SERVICE = Request(TSM, Purpose.SERVICE, "se-1")
MANAGE = Request(TSM, Purpose.SE_MANAGEMENT, "se-1")
GP_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
DATA_KEY = bytes(range(0xA0, 0xC0))
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
PURSE_AID = TransitPurse.module_aid + b"\x01"
SELECT_ISD = bytes.fromhex("00A4040000")
OK = b"\x90\x00"
SECURITY_STATUS = b"\x69\x82"
PAN = bytes.fromhex("4761739001010119")


def _kdf3_mac_vectors() -> list[dict[str, object]]:
    """GlobalPlatformPro's KDF3 vectors that publish the 'mac' key (as a KCV) for a master of 16 or 32 bytes."""
    doc = json.loads((VECTORS / "diversify_gpp.json").read_text())
    return [v for v in doc["vectors"] if v.get("method") == "kdf3" and "mac" in v.get("expect_kcv", {})
            and len(bytes.fromhex(v["master"])) in (16, 32)]


@pytest.mark.parametrize("vector", _kdf3_mac_vectors(), ids=lambda v: v["id"])
def test_the_per_se_key_is_the_published_kdf3_mac_key(gp_hsm: Hsm, keys: KeyFactory, vector):
    """The helper derives the published 'mac' key as a session object and destroys it after the block."""
    master = bytes.fromhex(vector["master"])
    handle = keys.token(KeyAlgorithm.AES, master)
    before = count_objects(gp_hsm)
    with appkey.per_se_key(gp_hsm, handle, len(master), bytes.fromhex(vector["kdd"])) as key:
        got = kcv(gp_hsm, key, KeyAlgorithm.AES, KcvMethod.GP, 3)
    assert got.hex().upper() == vector["expect_kcv"]["mac"]
    assert count_objects(gp_hsm) == before
    with pytest.raises(InvalidInput), appkey.per_se_key(gp_hsm, handle, len(master), bytes(9)):
        pass


@pytest.fixture
def lab(keyservice):
    ks = keyservice
    for label, alg, usage in (("gp-aes", KeyAlgorithm.AES, KeyUsage.ISD_KEYSET),
                              ("kmc-des", KeyAlgorithm.DES3, KeyUsage.KMC)):
        ks.keys.import_test(OFFICER, NewKey(label, alg, 16, usage, "lab"), GP_KEY)
    ks.keys.import_test(OFFICER, NewKey("transit-app", KeyAlgorithm.AES, 16, KeyUsage.APP_KEY, "sp:transitco"),
                        GP_KEY)
    ks.keys.import_test(OFFICER, NewKey("data-1", KeyAlgorithm.AES, 32, KeyUsage.DATA_KEY, "tsm"), DATA_KEY)
    return ks


# card profile -> (the channel the TSM personalises with, at C-DEC + C-MAC)
PROFILES = {
    "default": ChannelSpec(("gp-aes",), security_level=0x03),
    "scp02-emv": ChannelSpec(("kmc-des",), DivMethod.EMV, security_level=0x03, i=0x15),
}
GPP_KDD = bytes(range(10))  # the KDD of GlobalPlatformPro's KDF3 vectors (diversify_gpp.json)


def _card(profile: str, kdd: bytes = GPP_KDD):
    card = card_from_profile(replace(load_profile(None if profile == "default" else profile), kdd=kdd))
    card.power_on()
    return card


def _channel(ks, card, spec: ChannelSpec, req: Request = PERSO) -> tuple[ChannelSession, bytes]:
    """An authenticated channel to the ISD and the card's KDD (the first 10 bytes of INITIALIZE UPDATE)."""
    assert card.transmit(SELECT_ISD)[-2:] == OK
    session = ks.channels.open(req, spec)
    response = card.transmit(session.initialize_update())
    assert card.transmit(session.authenticate(response[:-2]))[-2:] == OK
    return session, response[:10]


def _personalise(ks, card, spec: ChannelSpec, req: Request = PERSO) -> bytes:
    """Install the demo purse and personalise it over a secure channel: DGI 0101 (currency 0978, balance 1000,
    max balance 5000, max debit 500) in clear, DGI 8001 = this SE's top-up key, encrypted. Returns the KDD."""
    purse = bytes.fromhex("0978") + (1000).to_bytes(4, "big") + (5000).to_bytes(4, "big") + (500).to_bytes(4, "big")
    session, kdd = _channel(ks, card, spec, req)
    with session:
        key_dgi = session.app_key_dgi(DGI_TOPUP_KEY, "transit-app", kdd)
        commands = [install_for_install(TRANSIT_ELF_AID, TransitPurse.module_aid, PURSE_AID),
                    install_for_personalization(PURSE_AID),
                    *store_data(dgi(DGI_PURSE, purse), structure=StoreDataP1.DGI, last=False),
                    *store_data(key_dgi, structure=StoreDataP1.DGI, encryption=StoreDataP1.ENCRYPTED, first_block=1)]
        for command in commands:
            assert session.unwrap(card.transmit(session.wrap(command.to_bytes())))[-2:] == OK
    return kdd


def _top_up(ks, card, kdd: bytes, counter: int, amount: int, *, flip: bool = False) -> bytes:
    """TOP UP (80 52): amount ‖ the first 8 bytes of the SP's CMAC over the card's top-up message."""
    mac = ks.apps.mac(SERVICE, "transit-app", kdd, top_up_message(PURSE_AID, counter, amount))
    assert len(mac) == 16
    sent = bytes([mac[0] ^ 1]) + mac[1:8] if flip else mac[:8]
    assert card.transmit(bytes([0x00, 0xA4, 0x04, 0x00, len(PURSE_AID)]) + PURSE_AID)[-2:] == OK
    return card.transmit(bytes.fromhex("805200000C") + amount.to_bytes(4, "big") + sent)


def _last(ks, n: int = 1):
    return [(r.operation, r.outcome, r.detail) for r in ks.audit.records(n)]


@pytest.mark.parametrize("profile", PROFILES)
def test_transit_purse_personalised_and_topped_up(lab, profile):
    """The card gets its own key (the published KDF3 'mac' key for its KDD), takes TOP UPs MACed by
    `apps.mac` and refuses a wrong MAC or one made for another SE."""
    card = _card(profile)
    kdd = _personalise(lab, card, PROFILES[profile])
    assert kdd == GPP_KDD
    record = lab.audit.records(1)[0]  # the channel's commands are covered by its opening record
    assert (record.operation, record.outcome) == ("store-data", "ok")
    assert record.detail == f"dgi=8001 app-key kdd={GPP_KDD.hex().upper()}"
    assert record.keys[0] == ("transit-app", lab.keys.show("transit-app").kcv)
    on_card = bytes.fromhex(card.registry.app(PURSE_AID).applet_state["key"])
    card_kcv = Cipher(algorithms.AES(on_card), modes.ECB()).encryptor().update(b"\x01" * 16)[:3]  # noqa: S305
    expected = next(v for v in _kdf3_mac_vectors() if v["master"].upper() == GP_KEY.hex().upper())
    assert card_kcv.hex().upper() == expected["expect_kcv"]["mac"]  # the published KDF3 'mac' key, end to end
    assert on_card != GP_KEY

    assert _top_up(lab, card, kdd, 0, 250) == (1250).to_bytes(4, "big") + (1).to_bytes(2, "big") + OK
    objects = count_objects(core_of(lab).hsm)  # each MAC's per-SE key is destroyed after it
    digest = hashlib.sha256(top_up_message(PURSE_AID, 0, 250)).hexdigest()
    assert _last(lab)[0] == ("mac", "ok", f"kdd={GPP_KDD.hex().upper()} data-sha256={digest}")
    assert _top_up(lab, card, kdd, 1, 100, flip=True) == SECURITY_STATUS
    assert _top_up(lab, card, bytes(10), 1, 100) == SECURITY_STATUS  # another SE's key
    assert _top_up(lab, card, kdd, 0, 100) == SECURITY_STATUS  # a replayed counter
    assert _top_up(lab, card, kdd, 1, 100) == (1350).to_bytes(4, "big") + (2).to_bytes(2, "big") + OK
    assert count_objects(core_of(lab).hsm) == objects


def test_a_32_byte_master_gives_a_32_byte_card_key_under_the_static_dek(lab):
    """SCP03: the DGI is AES-CBC(static DEK, ICV 0, key ‖ 80 00..) with the key wrapped in the HSM (pyca decrypts
    it with the GP test DEK); its KCV is the published KDF3 'mac' KCV of the AES-256 master."""
    vector = next(v for v in _kdf3_mac_vectors() if len(v["master"]) == 64)
    lab.keys.import_test(OFFICER, NewKey("app-256", KeyAlgorithm.AES, 32, KeyUsage.APP_KEY, "sp:bankco"),
                         bytes.fromhex(vector["master"]))
    card = _card("default")
    session, kdd = _channel(lab, card, PROFILES["default"])
    with session:
        out = session.app_key_dgi(0x8010, "app-256", kdd)
    assert out[:3] == bytes.fromhex("8010") + bytes([48])
    plain = Cipher(algorithms.AES(GP_KEY), modes.CBC(bytes(16))).decryptor().update(out[3:])
    key, padding = plain[:32], plain[32:]
    assert padding == b"\x80" + bytes(15)
    key_kcv = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(b"\x01" * 16)[:3]  # noqa: S305
    assert key_kcv.hex().upper() == vector["expect_kcv"]["mac"]


def test_sealed_service_data(lab):
    """nonce ‖ ciphertext ‖ tag under the DATA_KEY with the context as AAD (opened by pyca/cryptography); a
    changed byte anywhere, another context, another key or a short value is UnsealFailed, audited."""
    sealed = lab.apps.seal(SERVICE, "data-1", PAN, b"service-42")
    assert len(sealed) == 12 + len(PAN) + 16 and PAN not in sealed
    assert AESGCM(DATA_KEY).decrypt(sealed[:12], sealed[12:], b"service-42") == PAN
    assert lab.apps.seal(SERVICE, "data-1", PAN, b"service-42")[:12] != sealed[:12]  # a fresh nonce each time
    assert lab.apps.unseal(PERSO, "data-1", sealed, b"service-42") == PAN
    assert _last(lab)[0][:2] == ("unseal", "ok")
    lab.keys.import_test(OFFICER, NewKey("data-2", KeyAlgorithm.AES, 32, KeyUsage.DATA_KEY, "tsm"), bytes(32))
    attempts = [("data-1", sealed, b"service-43"), ("data-2", sealed, b"service-42"),
                ("data-1", sealed[:27], b"service-42"), ("data-1", b"", b"service-42")]
    attempts += [("data-1", sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1:], b"service-42")
                 for i in (0, 11, 12, len(sealed) - 17, len(sealed) - 1)]
    for label, blob, context in attempts:
        with pytest.raises(UnsealFailed) as caught:
            lab.apps.unseal(SERVICE, label, blob, context)
        assert PAN.hex() not in str(caught.value).lower()
        assert _last(lab)[0] == ("unseal", "refused", "unseal_failed")
    assert lab.apps.unseal(SERVICE, "data-1", lab.apps.seal(SERVICE, "data-1", b"", b"x"), b"x") == b""
    for call in (lambda: lab.apps.seal(SERVICE, "data-1", PAN, b""),
                 lambda: lab.apps.seal(SERVICE, "data-1", bytes(4097), b"x")):
        with pytest.raises(InvalidInput):
            call()
        assert _last(lab)[0] == ("seal", "refused", "invalid_input")


def test_refusals_are_audited(lab):
    """Wrong purpose, wrong usage, inactive key, bad input: each refused before the HSM and audited."""
    lab.keys.generate(OFFICER, NewKey("app-new", KeyAlgorithm.AES, 16, KeyUsage.APP_KEY, "sp:transitco"))
    lab.keys.change_state(OFFICER, "data-1", KeyState.SUSPENDED)
    message = top_up_message(PURSE_AID, 0, 1)
    refusals = [
        (PolicyDenied, lambda: lab.apps.mac(MANAGE, "transit-app", GPP_KDD, message), "mac", "policy_denied"),
        (PolicyDenied, lambda: lab.apps.mac(SERVICE, "gp-aes", GPP_KDD, message), "mac", "policy_denied"),
        (KeyStateError, lambda: lab.apps.mac(SERVICE, "app-new", GPP_KDD, message), "mac", "key_state"),
        (InvalidInput, lambda: lab.apps.mac(SERVICE, "transit-app", bytes(9), message), "mac", "invalid_input"),
        (PolicyDenied, lambda: lab.channels.mac(SERVICE, "transit-app"), "mac", "policy_denied"),
        (PolicyDenied, lambda: lab.apps.seal(SERVICE, "transit-app", PAN, b"s"), "seal", "policy_denied"),
        (PolicyDenied, lambda: lab.apps.seal(MANAGE, "data-1", PAN, b"s"), "seal", "policy_denied"),
        (KeyStateError, lambda: lab.apps.unseal(SERVICE, "data-1", bytes(40), b"s"), "unseal", "key_state"),
        (PolicyDenied, lambda: lab.keys.generate(SERVICE, NewKey("app-x", KeyAlgorithm.AES, 16, KeyUsage.APP_KEY,
                                                                 "sp:x")), "generate", "policy_denied"),
    ]
    for error, call, operation, code in refusals:
        with pytest.raises(error):
            call()
        assert _last(lab)[0] == (operation, "refused", code), (operation, code)
    for spec in (lambda: NewKey("k", KeyAlgorithm.AES, 24, KeyUsage.APP_KEY, "sp:x"),
                 lambda: NewKey("k", KeyAlgorithm.DES3, 16, KeyUsage.APP_KEY, "sp:x"),
                 lambda: NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.DATA_KEY, "tsm")):
        with pytest.raises(InvalidInput):
            spec()
    card = _card("default")
    session, kdd = _channel(lab, card, PROFILES["default"])
    with session:
        with pytest.raises(PolicyDenied):  # a KMC may be STORE DATA's channel key, never an application master
            session.app_key_dgi(DGI_TOPUP_KEY, "kmc-des", kdd)
        assert _last(lab)[0] == ("store-data", "refused", "policy_denied")
        with pytest.raises(InvalidInput):
            session.app_key_dgi(0x10000, "transit-app", kdd)
        assert _last(lab)[0] == ("store-data", "refused", "invalid_input")
    other, kdd = _channel(lab, _card("default"), PROFILES["default"], MANAGE)
    with other, pytest.raises(PolicyDenied):  # personalisation only
        other.app_key_dgi(DGI_TOPUP_KEY, "transit-app", kdd)
    assert lab.audit.verify().records > 0


def _database_dump(ks) -> str:
    """Every row of every table, as text (lower case), and its bytes as hex."""
    out = []
    with core_of(ks).sessions() as db:
        meta = MetaData()
        meta.reflect(bind=db.connection())
        for table in meta.sorted_tables:
            for row in db.execute(select(table)):
                for value in row:
                    out.append(value.hex() if isinstance(value, bytes) else str(value))
    return "\n".join(out).lower()


@pytest.mark.parametrize("profile", PROFILES)
def test_no_secret_reaches_the_database(lab, profile):
    """The application master, the card's key, the data key and the sealed PAN appear nowhere in the database
    (the pattern of tests/test_cli.py's scan), as hex or as text."""
    card = _card(profile)
    kdd = _personalise(lab, card, PROFILES[profile])
    assert _top_up(lab, card, kdd, 0, 10)[-2:] == OK
    sealed = lab.apps.seal(SERVICE, "data-1", PAN, b"service-1")
    assert lab.apps.unseal(SERVICE, "data-1", sealed, b"service-1") == PAN
    with pytest.raises(UnsealFailed):
        lab.apps.unseal(SERVICE, "data-1", sealed, b"service-2")
    card_key = bytes.fromhex(card.registry.app(PURSE_AID).applet_state["key"])
    dump = _database_dump(lab)
    assert "store-data" in dump and "unseal_failed" in dump  # the scan sees the audit records
    for secret in (GP_KEY, card_key, DATA_KEY, PAN):
        assert secret.hex() not in dump
        assert secret.decode("latin-1").lower() not in dump


def test_the_profile_decides_where_the_key_goes(settings_factory, db_url, tmp_path):
    """A profile that marks `app_key_dgi_scp02` and `aes_gcm` unsupported refuses those calls (audited as errors);
    SCP03, whose DGI is wrapped inside the HSM, still personalises."""
    settings, test_token = settings_factory(db_url)
    profile = _profile(tmp_path, app_key_dgi_scp02="unsupported", aes_gcm="unsupported")
    ks = make_service(with_overrides(settings, hsm_profile=profile), test_token)
    strategies = {s.step: s for s in ks.strategies()}
    assert strategies["app_key_dgi_scp03"].strategy == "native_wrap"
    assert not strategies["app_key_dgi_scp03"].key_in_host_memory
    for label, alg, usage in (("gp-aes", KeyAlgorithm.AES, KeyUsage.ISD_KEYSET),
                              ("kmc-des", KeyAlgorithm.DES3, KeyUsage.KMC)):
        ks.keys.import_test(OFFICER, NewKey(label, alg, 16, usage, "lab"), GP_KEY)
    ks.keys.import_test(OFFICER, NewKey("transit-app", KeyAlgorithm.AES, 16, KeyUsage.APP_KEY, "sp:t"), GP_KEY)
    ks.keys.import_test(OFFICER, NewKey("data-1", KeyAlgorithm.AES, 32, KeyUsage.DATA_KEY, "tsm"), DATA_KEY)
    session, kdd = _channel(ks, _card("scp02-emv"), PROFILES["scp02-emv"])
    with session, pytest.raises(HsmMechanismUnsupported, match="app_key_dgi_scp02"):
        session.app_key_dgi(DGI_TOPUP_KEY, "transit-app", kdd)
    assert _last(ks)[0] == ("store-data", "error", "hsm_mechanism_unsupported")
    with pytest.raises(HsmMechanismUnsupported, match="aes_gcm"):
        ks.apps.seal(SERVICE, "data-1", PAN, b"service-1")
    assert _last(ks)[0] == ("seal", "error", "hsm_mechanism_unsupported")
    card = _card("default")
    _personalise(ks, card, PROFILES["default"])
    assert _top_up(ks, card, GPP_KDD, 0, 1)[-2:] == OK
