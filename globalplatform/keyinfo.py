"""The Key Information Template a Security Domain returns to GET DATA 'E0' (GPCS 2.3.1 §11.3.3.1).

One Key Information Data 'C0' per key, in the basic format (Table 11-28: key identifier, key version number,
then key type and key length, one byte each, for each component of the key) or the extended one (Table 11-29:
each component as 'FF', key type, two-byte key length; then key usage and key access, each after its one-byte
length). Key types are coded as in Table 11-16 (`globalplatform.keys.GpKeyType`).

Pure GP vocabulary, read without a secure channel: the TSM names the key versions a card holds when it refuses
the one asked for ('6A88' to INITIALIZE UPDATE). `KEY_INFORMATION_EXAMPLES` are published templates; one generic
test round-trips each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from globalplatform import tlv
from globalplatform.errors import CardDataError, GpError


@unique
class KeyInfoTag(IntEnum):
    """Tags of the Key Information Template (GPCS 2.3.1 §11.3.3.1)."""

    TEMPLATE = 0xE0
    KEY = 0xC0


EXTENDED_KEY_TYPE: Final = 0xFF
"""'FF' opens each component of the extended format (GPCS 2.3.1 Table 11-16, Table 11-29)."""
MIN_LENGTH: Final = 4
"""Key identifier, key version number, one key type and its length (Table 11-28)."""
EXTENDED_COMPONENT_LENGTH: Final = 4
"""'FF', key type, key length on two bytes (Table 11-29)."""


@dataclass(frozen=True)
class KeyComponent:
    """One component of a key: its type (Table 11-16 coding) and length in bytes."""

    key_type: int
    length: int


@dataclass(frozen=True)
class KeyInformation:
    """One Key Information Data 'C0' (Table 11-28 basic, Table 11-29 extended)."""

    key_id: int
    kvn: int
    components: tuple[KeyComponent, ...]
    extended: bool = False
    usage: bytes = b""
    """Key usage (GPCS 2.3.1 §11.1.9), extended format only."""
    access: bytes = b""
    """Key access (GPCS 2.3.1 §11.1.10), extended format only."""


def _template(data: bytes) -> bytes:
    try:
        item, end = tlv.decode_one(data)
    except GpError as exc:
        raise CardDataError(f"key information template: {exc}") from None
    if item.tag != KeyInfoTag.TEMPLATE or end != len(data):
        raise CardDataError(f"the key information template is one TLV with tag E0, not {data[:3].hex().upper()}... "
                            "(GPCS 2.3.1 §11.3.3.1)")
    return item.value


def _extended(key_id: int, kvn: int, rest: bytes) -> KeyInformation:
    """Table 11-29: components 'FF' type length(2), then usage length, usage, access length, access."""
    components: list[KeyComponent] = []
    offset = 0
    while offset < len(rest) and rest[offset] == EXTENDED_KEY_TYPE:
        if offset + EXTENDED_COMPONENT_LENGTH > len(rest):
            raise CardDataError(f"key {key_id:02X} version {kvn:02X}: truncated component (GPCS 2.3.1 Table 11-29)")
        components.append(KeyComponent(rest[offset + 1], int.from_bytes(rest[offset + 2: offset + 4], "big")))
        offset += EXTENDED_COMPONENT_LENGTH
    fields: list[bytes] = []
    for _ in ("usage", "access"):
        if offset >= len(rest) or offset + 1 + rest[offset] > len(rest):
            raise CardDataError(f"key {key_id:02X} version {kvn:02X}: truncated key usage or access "
                                "(GPCS 2.3.1 Table 11-29)")
        fields.append(rest[offset + 1: offset + 1 + rest[offset]])
        offset += 1 + rest[offset]
    if offset != len(rest):
        raise CardDataError(f"key {key_id:02X} version {kvn:02X}: {len(rest) - offset} bytes after key access "
                            "(GPCS 2.3.1 Table 11-29)")
    return KeyInformation(key_id, kvn, tuple(components), True, fields[0], fields[1])


def parse_key_information_data(value: bytes) -> KeyInformation:
    """One 'C0' value, basic (Table 11-28) or extended (Table 11-29) format."""
    if len(value) < MIN_LENGTH:
        raise CardDataError(f"key information data is at least 4 bytes, not {len(value)} (GPCS 2.3.1 Table 11-28)")
    key_id, kvn, rest = value[0], value[1], value[2:]
    if rest[0] == EXTENDED_KEY_TYPE:
        return _extended(key_id, kvn, rest)
    if len(rest) % 2:
        raise CardDataError(f"key {key_id:02X} version {kvn:02X}: key type and length come in pairs "
                            "(GPCS 2.3.1 Table 11-28)")
    pairs = tuple(KeyComponent(rest[n], rest[n + 1]) for n in range(0, len(rest), 2))
    return KeyInformation(key_id, kvn, pairs)


def parse_key_information(data: bytes) -> tuple[KeyInformation, ...]:
    """The GET DATA 'E0' response (without SW): every key the Security Domain holds."""
    keys = []
    for item in tlv.decode_all(_template(data)):
        if item.tag != KeyInfoTag.KEY:
            raise CardDataError(f"the key information template holds C0 entries, not "
                                f"{tlv.tag_bytes(item.tag).hex().upper()} (GPCS 2.3.1 §11.3.3.1)")
        keys.append(parse_key_information_data(item.value))
    return tuple(keys)


def encode_key_information_data(key: KeyInformation) -> bytes:
    """One 'C0' TLV in the key's format."""
    body = bytes([key.key_id, key.kvn])
    if not key.extended:
        return tlv.encode(KeyInfoTag.KEY, body + b"".join(bytes([c.key_type, c.length]) for c in key.components))
    for component in key.components:
        body += bytes([EXTENDED_KEY_TYPE, component.key_type]) + component.length.to_bytes(2, "big")
    body += bytes([len(key.usage)]) + key.usage + bytes([len(key.access)]) + key.access
    return tlv.encode(KeyInfoTag.KEY, body)


