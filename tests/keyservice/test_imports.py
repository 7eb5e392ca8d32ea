"""Keys received from SE vendors through the facade: published TR-31 blocks and RFC 3394 wraps become
recorded, non-extractable token keys; every refusal leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice.errors import InvalidInput, KcvMismatch, MacMismatch, PolicyDenied, UnwrapFailed
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.vendor import KeyBlockHeader, Received
from keyservice.views import NewKey

VECTORS = Path(__file__).parents[1] / "vectors"
OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
VENDOR_IMPORT = Request(OFFICER.caller, Purpose.VENDOR_IMPORT, "vendor-batch-1")


def _vector(name: str, vid: str) -> dict:
    return next(v for v in json.loads((VECTORS / name).read_text())["vectors"] if v["id"] == vid)


@pytest.fixture
def vendor(keyservice):
    b1 = _vector("tr31.json", "tr31-B1")
    kw = _vector("aes_key_wrap.json", "kw-rfc3394-4.1")
    ks = keyservice
    ks.keys.import_test(OFFICER, NewKey("kbpk", KeyAlgorithm.DES3, 16, KeyUsage.KEK, "vendor"),
                        bytes.fromhex(b1["kbpk"]))
    ks.keys.import_test(OFFICER, NewKey("kek", KeyAlgorithm.AES, 16, KeyUsage.KEK, "vendor"), bytes.fromhex(kw["kek"]))
    # the published clear keys, imported as test keys, give the KCVs a vendor would send along
    clear_b = ks.keys.import_test(OFFICER, NewKey("clear-b", KeyAlgorithm.DES3, 16, KeyUsage.KMC, "lab"),
                                 bytes.fromhex(b1["expect_key"]))
    clear_kw = ks.keys.import_test(OFFICER, NewKey("clear-kw", KeyAlgorithm.AES, 16, KeyUsage.KMC, "lab"),
                                  bytes.fromhex(kw["key"]))
    return ks, b1, kw, clear_b.kcv, clear_kw.kcv


def test_tr31_block_becomes_a_recorded_key(vendor):
    ks, b1, _, kcv, _ = vendor
    view = ks.vendor.import_key_block(VENDOR_IMPORT, "kbpk", b1["key_block"],
                                      Received("pin-key", "bank-a", KeyUsage.KEK), kcv)
    assert (view.kcv, view.provenance, view.state, view.usage) == (kcv, "imported-wrapped", "pre-activation", "KEK")
    assert ks.keys.check().consistent
    assert ks.audit.records(1)[0].operation == "import-wrapped"
    assert "kbpk" in str(ks.audit.records(1)[0].keys)


def test_tr31_refusals_leave_nothing(vendor):
    ks, b1, _, kcv, _ = vendor
    block = b1["key_block"]
    flipped = block[:-1] + ("0" if block[-1] != "0" else "1")
    with pytest.raises(MacMismatch):
        ks.vendor.import_key_block(VENDOR_IMPORT, "kbpk", flipped, Received("x1", "bank-a", KeyUsage.KEK), kcv)
    with pytest.raises(KcvMismatch):
        ks.vendor.import_key_block(VENDOR_IMPORT, "kbpk", block, Received("x2", "bank-a", KeyUsage.KEK), "000000")
    with pytest.raises(InvalidInput):  # P0 (PIN encryption) has no place in the TSM hierarchy unless named
        ks.vendor.import_key_block(VENDOR_IMPORT, "kbpk", block, Received("x3", "bank-a"), kcv)
    with pytest.raises(PolicyDenied):  # a KMC is no key-block protection key
        ks.vendor.import_key_block(VENDOR_IMPORT, "clear-b", block, Received("x4", "bank-a", KeyUsage.KEK), kcv)
    with pytest.raises(PolicyDenied):  # wrong purpose
        ks.vendor.import_key_block(OFFICER, "kbpk", block, Received("x5", "bank-a", KeyUsage.KEK), kcv)
    assert ks.keys.check().consistent
    assert not [k for k in ks.keys.list_keys() if k.label.startswith("x")]
    assert [r.outcome for r in ks.audit.records(5)] == ["refused"] * 5
    assert ks.audit.verify().records > 5


def test_aes_key_wrap_import(vendor):
    ks, _, kw, _, kcv = vendor
    view = ks.vendor.import_wrapped(VENDOR_IMPORT, "kek", bytes.fromhex(kw["expect"]), False, KeyAlgorithm.AES,
                             Received("isd-master", "issuer", KeyUsage.KMC), kcv)
    assert (view.kcv, view.length, view.algorithm) == (kcv, 16, "aes")
    wrapped = bytearray(bytes.fromhex(kw["expect"]))
    wrapped[3] ^= 0x01
    with pytest.raises(UnwrapFailed):
        ks.vendor.import_wrapped(VENDOR_IMPORT, "kek", bytes(wrapped), False, KeyAlgorithm.AES,
                          Received("bad", "issuer", KeyUsage.KMC), kcv)
    with pytest.raises(KcvMismatch):
        ks.vendor.import_wrapped(VENDOR_IMPORT, "kek", bytes.fromhex(kw["expect"]), False, KeyAlgorithm.AES,
                          Received("bad2", "issuer", KeyUsage.KMC), "123456")
    assert ks.keys.check().consistent


VENDOR_EXPORT = Request(OFFICER.caller, Purpose.VENDOR_EXPORT, "vendor-batch-2")


def test_export_wrapped_gives_the_published_rfc3394_blob(keyservice):
    kw = _vector("aes_key_wrap.json", "kw-rfc3394-4.1")
    ks = keyservice
    ks.keys.import_test(OFFICER, NewKey("kek", KeyAlgorithm.AES, 16, KeyUsage.KEK, "vendor"), bytes.fromhex(kw["kek"]))
    ks.keys.import_test(OFFICER, NewKey("to-send", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer", exportable=True),
                       bytes.fromhex(kw["key"]))
    assert ks.vendor.export_wrapped(VENDOR_EXPORT, "to-send", "kek", padding=False) == bytes.fromhex(kw["expect"])
    assert ks.audit.records(1)[0].operation == "export-wrapped"


def test_export_key_block_is_read_by_an_independent_tr31_implementation(keyservice):
    import psec.tr31

    b1 = _vector("tr31.json", "tr31-B1")
    d1 = _vector("tr31.json", "tr31-D1")
    ks = keyservice
    ks.keys.import_test(OFFICER, NewKey("kbpk-b", KeyAlgorithm.DES3, 16, KeyUsage.KEK, "v"), bytes.fromhex(b1["kbpk"]))
    ks.keys.import_test(OFFICER, NewKey("kbpk-d", KeyAlgorithm.AES, 32, KeyUsage.KEK, "v"), bytes.fromhex(d1["kbpk"]))
    ks.keys.import_test(OFFICER, NewKey("kmc-x", KeyAlgorithm.DES3, 16, KeyUsage.KMC, "issuer", exportable=True),
                       bytes.fromhex(b1["expect_key"]))
    for kbpk, version, vector in (("kbpk-b", "B", b1), ("kbpk-d", "D", d1)):
        block = ks.vendor.export_key_block(VENDOR_EXPORT, "kmc-x", kbpk, KeyBlockHeader("E6", "N", "01", "N"))
        header, key = psec.tr31.unwrap(bytes.fromhex(vector["kbpk"]), block)
        assert (header.version_id, header.key_usage, header.algorithm) == (version, "E6", "T")
        assert key == bytes.fromhex(b1["expect_key"])
        # and it comes back in through the key service's own import, KCV checked
        view = ks.vendor.import_key_block(VENDOR_IMPORT, kbpk, block, Received(f"back-{version}", "issuer"),
                                   ks.keys.show("kmc-x").kcv)
        assert view.usage == "KMC"


def test_only_exportable_keys_leave(keyservice):
    kw = _vector("aes_key_wrap.json", "kw-rfc3394-4.1")
    ks = keyservice
    ks.keys.import_test(OFFICER, NewKey("kek", KeyAlgorithm.AES, 16, KeyUsage.KEK, "vendor"), bytes.fromhex(kw["kek"]))
    ks.keys.import_test(OFFICER, NewKey("stays", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"),
                        bytes.fromhex(kw["key"]))
    ks.keys.import_test(OFFICER, NewKey("goes", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer", exportable=True),
                       bytes.fromhex(kw["key"]))
    with pytest.raises(PolicyDenied):
        ks.vendor.export_wrapped(VENDOR_EXPORT, "stays", "kek", padding=False)
    with pytest.raises(PolicyDenied):  # the wrapping key must be a KEK
        ks.vendor.export_wrapped(VENDOR_EXPORT, "goes", "stays", padding=False)
    with pytest.raises(PolicyDenied):  # officers only
        ks.vendor.export_wrapped(Request(Caller("tsm", CallerKind.SERVICE), Purpose.VENDOR_EXPORT, "x"), "goes", "kek",
                          padding=False)
    with pytest.raises(InvalidInput):
        KeyBlockHeader("E")
    assert [r.outcome for r in ks.audit.records(3)] == ["refused"] * 3


def test_export_key_block_refuses_header_codes_outside_the_tables(keyservice):
    b1 = _vector("tr31.json", "tr31-B1")
    ks = keyservice
    ks.keys.import_test(OFFICER, NewKey("kbpk-b", KeyAlgorithm.DES3, 16, KeyUsage.KEK, "v"), bytes.fromhex(b1["kbpk"]))
    ks.keys.import_test(OFFICER, NewKey("aes-x", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer", exportable=True),
                       bytes(range(16)))
    with pytest.raises(InvalidInput, match=r"key usage 'ZZ'.*allowed: B0, B1") as err:
        ks.vendor.export_key_block(VENDOR_EXPORT, "aes-x", "kbpk-b", KeyBlockHeader("ZZ", "Q", "00", "Q"))
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInput, match=r"mode of use 'Q'.*allowed: B, C, D, E, G, N, S, T, V, X, Y"):
        KeyBlockHeader("E6", "Q")
    with pytest.raises(InvalidInput, match=r"exportability 'Q'.*allowed: E, N, S"):
        KeyBlockHeader("E6", "N", "00", "Q")
    with pytest.raises(InvalidInput, match=r"mode of use 'B' is not allowed for key usage E6.*allowed: N, X"):
        KeyBlockHeader("E6", "B")
    with pytest.raises(InvalidInput, match="algorithm 'A' is not allowed for key usage M0"):  # ISO 16609: TDEA
        ks.vendor.export_key_block(VENDOR_EXPORT, "aes-x", "kbpk-b", KeyBlockHeader("M0", "C"))
    assert [r.outcome for r in ks.audit.records(1)] == ["refused"]
    block = ks.vendor.export_key_block(VENDOR_EXPORT, "aes-x", "kbpk-b", KeyBlockHeader("K0", "E", "c1", "E"))
    assert block[5:12] == "K0AEc1E"


def test_import_key_block_refuses_header_codes_outside_the_tables(vendor):
    import psec.tr31

    ks, b1, _, kcv, _ = vendor
    # a well-formed block (psec computes a correct MAC) whose usage is in no table
    block = psec.tr31.KeyBlock(bytes.fromhex(b1["kbpk"]), "B0000ZZTN00N0000").wrap(bytes.fromhex(b1["expect_key"]))
    with pytest.raises(InvalidInput, match=r"key usage 'ZZ'.*allowed: B0"):
        ks.vendor.import_key_block(VENDOR_IMPORT, "kbpk", block, Received("zz", "bank-a", KeyUsage.KEK), kcv)
    assert ks.audit.records(1)[0].outcome == "refused"
    assert "zz" not in [k.label for k in ks.keys.list_keys()] and ks.keys.check().consistent


def test_kek_of_the_wrong_algorithm_is_refused_before_the_hsm(vendor):
    ks, b1, kw, kcv_b, kcv_kw = vendor
    d1 = _vector("tr31.json", "tr31-D1")
    ks.keys.import_test(OFFICER, NewKey("goes", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer", exportable=True),
                       bytes.fromhex(kw["key"]))
    rule = "RFC 3394/5649 key wrap needs an AES KEK; kbpk is des3"
    with pytest.raises(InvalidInput, match=rule):  # an AES key wrapped under a 3DES KEK
        ks.vendor.import_wrapped(VENDOR_IMPORT, "kbpk", bytes.fromhex(kw["expect"]), False, KeyAlgorithm.AES,
                          Received("w1", "issuer", KeyUsage.KMC), kcv_kw)
    with pytest.raises(InvalidInput, match=rule):
        ks.vendor.import_wrapped(VENDOR_IMPORT, "kbpk", bytes.fromhex(kw["expect"]), True, KeyAlgorithm.AES,
                          Received("w2", "issuer", KeyUsage.KMC), kcv_kw)
    with pytest.raises(InvalidInput, match=rule):
        ks.vendor.export_wrapped(VENDOR_EXPORT, "goes", "kbpk", padding=False)
    with pytest.raises(InvalidInput, match="version D key block needs an aes KBPK; kbpk is des3"):
        ks.vendor.import_key_block(VENDOR_IMPORT, "kbpk", d1["key_block"], Received("w3", "bank-a", KeyUsage.KEK),
                                   kcv_b)
    with pytest.raises(InvalidInput, match="version B key block needs a des3 KBPK; kek is aes"):
        ks.vendor.import_key_block(VENDOR_IMPORT, "kek", b1["key_block"], Received("w4", "bank-a", KeyUsage.KEK),
                                   kcv_b)
    assert [r.outcome for r in ks.audit.records(5)] == ["refused"] * 5
    assert all(r.detail == "invalid_input" for r in ks.audit.records(5))
    assert not [k for k in ks.keys.list_keys() if k.label.startswith("w")] and ks.keys.check().consistent


def test_tr31_export_needs_des3_or_aes_keys(keyservice):
    ks = keyservice
    ks.keys.import_test(OFFICER, NewKey("hmac-kek", KeyAlgorithm.HMAC, 32, KeyUsage.KEK, "v"), bytes(32))
    ks.keys.import_test(OFFICER, NewKey("aes-kek", KeyAlgorithm.AES, 16, KeyUsage.KEK, "v"), bytes(16))
    ks.keys.import_test(OFFICER, NewKey("hmac-x", KeyAlgorithm.HMAC, 32, KeyUsage.KMC, "v", exportable=True), bytes(32))
    ks.keys.import_test(OFFICER, NewKey("aes-x", KeyAlgorithm.AES, 16, KeyUsage.KMC, "v", exportable=True), bytes(16))
    with pytest.raises(InvalidInput, match="hmac-x is hmac"):
        ks.vendor.export_key_block(VENDOR_EXPORT, "hmac-x", "aes-kek", KeyBlockHeader("E6"))
    with pytest.raises(InvalidInput, match=r"KBPK is des3 \(version B\) or aes \(version D\); hmac-kek is hmac"):
        ks.vendor.export_key_block(VENDOR_EXPORT, "aes-x", "hmac-kek", KeyBlockHeader("E6"))
    assert [r.outcome for r in ks.audit.records(2)] == ["refused"] * 2
