"""Key inventory on a real SoftHSM2 token, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice.errors import (
    InvalidInput,
    KeyExists,
    KeyNotFound,
    KeyStateError,
    PolicyDenied,
    TestTokenOnly,
)
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from tests.conftest import core_of, make_service

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
GP_TEST_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


def test_generate_records_a_non_extractable_key(keyservice):
    view = keyservice.keys.generate(OFFICER, NewKey("kmc-a", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"))
    assert view.state == KeyState.PRE_ACTIVATION
    assert view.provenance == "generated" and len(view.kcv) == 6
    assert [k.label for k in keyservice.keys.list_keys(KeyUsage.KMC)] == ["kmc-a"]
    from pkcs11.constants import Attribute

    with core_of(keyservice).hsm.lock:
        obj = next(core_of(keyservice).hsm._session.get_objects({Attribute.LABEL: "kmc-a"}))
        assert obj[Attribute.SENSITIVE] and not obj[Attribute.EXTRACTABLE] and obj[Attribute.NEVER_EXTRACTABLE]
    assert keyservice.keys.check().consistent


def test_import_test_key_gives_published_kcvs(keyservice):
    aes = keyservice.keys.import_test(OFFICER, NewKey("gp-aes", KeyAlgorithm.AES, 16, KeyUsage.ISD_KEYSET, "lab"),
                                     GP_TEST_KEY)
    des = keyservice.keys.import_test(OFFICER, NewKey("gp-des", KeyAlgorithm.DES3, 16, KeyUsage.ISD_KEYSET, "lab"),
                                     GP_TEST_KEY)
    # GPCS 2.3.1 B.6 / Amd D 7.2.2 KCVs of the GP test key (shared/vectors/kcv.json kcv-gp-1, kcv-gp-2)
    assert (aes.kcv, des.kcv) == ("504A77", "8BAF47")
    # X9.24-1 A.3 CMAC KCV and the AES-over-zeros variant go through the same facade
    assert len(keyservice.keys.kcv(OFFICER, "gp-aes", KcvMethod.AES_CMAC, 5)) == 10
    with pytest.raises(InvalidInput):
        keyservice.keys.kcv(OFFICER, "gp-des", KcvMethod.AES_CMAC)


def test_clear_import_refused_on_a_production_token(settings_factory, db_url):
    service = make_service(*settings_factory(db_url, test_token=False))
    with pytest.raises(TestTokenOnly):
        service.keys.import_test(OFFICER, NewKey("x", KeyAlgorithm.AES, 16, KeyUsage.KMC, "lab"), GP_TEST_KEY)
    assert service.keys.list_keys(KeyUsage.KMC) == []
    assert service.audit.records(1)[0].outcome == "refused"


def test_state_machine_follows_sp800_57(keyservice):
    keyservice.keys.generate(OFFICER, NewKey("k1", KeyAlgorithm.DES3, 24, KeyUsage.KMC, "issuer"))
    assert keyservice.keys.change_state(OFFICER, "k1", KeyState.ACTIVE).state == "active"
    assert keyservice.keys.change_state(OFFICER, "k1", KeyState.SUSPENDED).state == "suspended"
    with pytest.raises(KeyStateError):
        keyservice.keys.change_state(OFFICER, "k1", KeyState.PRE_ACTIVATION)
    with pytest.raises(KeyStateError):  # active keys are deactivated before destruction
        keyservice.keys.destroy(OFFICER, "k1")
    keyservice.keys.change_state(OFFICER, "k1", KeyState.DEACTIVATED)
    assert keyservice.keys.destroy(OFFICER, "k1").state == "destroyed"
    assert keyservice.keys.check().consistent
    assert keyservice.keys.list_keys() == [k for k in keyservice.keys.list_keys() if k.label != "k1"]
    assert [k.state for k in keyservice.keys.list_keys(include_destroyed=True) if k.label == "k1"] == ["destroyed"]


def test_bad_input_is_typed(keyservice):
    with pytest.raises(InvalidInput):
        NewKey("k", KeyAlgorithm.AES, 15, KeyUsage.KMC, "x")
    with pytest.raises(InvalidInput):
        NewKey("", KeyAlgorithm.AES, 16, KeyUsage.KMC, "x")
    with pytest.raises(InvalidInput):
        NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.KMC, "x", kvn=300)
    with pytest.raises(KeyNotFound):
        keyservice.keys.show("nope")
    keyservice.keys.generate(OFFICER, NewKey("dup", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"))
    with pytest.raises(KeyExists):
        keyservice.keys.generate(OFFICER, NewKey("dup", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"))
    assert keyservice.keys.check().consistent


def test_policy_is_checked_and_refusals_audited(keyservice):
    service_caller = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.KEY_MANAGEMENT, "se-1")
    with pytest.raises(PolicyDenied):
        keyservice.keys.generate(service_caller, NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.KMC, "x"))
    keyservice.keys.import_test(OFFICER, NewKey("tok", KeyAlgorithm.AES, 16, KeyUsage.RECEIPT_KEY, "x"), GP_TEST_KEY)
    with pytest.raises(PolicyDenied):
        keyservice.keys.change_state(Request(Caller("v", CallerKind.VENDOR), Purpose.KEY_MANAGEMENT, "x"), "tok",
                                KeyState.SUSPENDED)
    with pytest.raises(PolicyDenied):  # right caller, wrong purpose
        keyservice.keys.change_state(Request(OFFICER.caller, Purpose.SE_PERSO, "x"), "tok", KeyState.SUSPENDED)
    assert keyservice.keys.show("tok").state == "active"
    last = keyservice.audit.records(2)
    assert last[-1].outcome == "refused" and last[-1].detail == "policy_denied"
    assert keyservice.audit.verify().records >= 3


def test_token_and_inventory_disagreement_is_reported(keyservice):
    keyservice.keys.generate(OFFICER, NewKey("gone", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"))
    core_of(keyservice).hsm.destroy("gone")  # behind the inventory's back
    assert keyservice.keys.check().missing_on_token == ["gone"]
    from pkcs11.mechanisms import KeyType

    from keyservice import templates

    core_of(keyservice).hsm.create("stray", b"\x99", KeyType.AES, GP_TEST_KEY, templates.ALL_CAPABILITIES)
    assert keyservice.keys.check().missing_in_inventory == ["stray"]


def test_selftest_on_the_production_token_leaves_nothing_behind(keyservice):
    before = core_of(keyservice).hsm.objects()
    report = keyservice.run_selftest()
    assert report.ok and report.passed >= 10
    assert core_of(keyservice).hsm.objects() == before
    assert keyservice.selftest_status() == {"status": "ok", "vectors": report.passed}


def test_attribute_drift_is_reported(keyservice):
    from pkcs11.constants import Attribute

    keyservice.keys.generate(OFFICER, NewKey("kmc-d", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"))
    assert keyservice.keys.check().consistent
    with core_of(keyservice).hsm.lock:
        obj = next(core_of(keyservice).hsm._session.get_objects({Attribute.LABEL: "kmc-d"}))
        obj[Attribute.DECRYPT] = True  # a KMC must not decrypt
    report = keyservice.keys.check()
    assert report.wrong_attributes == ["kmc-d: DECRYPT is True, its template says False"]
    assert not report.consistent
