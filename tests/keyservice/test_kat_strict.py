"""Strict vector parsing (issue 7/8): every malformed vector is one ERROR line naming file, id and field."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pkcs11.mechanisms import KeyType

from keyservice.errors import InvalidInput, UnwrapFailed
from keyservice.exchange import aeskw
from keyservice.gp.hsmops import KeyAlgorithm
from keyservice.hsm import Hsm
from keyservice.kat import run_kat
from keyservice.kat_types import Context, Mismatch

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
TSM = str(Path(sys.executable).with_name("tsm"))


def published(file: str, index: int = 0) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((VECTORS / file).read_text())["vectors"][index]
    return copy.deepcopy(vector)


def run_one(hsm: Hsm, tmp_path: Path, vector: dict[str, Any]) -> str:
    """The single result line of a file holding `vector`."""
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"source": "test", "vectors": [vector]}))
    lines = run_kat([path], hsm).lines()
    assert len(lines) == 2 and lines[1] == "0 passed, 1 failed", lines
    return lines[0]


@pytest.mark.parametrize(("file", "index"), [
    ("secure_channel_scp03.json", 0), ("put_key_gpp.json", 0), ("dek_encrypt_omfgp_gpp.json", 0),
    ("sm_wrap_ojc.json", 0)])
def test_unknown_scp_is_an_error_line(gp_hsm: Hsm, tmp_path: Path, file: str, index: int) -> None:
    vector = published(file, index)
    vector["scp"] = "04"
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == f"ERROR v.json:{vector['id']}: invalid vector: field 'scp' is '04', expected one of 02, 03"


@pytest.mark.parametrize(("vector", "where", "message"), [
    ({**published("kcv.json"), "comment": "x"}, "comment", "is not a field of type kcv"),
    ({**published("tr31.json"), "expect_kye": "00"}, "expect_kye", "is not a field of type tr31_unwrap"),
    ({**published("kcv.json"), "length": "3"}, "length", "must be an integer, not a string"),
    ({**published("kcv.json"), "length": True}, "length", "must be an integer, not a boolean"),
    ({**published("kcv.json"), "length": 4}, "length", "is 4, expected 2, 3 or 5"),
    ({**published("kcv.json"), "method": "foo"}, "method", "is 'foo', expected one of gp, aes_zero, aes_cmac"),
    ({**published("kcv.json"), "key": "40 41"}, "key", "is not hex (pairs of 0-9 A-F, no spaces)"),
    ({**published("kcv.json"), "key": "404"}, "key", "is not hex (pairs of 0-9 A-F, no spaces)"),
    ({**published("diversify.json"), "kdd": "00" * 9}, "kdd", "is 9 bytes, expected 10"),
    ({**published("aes_key_wrap.json"), "padding": "false"}, "padding", "must be a boolean, not a string"),
    ({**published("aes_key_wrap.json"), "kek": "00" * 15}, "kek", "is 15 bytes, expected 16, 24 or 32"),
    ({**published("secure_channel_scp03.json"), "security_level": "3X"}, "security_level",
     "is '3X', expected one of 00, 01, 03, 11, 13, 33"),
    ({**published("secure_channel_scp03.json"), "security_level": "44"}, "security_level",
     "is '44', expected one of 00, 01, 03, 11, 13, 33"),
    ({**published("secure_channel_scp03.json"), "static": ["00"]}, "static", "must be an object, not an array"),
])
def test_strict_fields(gp_hsm: Hsm, tmp_path: Path, vector: dict[str, Any], where: str, message: str) -> None:
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == f"ERROR v.json:{vector['id']}: invalid vector: field '{where}' {message}"


def test_nested_fields_are_named_by_path(gp_hsm: Hsm, tmp_path: Path) -> None:
    vector = published("secure_channel_scp03.json")
    vector["static"]["kek"] = vector["static"]["enc"]
    vector["commands"][1]["note"] = "x"
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == f"ERROR v.json:{vector['id']}: invalid vector: field 'static.kek' is not a field of a key set"
    del vector["static"]["kek"]
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == (f"ERROR v.json:{vector['id']}: invalid vector: field 'commands[1].note' is not a field of "
                    "a command")


def test_duplicate_json_key_is_refused(gp_hsm: Hsm, tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"source": "t", "vectors": [{"id": "d", "type": "kcv", "key": "404142434445464748494A4B4C4D4E4F",'
                    ' "algorithm": "des3", "method": "gp", "length": 3, "expect": "8BAF47", "expect": "000000"}]}')
    assert run_kat([path], gp_hsm).lines() == [
        "ERROR dup.json:d: invalid vector: field 'expect' is given more than once", "0 passed, 1 failed"]


def test_deeply_nested_json_is_one_line(gp_hsm: Hsm, tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"source": "t", "vectors": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert run_kat([path], gp_hsm).lines() == ["ERROR deep.json: nested too deeply", "0 passed, 1 failed"]


def test_huge_integer_is_one_line(gp_hsm: Hsm, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('{"source": "t", "vectors": [{"id": "b", "type": "kcv", "length": ' + "9" * 5000 + "}]}")
    (line, _summary) = run_kat([path], gp_hsm).lines()
    assert line.startswith("ERROR big.json: not JSON")


def test_unprintable_id_is_refused(gp_hsm: Hsm, tmp_path: Path) -> None:
    vector = {**published("kcv.json"), "id": "a\nb"}
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == "ERROR v.json:#0: invalid vector: field 'id' must be 1 to 100 printable characters without spaces"


def test_unknown_top_level_field_is_refused(gp_hsm: Hsm, tmp_path: Path) -> None:
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"source": "t", "vectors": [], "comment": "x"}))
    assert run_kat([path], gp_hsm).lines()[0] == "ERROR top.json: field 'comment' is not a field of a vector file"


def test_bad_r_mac_is_a_fail(gp_hsm: Hsm, tmp_path: Path) -> None:
    """A response whose R-MAC does not verify is refused with MacMismatch: a FAIL naming the command."""
    vector = published("secure_channel_scp03_pysim.json", 0)
    assert vector["security_level"] == "11"
    cmd = next(n for n, c in enumerate(vector["commands"], 1) if "response" in c)
    response = bytearray(bytes.fromhex(vector["commands"][cmd - 1]["response"]))
    response[-3] ^= 0x01  # last R-MAC byte, before SW1 SW2
    vector["commands"][cmd - 1]["response"] = response.hex()
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == f"FAIL v.json:{vector['id']}: command {cmd} response refused: the R-MAC does not verify"


def test_tsm_kat_missing_path_is_a_coded_error(tmp_path: Path) -> None:
    out = subprocess.run([TSM, "kat", str(tmp_path / "nonexistent")], capture_output=True, text=True, check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error[usage]: ") and "does not exist" in out.stderr
    assert out.stderr.count("\n") == 1


def test_tsm_kat_deep_json_is_a_report(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    out = subprocess.run([TSM, "kat", str(path)], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stderr) == (1, "")
    assert out.stdout.splitlines() == ["ERROR deep.json: nested too deeply", "0 passed, 1 failed"]


ONE_PER_TYPE = [("kcv.json", 0), ("diversify.json", 0), ("scp02_session_keys.json", 0),
                ("scp03_session_keys.json", 0), ("scp03_card_challenge_omfgp.json", 0),
                ("secure_channel_scp02.json", 0), ("put_key_gpp.json", 0), ("tr31.json", 0), ("aes_key_wrap.json", 0),
                ("dek_encrypt_omfgp_gpp.json", 0), ("store_data_keys_kaoh.json", 0), ("sm_wrap_ojc.json", 0),
                ("rsa_pkcs1_sign_wycheproof.json", 0)]


@pytest.mark.parametrize(("file", "index"), ONE_PER_TYPE)
def test_every_type_refuses_unknown_fields(gp_hsm: Hsm, tmp_path: Path, file: str, index: int) -> None:
    vector = published(file, index)
    form = " in the sequence_counter form" if "sequence_counter" in vector and vector["type"] == "put_key" else ""
    line = run_one(gp_hsm, tmp_path, {**vector, "zz_note": "x"})
    assert line == f"ERROR v.json:{vector['id']}: invalid vector: field 'zz_note' is not a field of type " \
                   f"{vector['type']}{form}"


def mutated(file: str, index: int, change: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    vector = {**published(file, index), **change}
    for name in drop:
        del vector[name]
    return vector


@pytest.mark.parametrize(("vector", "where", "message"), [
    (mutated("put_key_gpp.json", 0, {"host_challenge": "00" * 8}), "host_challenge",
     "is not a field of type put_key in the sequence_counter form"),
    (mutated("put_key_gpp.json", 0, {"scp": "03"}), "scp",
     "is 03, but the sequence_counter form is SCP02 (SCP03 uses the static DEK)"),
    (mutated("put_key_gpp.json", 0, {"key_type": "81"}), "key_type", "is '81', expected 80"),
    (mutated("put_key_gpp.json", 0, {"new_keys": {}}), "new_keys", "is empty"),
    (mutated("put_key_gpp.json", 0, {"new_keys": {"enc": "00" * 16, "mac": "00" * 24}}), "new_keys.mac",
     "is 24 bytes, expected 16"),
    (mutated("secure_channel_scp02.json", 0, {"diversify": {"method": "emv", "master": "00" * 16}}), "static",
     "and 'diversify' are both given (give one)"),
    (mutated("secure_channel_scp02.json", 0, {"diversify": {"method": "kdf3", "master": "00" * 16}}, ("static",)),
     "diversify.method", "is kdf3, which does not make SCP02 keys"),
    (mutated("secure_channel_scp02.json", 0, {"static": {"enc": "40" * 16, "mac": "40" * 24}}), "static.mac",
     "is 24 bytes, but 'enc' is 16"),
    (mutated("secure_channel_scp02.json", 0, {"commands": [{"plain": "80CA00", "wrapped": "84CA0000"}]}),
     "commands[0].plain", "is not a command APDU (a C-APDU has at least 4 bytes, got 3)"),
    (mutated("secure_channel_scp02.json", 0, {"commands": [{"plain": "80CA0000", "wrapped": "84CA0000",
                                                            "response_plain": "9000"}]}),
     "commands[0].response", "is missing"),
    (mutated("sm_wrap_ojc.json", 0, {"commands": [{"plain": "80E20000F8" + "00" * 248, "wrapped": "00000000"}]}),
     "commands[0].plain", "carries 248 data bytes: wrapped, they would not fit a short APDU"),
    (mutated("sm_wrap_ojc.json", 0, {"initial_chaining": "00" * 16}), "initial_chaining",
     "is not a field of type sm_wrap"),
    (mutated("dek_encrypt_omfgp_gpp.json", 0, {"sequence_counter": "0000"}), "sequence_counter",
     "is not a field of type dek_encrypt"),
    (mutated("dek_encrypt_omfgp_gpp.json", 0, {"data": "00" * 15}), "data", "is 15 bytes, not a multiple of 16"),
    (mutated("store_data_keys_kaoh.json", 0, {"keys": [{"key_id": "01", "key": "00" * 16}] * 24}), "keys",
     "has 24 keys, expected 1 to 23"),
    (mutated("store_data_keys_kaoh.json", 0, {"keys": [{"key_id": "01", "key": "00" * 32}]}), "keys[0].key",
     "is 32 bytes, expected 16"),
    (mutated("aes_key_wrap.json", 0, {"expect": "00" * 16}), "expect", "is 16 bytes, expected 24"),
    (mutated("aes_key_wrap.json", 0, {"key": "00" * 20}), "key", "is 20 bytes; RFC 3394 wraps a multiple of 8"),
    (mutated("tr31.json", 0, {"key_block": "C0000P0TE00E0000" + "0" * 16}), "key_block",
     "has version 'C', expected one of B, D"),
    (mutated("tr31.json", 0, {"expect_header": {"usage": "P0", "colour": "red"}}), "expect_header.colour",
     "is not a field of a TR-31 header"),
    (mutated("scp02_session_keys.json", 0, {"static": {"enc": "40" * 16, "mac": "40" * 16},
                                            "expect": {"s_dek": "00" * 16}}), "static.dek",
     "is missing (the vector expects s_dek)"),
    (mutated("scp03_card_challenge_omfgp.json", 0, {"static": {"enc": "40" * 16, "mac": "40" * 16}}), "static.mac",
     "is not a field of this key set (enc)"),
    (mutated("diversify.json", 0, {"expect": {"enc": "00" * 16, "kek": "00" * 16}}), "expect.kek",
     "is not a field of 'expect' (enc, mac or dek)"),
    (mutated("kcv.json", 0, {"method": "aes_cmac", "algorithm": "des3"}), "method",
     "is aes_cmac, which applies to AES keys only"),
    (mutated("rsa_pkcs1_sign_wycheproof.json", 0, {"hash": "sha256"}), "hash",
     "is not the hash GP signs with at 1024 bits (SHA-1 up to 1024 bits, SHA-256 above)"),
    (mutated("rsa_pkcs1_sign_wycheproof.json", 4, {"hash": "sha1"}), "hash",
     "is not the hash GP signs with at 2048 bits (SHA-1 up to 1024 bits, SHA-256 above)"),
    (mutated("rsa_pkcs1_sign_wycheproof.json", 0, {"hash": "sha384"}), "hash",
     "is 'sha384', expected one of sha1, sha256"),
    (mutated("rsa_pkcs1_sign_wycheproof.json", 0, {"private_key_pkcs8": "3000"}), "private_key_pkcs8",
     "is not a PKCS#8 private key (DER)"),
    (mutated("rsa_pkcs1_sign_wycheproof.json", 0, {"expect": "00" * 256}), "expect", "is 256 bytes, expected 128"),
])
def test_type_specific_rules(gp_hsm: Hsm, tmp_path: Path, vector: dict[str, Any], where: str, message: str) -> None:
    line = run_one(gp_hsm, tmp_path, vector)
    assert line == f"ERROR v.json:{vector['id']}: invalid vector: field '{where}' {message}"


def test_a_wrong_rsa_signature_is_a_fail(gp_hsm: Hsm, tmp_path: Path) -> None:
    vector = published("rsa_pkcs1_sign_wycheproof.json", 0)
    vector["message"] = vector["message"][:-2] + "00"
    line = run_one(gp_hsm, tmp_path, vector)
    assert line.startswith(f"FAIL v.json:{vector['id']}: signature: got ")


def test_negative_checks_expect_their_error_class(gp_hsm: Hsm) -> None:
    """An error other than the expected refusal is not counted as the refusal: it propagates (an ERROR line)."""
    ctx = Context(gp_hsm)

    def refused() -> int:
        raise UnwrapFailed("the wrapped key does not unwrap")

    def unrelated() -> int:
        raise InvalidInput("not the refusal the vector asks for")

    try:
        ctx.refuses(UnwrapFailed, "a flipped bit", refused)
        with pytest.raises(InvalidInput):
            ctx.refuses(UnwrapFailed, "a flipped bit", unrelated)
        rfc = published("aes_key_wrap.json")
        kek = ctx.token_key(KeyAlgorithm.AES, bytes.fromhex(rfc["kek"]))
        intact = partial(aeskw.unwrap_key, gp_hsm, kek, bytes.fromhex(rfc["expect"]), padding=False,
                         key_type=KeyType.AES)
        with pytest.raises(Mismatch, match=r"^a flipped bit was accepted$"):
            ctx.refuses(UnwrapFailed, "a flipped bit", intact)
    finally:
        ctx.cleanup()


def test_module_entry_point_missing_path_is_a_coded_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "keyservice.kat", str(tmp_path / "nope.json")], capture_output=True,
                         text=True, check=False)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"error[invalid_input]: {tmp_path / 'nope.json'}: no such file or directory\n"


def test_error_lines_stay_short_and_on_one_line(gp_hsm: Hsm, tmp_path: Path) -> None:
    vector = {**published("kcv.json"), "x\n" * 1000: 1}
    line = run_one(gp_hsm, tmp_path, vector)
    assert "\n" not in line and len(line) < 200
    assert line.endswith("is not a field of type kcv")
    vector = {**published("kcv.json"), "method": "\u2028" * 1000}
    line = run_one(gp_hsm, tmp_path, vector)
    assert len(line.splitlines()) == 1 and len(line) < 250
