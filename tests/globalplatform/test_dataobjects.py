"""CPLC, IIN, CIN, sequence counter and extended card resources: every published card answer decodes to what the
tool that published it read (sources in `globalplatform.cplc` / `globalplatform.dataobjects`, each named in its
example), and malformed answers are a typed `CardDataError`.

Published material used here:
- martinpaljak/GlobalPlatformPro issues #221 (JCOP 4 CPLC) and #114 (Oberthur COSMO 8.1: IIN and CIN refused with
  6A88, sequence counter C10300001E), and TestParseTags.java (CPLC dates, a tagless non-CPLC answer refused);
- Stack Overflow 'Get Data APDU command different tags and response format' (http://djcxy.com/p/92102.html): a
  CPLC answer with the 18 fields GlobalPlatformPro printed;
- fidesmo/fdsm FidesmoCardTest.java / FidesmoCard.java (JCOP 3 CPLC); OpenJavaCard/openjavacard-tools
  CPLCTest.java (CPLC fields, and a short and a long CPLC refused); andreas-mausch/docker-javacard
  docs/globalplatformpro.md (JCOP 4 `gp --info`); herlesupreeth/CoIMS_Wiki issue #1 ('FFFF' dates);
- ctskinner.blogspot.com 2011/10 (sequence counter C10200C5); osmocom/pysim euicc_info2.ok (extCardResource).
"""

from __future__ import annotations

import datetime

import pytest

from globalplatform import cplc, dataobjects, tlv
from globalplatform.cplc import CplcDate
from globalplatform.dataobjects import CardResources
from globalplatform.errors import CardDataError


def _ids(examples):
    return [f"{n}-{example[-1][:40]}" for n, example in enumerate(examples)]


@pytest.mark.parametrize(("hex_text", "published", "source"), cplc.CPLC_EXAMPLES, ids=_ids(cplc.CPLC_EXAMPLES))
def test_cplc_fields_are_what_the_tool_printed(hex_text: str, published: dict[str, str], source: str) -> None:
    raw = tlv.h(hex_text)
    read = cplc.parse_cplc(raw)
    assert {name: read.as_hex()[name] for name in published} == published
    encoded = cplc.encode_cplc(read)
    assert encoded == (raw if len(raw) != cplc.CPLC_LENGTH else tlv.encode(cplc.CPLC_TAG, raw))
    assert cplc.parse_cplc(encoded[3:]) == read  # the bare 42 bytes (GET DATA with CLA 00 on some cards)


def test_every_field_in_card_order() -> None:
    """openjavacard-tools CPLCTest lists all 18 fields; the names and their order are the spec's."""
    read = cplc.parse_cplc(tlv.h(cplc.CPLC_EXAMPLES[3][0]))
    assert list(read.as_hex()) == [
        "ic_fabricator", "ic_type", "os_id", "os_release_date", "os_release_level", "ic_fabrication_date",
        "ic_serial_number", "ic_batch_identifier", "ic_module_fabricator", "ic_module_packaging_date",
        "icc_manufacturer", "ic_embedding_date", "ic_pre_personalizer", "ic_pre_perso_equipment_date",
        "ic_pre_perso_equipment_id", "ic_personalizer", "ic_personalization_date", "ic_perso_equipment_id"]
    assert isinstance(read.ic_fabrication_date, CplcDate) and str(read.ic_fabrication_date) == "3332"


@pytest.mark.parametrize(("raw", "reference", "expected", "source"), cplc.CPLC_DATE_EXAMPLES,
                         ids=_ids(cplc.CPLC_DATE_EXAMPLES))
def test_cplc_dates(raw: str, reference: datetime.date, expected: datetime.date | None, source: str) -> None:
    date = CplcDate(bytes.fromhex(raw))
    assert date.resolve(reference) == expected
    assert (date.day is None) == (expected is None)


def test_a_date_is_its_year_digit_and_day() -> None:
    """'1210': day 210 of a year ending in 1 (GlobalPlatformPro TestParseTags); '0078' day 78 of a year ending in 0
    (openjavacard-tools CPLCTest's OS release date)."""
    assert (CplcDate(b"\x12\x10").year_digit, CplcDate(b"\x12\x10").day) == (1, 210)
    assert (CplcDate(b"\x00\x78").year_digit, CplcDate(b"\x00\x78").day) == (0, 78)
    assert CplcDate(b"\x11\x7e").year_digit is None  # '117E' (the Stack Overflow card's embedding date): not BCD


def test_day_366_needs_a_leap_year() -> None:
    """'2366' resolves to the last leap year ending in 2 that is far enough back; '1366' to none (no leap year ends
    in an odd digit)."""
    assert CplcDate(b"\x23\x66").resolve(datetime.date(2030, 1, 1)) == datetime.date(2012, 12, 31)
    assert CplcDate(b"\x13\x66").resolve(datetime.date(2030, 1, 1)) is None


