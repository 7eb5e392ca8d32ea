"""The KAT runner: shipped vectors, the published vectors in tests/vectors, and its error handling."""

from __future__ import annotations

import json
from pathlib import Path

from keyservice.hsm import Hsm
from keyservice.kat import run_kat, shipped_vectors

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
def test_shipped_vectors_pass(gp_hsm: Hsm) -> None:
    report = run_kat([shipped_vectors()], gp_hsm)
    assert report.failed == 0, report.lines()
    assert report.passed >= 30


def test_published_vectors(gp_hsm: Hsm) -> None:
    report = run_kat([VECTORS], gp_hsm)
    assert report.failed == 0, [o.line() for o in report.outcomes if o.status != "PASS"]
    assert report.passed >= 170


def write(tmp_path: Path, doc: object, name: str = "v.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def test_unknown_type_is_a_fail(gp_hsm: Hsm, tmp_path: Path) -> None:
    path = write(tmp_path, {"source": "test", "vectors": [{"id": "x1", "type": "scp11_receipt"}]})
    report = run_kat([path], gp_hsm)
    assert report.lines() == ["FAIL v.json:x1: unsupported type 'scp11_receipt'", "0 passed, 1 failed"]


def test_malformed_file_is_one_line(gp_hsm: Hsm, tmp_path: Path) -> None:
    report = run_kat([write(tmp_path, "{not json", "bad.json")], gp_hsm)
    assert len(report.outcomes) == 1
    line = report.outcomes[0].line()
    assert line.startswith("ERROR bad.json: not JSON") and "\n" not in line


def test_malformed_vector_names_file_and_id(gp_hsm: Hsm, tmp_path: Path) -> None:
    doc = {"source": "test", "vectors": [
        {"id": "k1", "type": "kcv", "key": "ZZ", "algorithm": "aes", "method": "gp", "length": 3, "expect": "00"},
        {"id": "k2", "type": "kcv", "algorithm": "aes"}]}
    lines = run_kat([write(tmp_path, doc)], gp_hsm).lines()
    assert lines[0] == "ERROR v.json:k1: invalid vector: field 'key' is not hex (pairs of 0-9 A-F, no spaces)"
    assert lines[1] == "ERROR v.json:k2: invalid vector: field 'method' is missing"
    assert lines[-1] == "0 passed, 2 failed"


def test_wrong_expectation_fails(gp_hsm: Hsm, tmp_path: Path) -> None:
    doc = {"source": "test", "vectors": [{"id": "k", "type": "kcv", "key": "404142434445464748494A4B4C4D4E4F",
                                          "algorithm": "des3", "method": "gp", "length": 3, "expect": "8BAF48"}]}
    (line, _summary) = run_kat([write(tmp_path, doc)], gp_hsm).lines()
    assert line == "FAIL v.json:k: kcv: got 8BAF47, expected 8BAF48"


def test_card_cryptogram_mismatch_is_fail_without_external_authenticate(gp_hsm: Hsm, tmp_path: Path) -> None:
    vec = json.loads((VECTORS / "secure_channel_scp03.json").read_text())["vectors"][0]
    vec["id"] = "flipped"
    resp = bytearray(bytes.fromhex(vec["initialize_update"]["response"]))
    resp[-1] ^= 0x01
    vec["initialize_update"]["response"] = resp.hex()
    lines = run_kat([write(tmp_path, {"source": "test", "vectors": [vec]})], gp_hsm).lines()
    assert lines[0] == "FAIL v.json:flipped: card cryptogram mismatch (no EXTERNAL AUTHENTICATE built)"


def test_main_exit_status(tmp_path: Path) -> None:
    import subprocess
    import sys

    good = write(tmp_path, {"source": "t", "vectors": [{"id": "k", "type": "kcv", "algorithm": "aes",
                                                        "key": "404142434445464748494A4B4C4D4E4F",
                                                        "method": "gp", "length": 3, "expect": "504A77"}]})
    bad = write(tmp_path, {"source": "t", "vectors": [{"id": "u", "type": "nope"}]}, "bad.json")
    out = subprocess.run([sys.executable, "-m", "keyservice.kat", str(good)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == "1 passed, 0 failed"
    out = subprocess.run([sys.executable, "-m", "keyservice.kat", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
