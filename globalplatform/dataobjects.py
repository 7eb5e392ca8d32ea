"""The other data objects a Security Domain answers to GET DATA (GPCS 2.3.1 §11.3.1 lists which; card recognition
data and key information are in `cardinfo` and `keyinfo`, CPLC in `cplc`).

- '42' Issuer Identification Number (of an SSD: its provider's identification number) and '45' Card Image Number
  (of an SSD: the Security Domain Image Number). Together they identify the card when its recognition data names
  the identification scheme {globalPlatform 3} (GPCS 2.3.1 Table H-1). Opaque bytes to this layer.
- 'C1' Sequence Counter of the default Key Version Number, which a Security Domain supporting SCP02 or SCP03 shall
  answer: 2 bytes for SCP02 (GPCS 2.3.1 §E.4.1), 3 bytes for SCP03 (Amd D §6.2.2.1).
- 'FF21' Extended Card Resources Information, which a Security Domain may answer, "as defined in ETSI TS 102 226"
  (§8.2.1.7.2): '81' number of installed applications, '82' free non-volatile memory, '83' free volatile memory
  (bytes), each an unsigned big-endian integer. GSMA SGP.22 §5.7.8 carries the same value as `extCardResource`.

Each GET DATA answer is the data object itself (tag, length, value); a value of another length or tag is a
`CardDataError`. `SEQUENCE_COUNTER_EXAMPLES` and `CARD_RESOURCES_EXAMPLES` are published card answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from globalplatform import tlv
from globalplatform.errors import CardDataError, GpError


@unique
class SdDataTag(IntEnum):
    """GET DATA tags of this module (GPCS 2.3.1 §11.3.1)."""

    IIN = 0x42
    CIN = 0x45
    SEQUENCE_COUNTER = 0xC1
    EXTENDED_CARD_RESOURCES = 0xFF21


@unique
class ResourceTag(IntEnum):
    """Tags inside 'FF21' (ETSI TS 102 226 §8.2.1.7.2)."""

    INSTALLED_APPLICATIONS = 0x81
    FREE_NON_VOLATILE_MEMORY = 0x82
    FREE_VOLATILE_MEMORY = 0x83


SEQUENCE_COUNTER_LENGTHS: Final = (2, 3)
"""SCP02 (GPCS 2.3.1 §E.4.1) and SCP03 (Amd D §6.2.2.1) sequence counters."""
_RESOURCE_TAGS: Final = frozenset(ResourceTag)
MAX_RESOURCE_BYTES: Final = 4
"""Longest integer read in 'FF21' (4 GiB of memory; cards send 1 to 4 bytes)."""


@dataclass(frozen=True)
class CardResources:
    """Extended Card Resources Information ('FF21', ETSI TS 102 226 §8.2.1.7.2)."""

    installed_applications: int
    free_non_volatile: int
    """Free non-volatile memory, bytes."""
    free_volatile: int
    """Free volatile memory, bytes."""
    other: tuple[tuple[int, bytes], ...] = ()
    """Tags the card added beyond '81'-'83', as sent."""


def _value(data: bytes, tag: int, what: str) -> bytes:
    """The value of the one TLV with tag `tag` that `data` must be."""
    try:
        item, end = tlv.decode_one(data)
    except GpError as exc:
        raise CardDataError(f"{what}: {exc}") from None
    if item.tag != tag or end != len(data):
        raise CardDataError(f"{what} is one data object {tlv.tag_bytes(tag).hex().upper()}, not "
                            f"{data[:4].hex().upper()}... ({len(data)} bytes)")
    return item.value


def _identifier(data: bytes, tag: SdDataTag, what: str) -> bytes:
    value = _value(data, tag, what)
    if not value:
        raise CardDataError(f"{what} ({tag:02X}) is empty")
    return value


def parse_iin(data: bytes) -> bytes:
    """The GET DATA '42' answer: the Issuer Identification Number."""
    return _identifier(data, SdDataTag.IIN, "Issuer Identification Number")


def parse_cin(data: bytes) -> bytes:
    """The GET DATA '45' answer: the Card Image Number."""
    return _identifier(data, SdDataTag.CIN, "Card Image Number")


def parse_sequence_counter(data: bytes) -> int:
    """The GET DATA 'C1' answer: the sequence counter of the default key version."""
    value = _value(data, SdDataTag.SEQUENCE_COUNTER, "sequence counter")
    if len(value) not in SEQUENCE_COUNTER_LENGTHS:
        raise CardDataError(f"a sequence counter is 2 (SCP02) or 3 (SCP03) bytes, not {len(value)} "
                            "(GPCS 2.3.1 §E.4.1, Amd D §6.2.2.1)")
    return int.from_bytes(value, "big")


def parse_card_resources_value(value: bytes) -> CardResources:
    """The content of 'FF21' (SGP.22's `extCardResource`): '81', '82' and '83' once each, other tags kept."""
    try:
        items = tlv.decode_all(value)
    except GpError as exc:
        raise CardDataError(f"extended card resources: {exc}") from None
    found: dict[int, int] = {}
    other: list[tuple[int, bytes]] = []
    for item in items:
        if item.tag not in _RESOURCE_TAGS:
            other.append((item.tag, item.value))
            continue
        if item.tag in found or not 1 <= len(item.value) <= MAX_RESOURCE_BYTES:
            raise CardDataError(f"extended card resources: tag {item.tag:02X} repeated, or not 1 to "
                                f"{MAX_RESOURCE_BYTES} bytes (ETSI TS 102 226 §8.2.1.7.2)")
        found[item.tag] = int.from_bytes(item.value, "big")
    missing = [f"{tag:02X}" for tag in ResourceTag if tag not in found]
    if missing:
        raise CardDataError(f"extended card resources without {', '.join(missing)} (ETSI TS 102 226 §8.2.1.7.2)")
    return CardResources(found[ResourceTag.INSTALLED_APPLICATIONS], found[ResourceTag.FREE_NON_VOLATILE_MEMORY],
                         found[ResourceTag.FREE_VOLATILE_MEMORY], tuple(other))


def parse_card_resources(data: bytes) -> CardResources:
    """The GET DATA 'FF21' answer."""
    return parse_card_resources_value(_value(data, SdDataTag.EXTENDED_CARD_RESOURCES, "extended card resources"))


# ---- published examples ----------------------------------------------------------------------------------

SEQUENCE_COUNTER_EXAMPLES: Final[tuple[tuple[str, int, str], ...]] = (
    ("C10200C5", 0xC5, "ctskinner.blogspot.com 2011/10 'GlobalPlatform Card Key Id & Versions' (GET DATA C1, CLA 80, "
                       "an SCP02 i=15 card: 'C10200C5 ... sequence counter is C5')"),
    ("C10300001E", 0x1E, "martinpaljak/GlobalPlatformPro issue #114 (Oberthur COSMO 8.1, SCP03 i=70: "
                         "'80CA00C1 -> C10300001E 9000', printed 'GET DATA(SSC): 00001E')"),
)
"""(GET DATA 'C1' answer, counter, source)."""

CARD_RESOURCES_EXAMPLES: Final[tuple[tuple[str, CardResources, str], ...]] = (
    ("810108 820400045BF8 83022419", CardResources(8, 0x45BF8, 0x2419),
     "osmocom/pysim tests/pySim-shell_test/euicc/euicc_info2.ok (a sysmoEUICC1's extCardResource, the value of "
     "FF21 per GSMA SGP.22 §5.7.8)"),
)
"""(value of 'FF21', decoded, source)."""
