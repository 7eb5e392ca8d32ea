"""Card Production Life Cycle data, the answer to GET DATA '9F7F' (GPCS 2.3.1 Annex H.6; GP 2.1.1 §9.6).

42 bytes, fixed fields in this order: IC fabricator (2), IC type (2), operating system identifier (2), operating
system release date (2), operating system release level (2), IC fabrication date (2), IC serial number (4), IC
batch identifier (2), IC module fabricator (2), IC module packaging date (2), ICC manufacturer (2), IC embedding
date (2), IC pre-personalizer (2), IC pre-personalization equipment date (2), IC pre-personalization equipment
identifier (4), IC personalizer (2), IC personalization date (2), IC personalization equipment identifier (4).

Cards answer the 42 bytes inside their TLV ('9F7F' '2A', what GET DATA with CLA '80' returns) or bare (CLA '00'
on some cards); both are read. The identifiers are opaque (chip and OS vendors assign them); the dates are "YDDD"
in BCD: the last digit of the year, then the day of that year. A date carries no decade, so `CplcDate.resolve`
takes the latest matching day not after a reference date. Cards fill unused dates with '0000' or 'FFFF' and
some put non-BCD bytes there: such a date has no day (`CplcDate.day` is None); its raw bytes are kept.

`CPLC_EXAMPLES` are published card answers with the fields a GlobalPlatform tool printed for them;
`CPLC_DATE_EXAMPLES` the dates GlobalPlatformPro's own tests resolve. One generic test runs them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, fields
from typing import Final

from globalplatform import tlv
from globalplatform.errors import CardDataError, GpError

CPLC_TAG: Final = 0x9F7F
CPLC_LENGTH: Final = 42
DATE_LENGTH: Final = 2
DAYS_IN_LEAP_YEAR: Final = 366
DECADE: Final = 10
LOOKBACK_DECADES: Final = 4
"""Decades `CplcDate.resolve` looks back (a year digit and day recur every ten years; a leap day within 40)."""
_BCD_DIGIT_MAX: Final = 9


@dataclass(frozen=True)
class CplcDate:
    """A CPLC date "YDDD" (BCD): last digit of the year, day of the year (1..366)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != DATE_LENGTH:
            raise CardDataError(f"a CPLC date is {DATE_LENGTH} bytes, not {len(self.raw)}")

    def __str__(self) -> str:
        return self.raw.hex().upper()

    @property
    def _digits(self) -> tuple[int, ...] | None:
        digits = tuple(nibble for byte in self.raw for nibble in (byte >> 4, byte & 0x0F))
        return digits if all(d <= _BCD_DIGIT_MAX for d in digits) else None

    @property
    def year_digit(self) -> int | None:
        """Y, the last digit of the year; None when the date is not a valid "YDDD"."""
        digits = self._digits
        return None if digits is None or self.day is None else digits[0]

    @property
    def day(self) -> int | None:
        """DDD, the day of the year (1..366); None for '0000', 'FFFF' and other non-dates."""
        digits = self._digits
        if digits is None:
            return None
        day = digits[1] * 100 + digits[2] * 10 + digits[3]
        return day if 1 <= day <= DAYS_IN_LEAP_YEAR else None

    def resolve(self, not_after: datetime.date) -> datetime.date | None:
        """The latest date with this year digit and day that is not after `not_after`; None for a non-date, and
        for day 366 of a year digit that no leap year ends in."""
        if self.year_digit is None or self.day is None:
            return None
        latest = not_after.year - (not_after.year - self.year_digit) % DECADE
        for year in range(latest, latest - LOOKBACK_DECADES * DECADE, -DECADE):
            found = datetime.date(year, 1, 1) + datetime.timedelta(days=self.day - 1)
            if found.year == year and found <= not_after:
                return found
        return None


_ID2: Final = {"length": 2}
_ID4: Final = {"length": 4}
_DATE: Final = {"length": DATE_LENGTH, "date": True}


@dataclass(frozen=True)
class Cplc:
    """The 18 CPLC fields, in card order (identifiers as bytes, dates as `CplcDate`)."""

    ic_fabricator: bytes = field(metadata=_ID2)
    ic_type: bytes = field(metadata=_ID2)
    os_id: bytes = field(metadata=_ID2)
    os_release_date: CplcDate = field(metadata=_DATE)
    os_release_level: bytes = field(metadata=_ID2)
    ic_fabrication_date: CplcDate = field(metadata=_DATE)
    ic_serial_number: bytes = field(metadata=_ID4)
    ic_batch_identifier: bytes = field(metadata=_ID2)
    ic_module_fabricator: bytes = field(metadata=_ID2)
    ic_module_packaging_date: CplcDate = field(metadata=_DATE)
    icc_manufacturer: bytes = field(metadata=_ID2)
    ic_embedding_date: CplcDate = field(metadata=_DATE)
    ic_pre_personalizer: bytes = field(metadata=_ID2)
    ic_pre_perso_equipment_date: CplcDate = field(metadata=_DATE)
    ic_pre_perso_equipment_id: bytes = field(metadata=_ID4)
    ic_personalizer: bytes = field(metadata=_ID2)
    ic_personalization_date: CplcDate = field(metadata=_DATE)
    ic_perso_equipment_id: bytes = field(metadata=_ID4)

    def as_hex(self) -> dict[str, str]:
        """Every field as upper-case hex, by name (what a registry stores and a tool prints)."""
        return {f.name: _raw(getattr(self, f.name)).hex().upper() for f in fields(self)}


