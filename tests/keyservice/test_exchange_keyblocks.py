"""TR-31 (B, D) and AES key wrap: round trips, refusal of altered blocks and of header codes outside the
X9.143 tables (blocks with such codes are built, correctly MACed, by the independent psec implementation).

Vectors: TR-31:2018 A.7.2.2 / A.7.4 via openemv/tr31 (tests/vectors/tr31.json); RFC 3394 §4.1.
"""

from __future__ import annotations

import pytest
from pkcs11.mechanisms import KeyType

from globalplatform.keys import KeyAlgorithm
from keyservice import templates
from keyservice.errors import InvalidInput, KcvMismatch, MacMismatch, UnwrapFailed
from keyservice.exchange import aeskw, tr31
from keyservice.gp import hsmops
from keyservice.gp.kcv import kcv

from .conftest import count_objects

KBPK_B = bytes.fromhex("DD7515F2BFC17F85CE48F3CA25CB21F6")
BLOCK_B = "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E"
KEY = bytes.fromhex("3F419E1CB7079442AA37474C2EFBF8B8")


def test_tr31_b_import_kcv_and_token_object(gp_hsm, keys) -> None:
    kbpk = keys.token(KeyAlgorithm.DES3, KBPK_B)
    ref = keys.token(KeyAlgorithm.DES3, KEY)
    expected = kcv(gp_hsm, ref, KeyAlgorithm.DES3)
    got = tr31.import_key_block(gp_hsm, kbpk, 16, BLOCK_B, label="tr31-imported", expected_kcv=expected)
    assert got.usage == "pin_encryption" and got.header.mode == "E" and "3F41" not in repr(got)
    keys.labels.append("tr31-imported")
    with pytest.raises(KcvMismatch):
        tr31.import_key_block(gp_hsm, kbpk, 16, BLOCK_B, expected_kcv=bytes(3))


@pytest.mark.parametrize("pos", [1, 6, 20, 40, 79])
def test_tr31_changed_character_refused(gp_hsm, keys, pos) -> None:
    kbpk = keys.token(KeyAlgorithm.DES3, KBPK_B)
    c = BLOCK_B[pos]
    bad = BLOCK_B[:pos] + ("A" if c != "A" else "B") + BLOCK_B[pos + 1:]
    before = count_objects(gp_hsm)
    with pytest.raises((MacMismatch, UnwrapFailed, InvalidInput)):  # InvalidInput: a code the tables refuse
        tr31.import_key_block(gp_hsm, kbpk, 16, bad)
    assert count_objects(gp_hsm) == before


@pytest.mark.parametrize(("version", "kbpk_len", "alg"),
                         [("B", 24, KeyAlgorithm.DES3), ("D", 32, KeyAlgorithm.AES), ("D", 24, KeyAlgorithm.AES)])
def test_tr31_round_trip(gp_hsm, keys, version, kbpk_len, alg) -> None:
    kbpk = keys.token(alg, bytes(range(kbpk_len)))
    header = tr31.Header(version, "K0", "A" if version == "D" else "T", "B", optional_blocks=(("KS", "00604B"),))
    block = tr31.export_key_block(gp_hsm, kbpk, kbpk_len, header, KEY)
    got = tr31.import_key_block(gp_hsm, kbpk, kbpk_len, block)
    assert got.header == header and got.length == 16
    key_alg = KeyAlgorithm.AES if version == "D" else KeyAlgorithm.DES3
    ref = keys.token(key_alg, KEY)
    assert hsmops.ecb(gp_hsm, got.handle, key_alg, bytes(16)) == hsmops.ecb(gp_hsm, ref, key_alg, bytes(16))
    hsmops.destroy(gp_hsm, got.handle)


KBPK_D = bytes(range(32))


