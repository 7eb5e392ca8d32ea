"""BER-TLV encoding rules (ISO 7816-4 §5.2.2.1, X.690 §8.1.2-8.1.3) and their failure modes."""

from __future__ import annotations

import pytest

from globalplatform import tlv
from globalplatform.errors import TlvError


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"), (0x10000, "83010000")],
)
def test_length_forms(length, encoded):
    assert tlv.encode_length(length) == bytes.fromhex(encoded)
    item, end = tlv.decode_one(bytes.fromhex("C4" + encoded) + bytes(length))
    assert (item.tag, len(item.value), end) == (0xC4, length, 1 + len(encoded) // 2 + length)


def test_length_too_large():
    with pytest.raises(TlvError):
        tlv.encode_length(1 << 24)


@pytest.mark.parametrize(("tag", "encoded"), [(0x4F, "4F"), (0x9F70, "9F70"), (0x5F2D, "5F2D"), (0xBF0C, "BF0C")])
def test_tags(tag, encoded):
    raw = tlv.encode(tag, b"\x01")
    assert raw == bytes.fromhex(encoded + "0101")
    assert tlv.decode_all(raw) == [tlv.Tlv(tag, b"\x01")]


def test_three_byte_tag():
    assert tlv.decode_all(bytes.fromhex("DF8101 01 AA")) == [tlv.Tlv(0xDF8101, b"\xaa")]


def test_constructed_bit():
    assert tlv.is_constructed(0xE3)
    assert not tlv.is_constructed(0x9F70)


@pytest.mark.parametrize(
    "hex_text",
    [
        "9F",  # multi-byte tag cut short
        "4F",  # no length
        "4F80",  # indefinite length
        "4F84000000010A",  # four length bytes
        "4F8201",  # truncated length field
        "4F0501020304",  # value shorter than declared
    ],
)
def test_malformed(hex_text):
    with pytest.raises(TlvError):
        tlv.decode_all(bytes.fromhex(hex_text))


def test_unknown_child_survives_round_trip():
    raw = bytes.fromhex("E3144F07A00000015100009F700107C50180EA028000")  # GlobalPlatformPro TestParseTags
    decoded = tlv.REGISTRY_DATA.decode(raw)
    assert ("EA", bytes.fromhex("8000")) in decoded
    assert tlv.REGISTRY_DATA.encode(decoded) == raw


def test_definition_rejects_wrong_tag_and_length():
    with pytest.raises(TlvError):
        tlv.REGISTRY_DATA.decode(bytes.fromhex("E4020000"))
    with pytest.raises(TlvError):
        tlv.APPLICATION_AID.encode(b"\xa0\x00")  # shorter than 5 bytes
    with pytest.raises(TlvError):
        tlv.REGISTRY_DATA.decode(bytes.fromhex("E300 00"))  # trailing byte
    with pytest.raises(TlvError):
        tlv.REGISTRY_DATA.encode(b"\x00")  # constructed needs pairs
    with pytest.raises(TlvError):
        tlv.INSTALL_PARAMETERS.encode([("no_such_object", b"")])