def _raw(value: bytes | CplcDate) -> bytes:
    return value.raw if isinstance(value, CplcDate) else value


def _value(data: bytes) -> bytes:
    """The 42 CPLC bytes: the data itself when it is that long, else the value of the one '9F7F' TLV it is."""
    if len(data) == CPLC_LENGTH:
        return data
    try:
        item, end = tlv.decode_one(data)
    except GpError as exc:
        raise CardDataError(f"CPLC (9F7F): {exc}") from None
    if item.tag != CPLC_TAG or end != len(data):
        raise CardDataError(f"CPLC data is {CPLC_LENGTH} bytes, bare or in one TLV 9F7F, not "
                            f"{data[:4].hex().upper()}... ({len(data)} bytes)")
    return item.value


def parse_cplc(data: bytes) -> Cplc:
    """The GET DATA '9F7F' response data (without SW), with or without its '9F7F' header."""
    value = _value(data)
    if len(value) != CPLC_LENGTH:
        raise CardDataError(f"CPLC data is {CPLC_LENGTH} bytes, not {len(value)} (GPCS 2.3.1 Annex H.6)")
    parts: dict[str, bytes | CplcDate] = {}
    offset = 0
    for f in fields(Cplc):
        length = int(f.metadata["length"])
        chunk = value[offset: offset + length]
        parts[f.name] = CplcDate(chunk) if f.metadata.get("date") else chunk
        offset += length
    return Cplc(**parts)  # type: ignore[arg-type]


def field_span(name: str) -> tuple[int, int]:
    """(offset, length) in bytes of the CPLC field `name` within the 42 bytes (GPCS 2.3.1 Annex H.6); KeyError
    for a name that is not a field."""
    offset = 0
    for f in fields(Cplc):
        length = int(f.metadata["length"])
        if f.name == name:
            return offset, length
        offset += length
    raise KeyError(name)


CPLC_FIELDS: Final = tuple(f.name for f in fields(Cplc))
"""The field names in card order (what a search by CPLC field takes)."""


def encode_cplc(cplc: Cplc) -> bytes:
    """The '9F7F' TLV, as GET DATA with CLA '80' returns it."""
    return tlv.encode(CPLC_TAG, b"".join(_raw(getattr(cplc, f.name)) for f in fields(cplc)))


# ---- published examples ----------------------------------------------------------------------------------

_GPPRO = "martinpaljak/GlobalPlatformPro"

