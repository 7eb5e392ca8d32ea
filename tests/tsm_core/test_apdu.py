"""ISO 7816-4 §5.1 cases 1-4, short and extended, both directions."""

from __future__ import annotations

import pytest

from globalplatform.apdu import ApduCase, CommandApdu, ResponseApdu
from globalplatform.errors import ApduFormatError, InvalidParameter

CASES = [
    # (hex, cla, ins, p1, p2, data, le, case, extended)
    ("00A40400", 0x00, 0xA4, 0x04, 0x00, b"", None, ApduCase.CASE_1, False),
    ("00C0000010", 0x00, 0xC0, 0x00, 0x00, b"", 0x10, ApduCase.CASE_2, False),
    ("00C0000000", 0x00, 0xC0, 0x00, 0x00, b"", 256, ApduCase.CASE_2, False),
    ("80F0807F", 0x80, 0xF0, 0x80, 0x7F, b"", None, ApduCase.CASE_1, False),
    ("80F28002024F00", 0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", None, ApduCase.CASE_3, False),
    ("80F28002024F0000", 0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 256, ApduCase.CASE_4, False),
    ("80F28002024F0010", 0x80, 0xF2, 0x80, 0x02, b"\x4f\x00", 16, ApduCase.CASE_4, False),
    ("00B0000000 0101", 0x00, 0xB0, 0x00, 0x00, b"", 257, ApduCase.CASE_2, True),
    ("00B0000000 0000", 0x00, 0xB0, 0x00, 0x00, b"", 65536, ApduCase.CASE_2, True),
    ("80E2000000 0100" + "AB" * 256, 0x80, 0xE2, 0x00, 0x00, b"\xab" * 256, None, ApduCase.CASE_3, True),
    ("80E2000000 0100" + "AB" * 256 + "0000", 0x80, 0xE2, 0, 0, b"\xab" * 256, 65536, ApduCase.CASE_4, True),
    ("80E2000000 0001 AB 0200", 0x80, 0xE2, 0, 0, b"\xab", 512, ApduCase.CASE_4, True),
]


@pytest.mark.parametrize(("hex_text", "cla", "ins", "p1", "p2", "data", "le", "case", "extended"), CASES)
def test_command_cases(hex_text, cla, ins, p1, p2, data, le, case, extended):
    raw = bytes.fromhex(hex_text.replace(" ", ""))
    apdu = CommandApdu(cla, ins, p1, p2, data, le)
    assert apdu.case is case
    assert apdu.extended is extended
    assert apdu.to_bytes() == raw
    assert CommandApdu.from_bytes(raw) == apdu


@pytest.mark.parametrize(
    "hex_text",
    [
        "00A404",  # shorter than a header
        "00A4040002A0",  # short Lc = 2, one data byte
        "00A4040002A0A1A2A3",  # short Lc = 2, two extra bytes
        "00A4040000 00",  # extended marker but two length bytes only... (5+1 = 6 bytes)
        "00A4040000 0000 AB",  # extended Lc of zero
        "00A4040000 0002 AB",  # extended Lc = 2, one data byte
    ],
)
def test_malformed_commands(hex_text):
    with pytest.raises(ApduFormatError):
        CommandApdu.from_bytes(bytes.fromhex(hex_text.replace(" ", "")))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cla": 0x100, "ins": 0, "p1": 0, "p2": 0},
        {"cla": 0, "ins": -1, "p1": 0, "p2": 0},
        {"cla": 0, "ins": 0, "p1": 0, "p2": 0, "le": 0},
        {"cla": 0, "ins": 0, "p1": 0, "p2": 0, "le": 65537},
        {"cla": 0, "ins": 0, "p1": 0, "p2": 0, "data": bytes(65536)},
    ],
)
def test_invalid_command_values(kwargs):
    with pytest.raises(InvalidParameter):
        CommandApdu(**kwargs)


def test_response_round_trip():
    raw = bytes.fromhex("E3144F07A00000015100009F700107C50180EA0280009000")
    response = ResponseApdu.from_bytes(raw)
    assert response.sw == 0x9000
    assert (response.sw1, response.sw2) == (0x90, 0x00)
    assert response.data == raw[:-2]
    assert response.to_bytes() == raw


def test_response_without_trailer():
    with pytest.raises(ApduFormatError):
        ResponseApdu.from_bytes(b"\x90")
