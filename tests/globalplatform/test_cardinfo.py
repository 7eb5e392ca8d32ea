"""Card recognition data, Security Domain FCIs and key information templates: every published example
round-trips (osmocom pySim `_test_de_encode` style), and malformed data is a typed `CardDataError`."""

from __future__ import annotations

import pytest

from globalplatform import cardinfo, keyinfo, tlv
from globalplatform.cardinfo import CardRecognitionData, ScpOption, SecurityDomainFci
from globalplatform.errors import CardDataError, GpError
from globalplatform.keyinfo import KeyComponent, KeyInformation


def _params(examples):
    return [pytest.param(hex_text, decoded, id=f"{n}-{source[:40]}")
            for n, (hex_text, decoded, source) in enumerate(examples)]


@pytest.mark.parametrize(("hex_text", "decoded"), _params(cardinfo.CARD_DATA_EXAMPLES))
def test_card_data_round_trip(hex_text: str, decoded: CardRecognitionData) -> None:
    raw = tlv.h(hex_text)
    assert cardinfo.parse_card_data(raw) == decoded
    assert cardinfo.encode_card_data(decoded) == raw


@pytest.mark.parametrize(("hex_text", "decoded"), _params(cardinfo.FCI_EXAMPLES))
def test_fci_round_trip(hex_text: str, decoded: SecurityDomainFci) -> None:
    raw = tlv.h(hex_text)
    assert cardinfo.parse_fci(raw) == decoded
    assert cardinfo.encode_fci(decoded) == raw


@pytest.mark.parametrize(("hex_text", "decoded"), _params(keyinfo.KEY_INFORMATION_EXAMPLES))
def test_key_information_round_trip(hex_text: str, decoded: tuple[KeyInformation, ...]) -> None:
    raw = tlv.h(hex_text)
    assert keyinfo.parse_key_information(raw) == decoded
    assert keyinfo.encode_key_information(decoded) == raw


def test_every_example_names_its_source() -> None:
    examples = [*cardinfo.CARD_DATA_EXAMPLES, *cardinfo.FCI_EXAMPLES, *keyinfo.KEY_INFORMATION_EXAMPLES]
    assert all(source for _, _, source in examples)


def test_the_secure_channel_of_an_isd_is_picked_among_other_protocols() -> None:
    """The eUICC of GlobalPlatformPro issue #152 lists SCP80, SCP02 i=55 and SCP81: SCP02 is the ISD's channel."""
    fci = cardinfo.parse_fci(tlv.h(cardinfo.FCI_EXAMPLES[2][0]))
    assert fci.management_data is not None
    assert fci.management_data.channel(0x02, 0x03) == ScpOption(0x02, 0x55)
    assert str(fci.management_data.channel(0x02, 0x03)) == "SCP02 i=55"
    assert CardRecognitionData().channel(0x02, 0x03) is None


def test_key_versions_in_card_order() -> None:
    keys = keyinfo.parse_key_information(tlv.h(keyinfo.KEY_INFORMATION_EXAMPLES[2][0]))
    assert keyinfo.key_versions(keys) == (0x01, 0x70, 0x71)


def test_an_scp_oid_without_i() -> None:
    data = CardRecognitionData(secure_channels=(ScpOption(0x02),))
    raw = cardinfo.encode_card_data(data)
    assert raw.endswith(tlv.h("640A 0608 2A864886FC6B0402"))
    assert cardinfo.parse_card_data(raw) == data
    assert str(data.secure_channels[0]) == "SCP02"


GP_1 = "06072A864886FC6B01"


def _card(*objects: str) -> bytes:
    """Card Data '66' around Card Recognition Data '73' holding `objects` (hex TLVs)."""
    return tlv.encode(0x66, tlv.encode(0x73, tlv.h("".join(objects))))


BAD_CARD_DATA = [
    pytest.param(_card("600506032A8648"), "starts with the OID", id="no {globalPlatform 1} OID first"),
    pytest.param(_card(GP_1, "64020400"), "must hold one OID", id="64 without an OID"),
    pytest.param(_card(GP_1, "640C06082A864886FC6B04020500"), "must hold one OID", id="64 holding an OID and more"),
    pytest.param(_card(GP_1, "640C060A2A864886FC6B04031000"), "ends in 3 bytes", id="SCP OID, 3 bytes after 4"),
    pytest.param(_card(GP_1, "640706052B06010401"), "is not under", id="SCP OID outside globalPlatform"),
    pytest.param(_card(GP_1, "7F0100"), "is not one of", id="a tag Table H-1 does not have"),
    pytest.param(_card(GP_1, "6503060100", "65020600"), "or is repeated", id="65 twice"),
    pytest.param(tlv.h("7309" + GP_1), "tag 66", id="73 without 66"),
    pytest.param(_card(GP_1) + b"\x00", "tag 66", id="trailing byte"),
    pytest.param(_card(GP_1, "600506032A8648"), "is not under", id="60 not under {globalPlatform 2}"),
    pytest.param(_card(GP_1, "600A06082A864886FC6B0281"), "inside a sub-identifier", id="60 OID cut in an arc"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_CARD_DATA)
def test_malformed_card_data_is_a_typed_error(raw: bytes, message: str) -> None:
    with pytest.raises(CardDataError, match=message) as caught:
        cardinfo.parse_card_data(raw)
    assert caught.value.code == "gp_card_data_format"


def test_a_truncated_tlv_inside_card_data_is_a_tlv_error() -> None:
    with pytest.raises(GpError):
        cardinfo.parse_card_data(tlv.h("660C730A06072A864886FC6B016001"))


def test_an_fci_without_aid_is_refused() -> None:
    with pytest.raises(CardDataError, match="tag 84"):
        cardinfo.parse_fci(tlv.h("6F06 A5049F6501FF"))


BAD_KEY_INFORMATION = [
    pytest.param("E005 C003010180", "at least 4 bytes", id="short entry"),
    pytest.param("E007 C005010180101F", "pairs", id="basic: odd type/length bytes"),
    pytest.param("E007 C0050101FF8800", "truncated component", id="extended: truncated component"),
    pytest.param("E00A C0080101FF8800100238", "truncated key usage", id="extended: usage longer than sent"),
    pytest.param("E00B C0090101FF880010000099", "after key access", id="extended: bytes after access"),
    pytest.param("E006 C1040101 8010", "C0 entries", id="not a C0"),
    pytest.param("C00401018010", "tag E0", id="no template"),
]


@pytest.mark.parametrize(("hex_text", "message"), BAD_KEY_INFORMATION)
def test_malformed_key_information_is_a_typed_error(hex_text: str, message: str) -> None:
    with pytest.raises(CardDataError, match=message) as caught:
        keyinfo.parse_key_information(tlv.h(hex_text))
    assert caught.value.code == "gp_card_data_format"


def test_extended_entry_with_usage_and_access() -> None:
    """GPCS 2.3.1 Table 11-29 with one-byte usage '38' and access '01' (hand-written layout check, not a vector)."""
    entry = keyinfo.parse_key_information_data(tlv.h("0101 FF880010 0138 0101"))
    assert entry == KeyInformation(1, 1, (KeyComponent(0x88, 16),), True, b"\x38", b"\x01")
    assert keyinfo.encode_key_information_data(entry) == tlv.h("C00A 0101FF880010 0138 0101")