CPLC_EXAMPLES: Final[tuple[tuple[str, dict[str, str], str], ...]] = (
    (
        "9F7F2A 4790 D321 4700 0000 0000 8345 6E6E6E50 5243 0000 0000 0000 0000 5758 594E 4E4E4E4E 0000 0000"
        " 00000000",
        {"ic_fabricator": "4790", "ic_type": "D321", "os_id": "4700", "os_release_date": "0000",
         "os_release_level": "0000", "ic_fabrication_date": "8345", "ic_serial_number": "6E6E6E50",
         "ic_batch_identifier": "5243", "ic_module_fabricator": "0000", "ic_module_packaging_date": "0000",
         "icc_manufacturer": "0000", "ic_embedding_date": "0000", "ic_pre_personalizer": "5758",
         "ic_pre_perso_equipment_date": "594E"},
        f"{_GPPRO} issue #221 'JCOP4 Support' (NXP JCOP 4, `gp --info -v -d`: the 80CA9F7F answer and the CPLC "
        "fields GlobalPlatformPro printed for it, up to ICPrePersonalizationEquipmentDate)",
    ),
    (
        "9F7F2A 4250 010C 4251 0290 2610 1160 00099A5A 0AF9 4252 1169 4253 117E 0000 0000 00000000 0000 0000"
        " 00000000",
        {"ic_fabricator": "4250", "ic_type": "010C", "os_id": "4251", "os_release_date": "0290",
         "os_release_level": "2610", "ic_fabrication_date": "1160", "ic_serial_number": "00099A5A",
         "ic_batch_identifier": "0AF9", "ic_module_fabricator": "4252", "ic_module_packaging_date": "1169",
         "icc_manufacturer": "4253", "ic_embedding_date": "117E", "ic_pre_personalizer": "0000",
         "ic_pre_perso_equipment_date": "0000", "ic_pre_perso_equipment_id": "00000000",
         "ic_personalizer": "0000", "ic_personalization_date": "0000", "ic_perso_equipment_id": "00000000"},
        "Stack Overflow 'Get Data APDU command different tags and response format' (mirror "
        "http://djcxy.com/p/92102.html): `GP -list -d -v -i`, the 80CA9F7F answer and all 18 fields",
    ),
    (
        "9F7F2A 4790 6B64 4700 E4D8 0300 8165 00485399 0648 0000 0000 0000 0000 5758 594E 4E4E4E4E 0000 0000"
        " 00000000",
        {"ic_fabricator": "4790", "ic_type": "6B64", "os_id": "4700", "os_release_date": "E4D8",
         "os_release_level": "0300"},
        "fidesmo/fdsm src/test/java/com/fidesmo/fdsm/FidesmoCardTest.java (a JCOP 3 card's 80CA9F7F answer); the "
        "fields as GlobalPlatformPro printed them in src/main/java/com/fidesmo/fdsm/FidesmoCard.java (JCOP3EMV)",
    ),
    (
        "9F7F2A 4790 5038 4791 0078 3300 3332 A0B1C2D3 ABCD 4812 3339 0000 0000 060F 2032 A0B1C2D3 0000 0000"
        " 00000000",
        {"ic_fabricator": "4790", "ic_type": "5038", "os_id": "4791", "os_release_date": "0078",
         "os_release_level": "3300", "ic_fabrication_date": "3332", "ic_serial_number": "A0B1C2D3",
         "ic_batch_identifier": "ABCD", "ic_module_fabricator": "4812", "ic_module_packaging_date": "3339",
         "icc_manufacturer": "0000", "ic_embedding_date": "0000", "ic_pre_personalizer": "060F",
         "ic_pre_perso_equipment_date": "2032", "ic_pre_perso_equipment_id": "A0B1C2D3",
         "ic_personalizer": "0000", "ic_personalization_date": "0000", "ic_perso_equipment_id": "00000000"},
        "OpenJavaCard/openjavacard-tools common/src/test/java/org/openjavacard/emv/CPLCTest.java testParse "
        "(serial numbers replaced by the authors)",
    ),
    (
        "4790 D321 4700 0000 0000 2345 11111111 2222 0000 0000 0000 0000 1939 9738 11111111 0000 0000 00000000",
        {"ic_fabricator": "4790", "ic_type": "D321", "os_id": "4700", "os_release_date": "0000",
         "os_release_level": "0000", "ic_fabrication_date": "2345", "ic_serial_number": "11111111",
         "ic_batch_identifier": "2222", "ic_module_fabricator": "0000", "ic_module_packaging_date": "0000",
         "icc_manufacturer": "0000", "ic_embedding_date": "0000", "ic_pre_personalizer": "1939",
         "ic_pre_perso_equipment_date": "9738", "ic_pre_perso_equipment_id": "11111111",
         "ic_personalizer": "0000", "ic_personalization_date": "0000", "ic_perso_equipment_id": "00000000"},
        "andreas-mausch/docker-javacard docs/globalplatformpro.md (`gp --info` of a JCOP 4 card, all 18 fields as "
        "printed, serials redacted by the author; the bare 42 bytes are those fields in CPLC order)",
    ),
)
"""(hex, fields as published, source): GET DATA '9F7F' answers of real cards and what a GP tool read in them."""

CPLC_DATE_EXAMPLES: Final[tuple[tuple[str, datetime.date, datetime.date | None, str], ...]] = (
    ("1210", datetime.date(2021, 7, 30), datetime.date(2021, 7, 29),
     f"{_GPPRO} library/src/test/java/pro/javacard/gp/TestParseTags.java testCPLCDateParse ('day 210 of year 20?1')"),
    ("1210", datetime.date(2021, 7, 29), datetime.date(2021, 7, 29),
     f"{_GPPRO} TestParseTags.java testCPLCDateParse (a date recorded the same day)"),
    ("1210", datetime.date(2021, 7, 28), datetime.date(2011, 7, 29), f"{_GPPRO} TestParseTags.java testCPLCDateParse"),
    ("0000", datetime.date(2021, 7, 28), None, f"{_GPPRO} TestParseTags.java testCPLCDateParse ('0000' is no date)"),
    ("1410", datetime.date(2021, 7, 28), None, f"{_GPPRO} TestParseTags.java testCPLCDateParseInvalid (day 410)"),
    ("8345", datetime.date(2020, 5, 29), datetime.date(2018, 12, 11),
     f"{_GPPRO} issue #221 (ICFabricationDate=8345 (2018-12-11), reported 2020-05-29)"),
    ("594E", datetime.date(2020, 5, 29), None, f"{_GPPRO} issue #221 ('Invalid CPLC date: 594E')"),
    ("FFFF", datetime.date(2020, 2, 20), None,
     "herlesupreeth/CoIMS_Wiki issue #1 (sysmoUSIM-SJS1: 'Invalid CPLC date: FFFF' for every date)"),
)
"""(YDDD, reference day, resolved date, source)."""
