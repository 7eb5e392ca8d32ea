"""Key inventory on a real SoftHSM2 token, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from keyservice.errors import (
    InvalidInput,
    KeyExists,
    KeyNotFound,
    KeyStateError,
    PolicyDenied,
    TestTokenOnly,
)
from keyservice.inventory import Algorithm, KcvMethod, KeyState, KeyUsage
from keyservice.policy import Caller, CallerKind, Purpose, Request
from keyservice.service import NewKey
from tests.conftest import make_service

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
GP_TEST_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


def test_generate_records_a_non_extractable_key(keyservice):
    view = keyservice.generate(OFFICER, NewKey("kmc-a", Algorithm.AES, 16, KeyUsage.KMC, "issuer"))
    assert view.state == KeyState.PRE_ACTIVATION
    assert view.provenance == "generated" and len(view.kcv) == 6
    assert [k.label for k in keyservice.list_keys(KeyUsage.KMC)] == ["kmc-a"]
    from pkcs11.constants import Attribute

    with keyservice.hsm.lock:
        obj = next(keyservice.hsm._session.get_objects({Attribute.LABEL: "kmc-a"}))
        assert obj[Attribute.SENSITIVE] and not obj[Attribute.EXTRACTABLE] and obj[Attribute.NEVER_EXTRACTABLE]
    assert keyservice.check_token().consistent


def test_import_test_key_gives_published_kcvs(keyservice):
    aes = keyservice.import_test_key(OFFICER, NewKey("gp-aes", Algorithm.AES, 16, KeyUsage.ISD_KEYSET, "lab"),
                                     GP_TEST_KEY)
    des = keyservice.import_test_key(OFFICER, NewKey("gp-des", Algorithm.DES3, 16, KeyUsage.ISD_KEYSET, "lab"),
                                     GP_TEST_KEY)
    # GPCS 2.3.1 B.6 / Amd D 7.2.2 KCVs of the GP test key (shared/vectors/kcv.json kcv-gp-1, kcv-gp-2)
    assert (aes.kcv, des.kcv) == ("504A77", "8BAF47")
    # X9.24-1 A.3 CMAC KCV and the AES-over-zeros variant go through the same facade
    assert len(keyservice.kcv(OFFICER, "gp-aes", KcvMethod.AES_CMAC, 5)) == 10
    with pytest.raises(InvalidInput):
        keyservice.kcv(OFFICER, "gp-des", KcvMethod.AES_CMAC)


def test_clear_import_refused_on_a_production_token(settings_factory, db_url):
    service = make_service(*settings_factory(db_url, test_token=False))
    with pytest.raises(TestTokenOnly):
        service.import_test_key(OFFICER, NewKey("x", Algorithm.AES, 16, KeyUsage.KMC, "lab"), GP_TEST_KEY)
    assert service.list_keys(KeyUsage.KMC) == []
    assert service.audit.records(1)[0].outcome == "refused"


def test_state_machine_follows_sp800_57(keyservice):
    keyservice.generate(OFFICER, NewKey("k1", Algorithm.DES3, 24, KeyUsage.KMC, "issuer"))
    assert keyservice.change_state(OFFICER, "k1", KeyState.ACTIVE).state == "active"
    assert keyservice.change_state(OFFICER, "k1", KeyState.SUSPENDED).state == "suspended"
    with pytest.raises(KeyStateError):
        keyservice.change_state(OFFICER, "k1", KeyState.PRE_ACTIVATION)
    with pytest.raises(KeyStateError):  # active keys are deactivated before destruction
        keyservice.destroy(OFFICER, "k1")
    keyservice.change_state(OFFICER, "k1", KeyState.DEACTIVATED)
    assert keyservice.destroy(OFFICER, "k1").state == "destroyed"
    assert keyservice.check_token().consistent
    assert keyservice.list_keys() == [k for k in keyservice.list_keys() if k.label != "k1"]
    assert [k.state for k in keyservice.list_keys(include_destroyed=True) if k.label == "k1"] == ["destroyed"]


def test_bad_input_is_typed(keyservice):
    with pytest.raises(InvalidInput):
        NewKey("k", Algorithm.AES, 15, KeyUsage.KMC, "x")
    with pytest.raises(InvalidInput):
        NewKey("", Algorithm.AES, 16, KeyUsage.KMC, "x")
    with pytest.raises(InvalidInput):
        NewKey("k", Algorithm.AES, 16, KeyUsage.KMC, "x", kvn=300)
    with pytest.raises(KeyNotFound):
        keyservice.show("nope")
    keyservice.generate(OFFICER, NewKey("dup", Algorithm.AES, 16, KeyUsage.KEK, "x"))
    with pytest.raises(KeyExists):
        keyservice.generate(OFFICER, NewKey("dup", Algorithm.AES, 16, KeyUsage.KEK, "x"))
    assert keyservice.check_token().consistent


def test_policy_is_checked_and_refusals_audited(keyservice):
    service_caller = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.KEY_MANAGEMENT, "se-1")
    with pytest.raises(PolicyDenied):
        keyservice.generate(service_caller, NewKey("k", Algorithm.AES, 16, KeyUsage.KMC, "x"))
    keyservice.import_test_key(OFFICER, NewKey("tok", Algorithm.AES, 16, KeyUsage.TOKEN_KEY, "x"), GP_TEST_KEY)
    with pytest.raises(PolicyDenied):
        keyservice.change_state(Request(Caller("v", CallerKind.VENDOR), Purpose.KEY_MANAGEMENT, "x"), "tok",
                                KeyState.SUSPENDED)
    with pytest.raises(PolicyDenied):  # right caller, wrong purpose
        keyservice.change_state(Request(OFFICER.caller, Purpose.SE_PERSO, "x"), "tok", KeyState.SUSPENDED)
    assert keyservice.show("tok").state == "active"
    last = keyservice.audit.records(2)
    assert last[-1].outcome == "refused" and last[-1].detail == "policy_denied"
    assert keyservice.verify_audit().records >= 3


def test_token_and_inventory_disagreement_is_reported(keyservice):
    keyservice.generate(OFFICER, NewKey("gone", Algorithm.AES, 16, KeyUsage.KEK, "x"))
    keyservice.hsm.destroy("gone")  # behind the inventory's back
    assert keyservice.check_token().missing_on_token == ["gone"]
    from pkcs11.mechanisms import KeyType

    from keyservice import templates

    keyservice.hsm.create("stray", b"\x99", KeyType.AES, GP_TEST_KEY, templates.ALL_CAPABILITIES)
    assert keyservice.check_token().missing_in_inventory == ["stray"]


def test_selftest_on_the_production_token_leaves_nothing_behind(keyservice):
    before = keyservice.hsm.objects()
    report = keyservice.run_selftest()
    assert report.ok and report.passed >= 10
    assert keyservice.hsm.objects() == before
    assert keyservice.selftest_status() == {"status": "ok", "vectors": report.passed}


def test_attribute_drift_is_reported(keyservice):
    from pkcs11.constants import Attribute

    keyservice.generate(OFFICER, NewKey("kmc-d", Algorithm.AES, 16, KeyUsage.KMC, "issuer"))
    assert keyservice.check_token().consistent
    with keyservice.hsm.lock:
        obj = next(keyservice.hsm._session.get_objects({Attribute.LABEL: "kmc-d"}))
        obj[Attribute.DECRYPT] = True  # a KMC must not decrypt
    report = keyservice.check_token()
    assert report.wrong_attributes == ["kmc-d: DECRYPT is True, its template says False"]
    assert not report.consistent