@pytest.mark.parametrize(("header", "refused"), [
    (tr31.Header("D", "ZZ", "A", "Q", exportability="Q"), "key usage 'ZZ'"),
    (tr31.Header("D", "K0", "A", "Q"), "mode of use 'Q'"),
    (tr31.Header("D", "K0", "A", "B", exportability="Q"), "exportability 'Q'"),
    (tr31.Header("D", "K0", "A", "B", key_version="!!"), "key version '!!'"),
    (tr31.Header("D", "42", "A", "N"), "key usage '42' is reserved for proprietary use"),
    (tr31.Header("D", "K0", "A", "X"), "mode of use 'X' is not allowed for key usage K0"),
    (tr31.Header("D", "E6", "A", "E"), "mode of use 'E' is not allowed for key usage E6"),
    (tr31.Header("D", "K0", "R", "B"), "algorithm 'R' is not allowed for key usage K0"),
    (tr31.Header("D", "M0", "A", "C"), "algorithm 'A' is not allowed for key usage M0"),
    (tr31.Header("Z", "K0", "A", "B"), "version ID 'Z'"),
])
def test_tr31_export_refuses_codes_outside_the_tables(gp_hsm, keys, header, refused) -> None:
    kbpk = keys.token(KeyAlgorithm.AES, KBPK_D)
    before = count_objects(gp_hsm)
    with pytest.raises(InvalidInput, match=refused) as err:
        tr31.export_key_block(gp_hsm, kbpk, 32, header, KEY)
    assert "allowed: " in str(err.value) and "\n" not in str(err.value)
    assert count_objects(gp_hsm) == before


@pytest.mark.parametrize(("header", "refused"), [
    ("D0000ZZAN00N0000", "key usage 'ZZ'"),
    ("D0000K0AQ00N0000", "mode of use 'Q'"),
    ("D0000K0AB00Q0000", "exportability 'Q'"),
    ("D000099AN00N0000", "key usage '99' is reserved for proprietary use"),
    ("D0000E6AB00N0000", "mode of use 'B' is not allowed for key usage E6"),
    ("D0000P0HE00N0000", "algorithm 'H' is not allowed for key usage P0"),
])
def test_tr31_import_refuses_codes_outside_the_tables(gp_hsm, keys, header, refused) -> None:
    import psec.tr31

    block = psec.tr31.KeyBlock(KBPK_D, header).wrap(KEY)
    assert psec.tr31.unwrap(KBPK_D, block)[1] == KEY  # a well-formed block: the MAC verifies
    kbpk = keys.token(KeyAlgorithm.AES, KBPK_D)
    before = count_objects(gp_hsm)
    with pytest.raises(InvalidInput, match=refused):
        tr31.import_key_block(gp_hsm, kbpk, 32, block)
    assert count_objects(gp_hsm) == before


def test_aes_kw_flipped_bit_and_token_import(gp_hsm, keys) -> None:
    kek = keys.token(KeyAlgorithm.AES, bytes.fromhex("000102030405060708090A0B0C0D0E0F"))
    wrapped = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    for i in range(len(wrapped)):
        bad = bytearray(wrapped)
        bad[i] ^= 0x80
        with pytest.raises(UnwrapFailed):
            aeskw.unwrap_key(gp_hsm, kek, bytes(bad), padding=False, key_type=KeyType.AES)
    with pytest.raises(UnwrapFailed):
        aeskw.unwrap_key(gp_hsm, kek, wrapped[:-1], padding=False, key_type=KeyType.AES)
    h = aeskw.unwrap_token_key(gp_hsm, kek, wrapped, padding=False, label="kw-imported", cka_id=b"1",
                               key_type=KeyType.AES, caps=templates.ALL_CAPABILITIES)
    keys.labels.append("kw-imported")
    assert gp_hsm.handle("kw-imported") == h
    from keyservice.errors import HsmOperationRefused
    with pytest.raises(HsmOperationRefused):  # non-extractable: cannot be wrapped out again
        aeskw.wrap_key(gp_hsm, kek, h, padding=False)