def encode_key_information(keys: tuple[KeyInformation, ...]) -> bytes:
    """The 'E0' template."""
    return tlv.encode(KeyInfoTag.TEMPLATE, b"".join(encode_key_information_data(key) for key in keys))


def key_versions(keys: tuple[KeyInformation, ...]) -> tuple[int, ...]:
    """The distinct key version numbers, in the card's order."""
    return tuple(dict.fromkeys(key.kvn for key in keys))


# ---- published examples (hex, decoded, source) ----------------------------------------------------------


def _keys(kvn: int, key_type: int, length: int, ids: tuple[int, ...] = (1, 2, 3)) -> tuple[KeyInformation, ...]:
    return tuple(KeyInformation(key_id, kvn, (KeyComponent(key_type, length),)) for key_id in ids)


def _ext(key_id: int, kvn: int, *components: tuple[int, int]) -> KeyInformation:
    return KeyInformation(key_id, kvn, tuple(KeyComponent(t, n) for t, n in components), True, b"\x00", b"\x00")


_DES, _AES, _PSK, _RSA_N, _RSA_E = 0x80, 0x88, 0x85, 0xA1, 0xA0

KEY_INFORMATION_EXAMPLES: Final[tuple[tuple[str, tuple[KeyInformation, ...], str], ...]] = (
    (
        "E024 C00401018010 C00402018010 C00403018010 C00401038010 C00402038010 C00403038010",
        _keys(0x01, _DES, 16) + _keys(0x03, _DES, 16),
        "ctskinner.blogspot.com 2011/10 'GlobalPlatform Card Key Id & Versions' (a card's GET DATA 80CA00E000)",
    ),
    (
        "E012 C00401018820 C00402018820 C00403018820",
        _keys(0x01, _AES, 32),
        "martinpaljak/GlobalPlatformPro issue #114 (Oberthur COSMO 8.1, AES-256 keys, KEY INFO in `gp -i`)",
    ),
    (
        "E020 C00401018820 C00402018820 C00403018820 C0060170A180A003 C00401718010",
        (*_keys(0x01, _AES, 32), KeyInformation(0x01, 0x70, (KeyComponent(_RSA_N, 0x80), KeyComponent(_RSA_E, 3))),
         KeyInformation(0x01, 0x71, (KeyComponent(_DES, 16),))),
        "martinpaljak/GlobalPlatformPro library/src/test/java/pro/javacard/gp/test/TestGPKeyInfo.java @0122989 "
        "testRSAKeyTemplate (a token key of two components, basic format)",
    ),
    (
        "E081B0 C00A0120FF80001001000100 C00A0220FF80001001000100 C00A0320FF80001001000100"
        " C00A0101FF80001001000100 C00A0201FF80001001000100 C00A0301FF80001001000100"
        " C00A0102FF88001001000100 C00E0202FF880010FF10000101000100 C00A0302FF88001001000100"
        " C00A0103FF88001001000100 C00E0203FF880010FF10000101000100 C00A0303FF88001001000100"
        " C00A1403FF85001001000100 C00A1503FF88001001000100",
        (_ext(1, 0x20, (_DES, 16)), _ext(2, 0x20, (_DES, 16)), _ext(3, 0x20, (_DES, 16)),
         _ext(1, 0x01, (_DES, 16)), _ext(2, 0x01, (_DES, 16)), _ext(3, 0x01, (_DES, 16)),
         _ext(1, 0x02, (_AES, 16)), _ext(2, 0x02, (_AES, 16), (0x10, 1)), _ext(3, 0x02, (_AES, 16)),
         _ext(1, 0x03, (_AES, 16)), _ext(2, 0x03, (_AES, 16), (0x10, 1)), _ext(3, 0x03, (_AES, 16)),
         _ext(0x14, 0x03, (_PSK, 16)), _ext(0x15, 0x03, (_AES, 16))),
        "martinpaljak/GlobalPlatformPro TestGPKeyInfo.java @0122989 testExtendedKeyTypeTemplateWithZeroLengths "
        "(extended format: usage and access one byte each)",
    ),
)
"""GET DATA 'E0' responses, as published, and the keys they list."""