BAD_CPLC = [
    pytest.param("9f7f2a479050384791007833003332A0B1C2D3ABCD4812333900000000060f2032A0B1C2D300000000000000",
                 "declares 42 value bytes", id="openjavacard CPLCTest CPLC_SHORT"),
    pytest.param("9f7f2a479050384791007833003332A0B1C2D3ABCD4812333900000000060f2032A0B1C2D30000000000000000ABCD",
                 "bare or in one TLV", id="openjavacard CPLCTest CPLC_LONG"),
    pytest.param("FF401AE218E116C1144434050D9648B771CB3500D5398D36CE3F1C23A4", "bare or in one TLV",
                 id="GlobalPlatformPro TestParseTags testCPLCTagless"),
    pytest.param("9F7F03000102", "42 bytes, not 3", id="a 9F7F of 3 bytes"),
]


@pytest.mark.parametrize(("hex_text", "message"), BAD_CPLC)
def test_malformed_cplc_is_a_typed_error(hex_text: str, message: str) -> None:
    with pytest.raises(CardDataError, match=message) as caught:
        cplc.parse_cplc(tlv.h(hex_text))
    assert caught.value.code == "gp_card_data_format"


@pytest.mark.parametrize(("hex_text", "counter", "source"), dataobjects.SEQUENCE_COUNTER_EXAMPLES,
                         ids=_ids(dataobjects.SEQUENCE_COUNTER_EXAMPLES))
def test_sequence_counter(hex_text: str, counter: int, source: str) -> None:
    assert dataobjects.parse_sequence_counter(tlv.h(hex_text)) == counter


@pytest.mark.parametrize(("hex_text", "decoded", "source"), dataobjects.CARD_RESOURCES_EXAMPLES,
                         ids=_ids(dataobjects.CARD_RESOURCES_EXAMPLES))
def test_card_resources(hex_text: str, decoded: CardResources, source: str) -> None:
    value = tlv.h(hex_text)
    assert dataobjects.parse_card_resources_value(value) == decoded
    assert dataobjects.parse_card_resources(tlv.encode(0xFF21, value)) == decoded  # the GET DATA FF21 answer


def test_card_resources_keep_tags_beyond_81_to_83() -> None:
    resources = dataobjects.parse_card_resources(tlv.h("FF21 0F 810101 82020100 83020200 8402ABCD"))
    assert resources == CardResources(1, 0x100, 0x200, ((0x84, b"\xab\xcd"),))


def test_iin_and_cin_values() -> None:
    """GPCS 2.3.1 §11.3.1: '42' and '45' with their values (hand-written layout check, not a vector: the published
    traces found show cards refusing both with 6A88, which `tests/tsm_core/test_discover.py` replays)."""
    assert dataobjects.parse_iin(tlv.h("4203 123456")) == tlv.h("123456")
    assert dataobjects.parse_cin(tlv.h("450A 00008048007283073469")) == tlv.h("00008048007283073469")


BAD_OBJECTS = [
    pytest.param(dataobjects.parse_iin, "4500", "one data object 42", id="IIN answered with tag 45"),
    pytest.param(dataobjects.parse_iin, "4200", "is empty", id="empty IIN"),
    pytest.param(dataobjects.parse_cin, "4503 0102", "declares 3 value bytes", id="truncated CIN"),
    pytest.param(dataobjects.parse_cin, "4501 01 00", "one data object 45", id="trailing byte"),
    pytest.param(dataobjects.parse_sequence_counter, "C101 05", "2 \\(SCP02\\) or 3", id="1-byte counter"),
    pytest.param(dataobjects.parse_card_resources, "FF21 06 810101 820101", "without 83", id="no 83"),
    pytest.param(dataobjects.parse_card_resources, "FF21 09 810101 810102 830101", "repeated", id="81 twice"),
    pytest.param(dataobjects.parse_card_resources, "FF21 0A 810101 82050000000001 ", "not 1 to 4 bytes",
                 id="5-byte memory figure"),
    pytest.param(dataobjects.parse_card_resources, "FF21 03 8105 01", "declares 5 value bytes",
                 id="truncated inside FF21"),
    pytest.param(dataobjects.parse_card_resources, "810101 820101 830101", "one data object FF21",
                 id="bare value where FF21 is expected"),
]


@pytest.mark.parametrize(("parse", "hex_text", "message"), BAD_OBJECTS)
def test_malformed_data_objects_are_typed_errors(parse, hex_text: str, message: str) -> None:
    with pytest.raises(CardDataError, match=message) as caught:
        parse(tlv.h(hex_text))
    assert caught.value.code == "gp_card_data_format"


def test_every_example_names_its_source() -> None:
    examples = [*cplc.CPLC_EXAMPLES, *cplc.CPLC_DATE_EXAMPLES, *dataobjects.SEQUENCE_COUNTER_EXAMPLES,
                *dataobjects.CARD_RESOURCES_EXAMPLES]
    assert all(example[-1] for example in examples)
