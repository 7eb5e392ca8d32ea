"""BER-TLV (ISO/IEC 7816-4 §5.2.2.1, ITU-T X.690 §8.1.2-8.1.3) and the GlobalPlatform data objects, declared
as data.

The low layer encodes and decodes tags, lengths and (tag, value) pairs. Above it, each GP data object is a
`TlvDef` (tag, name, spec reference, allowed value length, nested definitions) carrying round-trip examples
`(hex, decoded)`, in the spirit of osmocom pySim's `_test_de_encode`; one generic test runs them all.

A decoded value is `bytes` for a primitive object, or a list of `(name, decoded)` pairs for a constructed one
with declared children (order kept, repeats allowed). A child tag without a definition keeps its value as
bytes under its hex tag as name (e.g. "DF20"), so proprietary objects survive a decode/encode round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from globalplatform.errors import TlvError

Decoded: TypeAlias = "bytes | list[tuple[str, Decoded]]"

CONSTRUCTED_BIT = 0x20
"""b6 of the first tag byte: the value is itself BER-TLV (X.690 §8.1.2.5)."""
TAG_NUMBER_MASK = 0x1F
"""b5..b1 all set in the first tag byte: the tag number continues in further bytes (X.690 §8.1.2.4)."""
TAG_MORE_BIT = 0x80
"""b8 of a subsequent tag byte: another tag byte follows."""
LONG_LENGTH_BIT = 0x80
"""b8 of the first length byte: b7..b1 give the number of length bytes that follow (X.690 §8.1.3.5)."""
MAX_LENGTH_BYTES = 3
"""ISO 7816-4 §5.2.2.1 allows lengths up to '83' + three bytes; GP objects never need more."""


def tag_bytes(tag: int) -> bytes:
    """The tag as sent on the wire (a multi-byte tag is held as one integer, e.g. 0x9F70)."""
    if tag < 0:
        raise TlvError(f"negative tag {tag}")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def is_constructed(tag: int) -> bool:
    """Whether the tag's first byte has the constructed bit set."""
    return bool(tag_bytes(tag)[0] & CONSTRUCTED_BIT)


def encode_length(length: int) -> bytes:
    """Definite-form length: one byte below 128, else '81'..'83' followed by the length (X.690 §8.1.3)."""
    if length < 0:
        raise TlvError(f"negative length {length}")
    if length < LONG_LENGTH_BIT:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    if size > MAX_LENGTH_BYTES:
        raise TlvError(f"length {length} needs more than {MAX_LENGTH_BYTES} length bytes")
    return bytes((LONG_LENGTH_BIT | size,)) + length.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV: tag, definite length, value."""
    return tag_bytes(tag) + encode_length(len(value)) + value


@dataclass(frozen=True)
class Tlv:
    """One decoded data object: its tag (as an integer) and its raw value."""

    tag: int
    value: bytes


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated TLV: missing tag")
    end = offset + 1
    if data[offset] & TAG_NUMBER_MASK == TAG_NUMBER_MASK:
        while True:
            if end >= len(data):
                raise TlvError(f"truncated multi-byte tag at offset {offset}")
            end += 1
            if not data[end - 1] & TAG_MORE_BIT:
                break
    return int.from_bytes(data[offset:end], "big"), end


def _read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError("truncated TLV: missing length")
    first = data[offset]
    if not first & LONG_LENGTH_BIT:
        return first, offset + 1
    size = first & ~LONG_LENGTH_BIT
    if size == 0:
        raise TlvError("indefinite length is not allowed in BER-TLV data objects (ISO 7816-4 §5.2.2.1)")
    if size > MAX_LENGTH_BYTES:
        raise TlvError(f"length field of {size} bytes is too long")
    end = offset + 1 + size
    if end > len(data):
        raise TlvError("truncated length field")
    return int.from_bytes(data[offset + 1 : end], "big"), end


def decode_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the TLV starting at `offset`; return it and the offset just past it."""
    tag, offset = _read_tag(data, offset)
    length, offset = _read_length(data, offset)
    end = offset + length
    if end > len(data):
        raise TlvError(f"TLV {tag:X} declares {length} value bytes, only {len(data) - offset} present")
    return Tlv(tag, data[offset:end]), end


MAX_DEPTH = 32
"""Nesting depth `walk` follows (GP objects nest a few levels; a deeper tree is refused, never a recursion)."""


def walk(data: bytes) -> list[tuple[int, Tlv]]:
    """Every TLV of `data` in document order with its depth, descending into constructed objects, without
    recursion; TlvError beyond MAX_DEPTH."""
    found: list[tuple[int, Tlv]] = []
    pending: list[tuple[int, list[Tlv]]] = [(0, decode_all(data))]
    while pending:
        depth, items = pending.pop()
        if not items:
            continue
        item, rest = items[0], items[1:]
        pending.append((depth, rest))
        found.append((depth, item))
        if is_constructed(item.tag):
            if depth + 1 > MAX_DEPTH:
                raise TlvError(f"the data nest constructed objects more than {MAX_DEPTH} levels deep")
            pending.append((depth + 1, decode_all(item.value)))
    return found


def decode_all(data: bytes) -> list[Tlv]:
    """Decode a concatenation of TLVs; trailing garbage is an error."""
    items: list[Tlv] = []
    offset = 0
    while offset < len(data):
        item, offset = decode_one(data, offset)
        items.append(item)
    return items


@dataclass(frozen=True)
class TlvDef:
    """A BER-TLV data object declared as data: tag, name, spec reference, value length, children, examples."""

    tag: int
    name: str
    spec: str
    min_len: int = 0
    max_len: int = 0xFFFF
    nested: tuple[TlvDef, ...] = ()
    examples: tuple[tuple[str, Decoded], ...] = field(default=(), compare=False)

    def encode(self, value: Decoded) -> bytes:
        """Encode `value` (bytes, or (name, value) pairs when children are declared) as this object."""
        raw = encode_children(self.nested, value) if self.nested else _as_bytes(self.name, value)
        self._check_length(raw)
        return encode(self.tag, raw)

    def decode(self, data: bytes) -> Decoded:
        """Decode one complete TLV that must carry this object's tag and nothing after it."""
        item, end = decode_one(data)
        if end != len(data):
            raise TlvError(f"{self.name}: {len(data) - end} trailing bytes")
        return self.decode_value(item)

    def decode_value(self, item: Tlv) -> Decoded:
        """Decode an already split TLV whose tag must be this object's."""
        if item.tag != self.tag:
            raise TlvError(f"{self.name}: expected tag {self.tag:X}, got {item.tag:X}")
        self._check_length(item.value)
        return decode_children(self.nested, item.value) if self.nested else item.value

    def _check_length(self, value: bytes) -> None:
        if not self.min_len <= len(value) <= self.max_len:
            raise TlvError(
                f"{self.name} ({self.tag:X}): value of {len(value)} bytes, "
                f"allowed {self.min_len}..{self.max_len} ({self.spec})"
            )


@dataclass(frozen=True)
class TlvSequence:
    """A data field made of several top-level TLVs (e.g. the install parameters field)."""

    name: str
    spec: str
    members: tuple[TlvDef, ...]
    examples: tuple[tuple[str, Decoded], ...] = field(default=(), compare=False)

    def encode(self, value: Decoded) -> bytes:
        """Encode (name, value) pairs in the given order."""
        return encode_children(self.members, value)

    def decode(self, data: bytes) -> Decoded:
        """Decode the concatenated TLVs into (name, value) pairs."""
        return decode_children(self.members, data)


def _as_bytes(name: str, value: Decoded) -> bytes:
    if not isinstance(value, bytes):
        raise TlvError(f"{name}: a primitive value must be bytes")
    return value


def decode_children(defs: Sequence[TlvDef], data: bytes) -> list[tuple[str, Decoded]]:
    """Decode concatenated TLVs with `defs`; an unknown tag keeps its raw bytes under its hex tag."""
    by_tag = {d.tag: d for d in defs}
    out: list[tuple[str, Decoded]] = []
    for item in decode_all(data):
        known = by_tag.get(item.tag)
        if known is None:
            out.append((tag_bytes(item.tag).hex().upper(), item.value))
        else:
            out.append((known.name, known.decode_value(item)))
    return out


def encode_children(defs: Sequence[TlvDef], value: Decoded) -> bytes:
    """Encode (name, value) pairs; a name that is not declared must be a hex tag (see `decode_children`)."""
    if isinstance(value, bytes):
        raise TlvError("a constructed value must be a list of (name, value) pairs")
    by_name = {d.name: d for d in defs}
    out = bytearray()
    for name, child in value:
        known = by_name.get(name)
        if known is not None:
            out += known.encode(child)
            continue
        try:
            tag = int(name, 16)
        except ValueError:
            raise TlvError(f"unknown data object name {name!r}") from None
        out += encode(tag, _as_bytes(name, child))
    return bytes(out)


def find(value: Decoded, name: str) -> list[Decoded]:
    """All children called `name` in a decoded constructed value, in order."""
    if isinstance(value, bytes):
        return []
    return [child for child_name, child in value if child_name == name]


def h(hex_text: str) -> bytes:
    """Bytes from hex with optional spaces (for readable examples)."""
    return bytes.fromhex(hex_text.replace(" ", ""))


# --- GlobalPlatform data objects ---

AID_MIN, AID_MAX = 5, 16
"""ISO 7816-4 §8.2.1.2 / GPCS 2.3.1 §6.1: an AID is 5 to 16 bytes."""

APPLICATION_AID = TlvDef(0x4F, "aid", "GPCS 2.3.1 §11.4.3.1 Table 11-36", AID_MIN, AID_MAX)
LIFE_CYCLE_STATE = TlvDef(0x9F70, "life_cycle_state", "GPCS 2.3.1 §11.4.3.1 Table 11-36, §11.1.1", 1, 2)
"""One byte per GPCS 2.3.1; some older cards append a second (zero) byte, accepted and ignored."""
PRIVILEGES = TlvDef(0xC5, "privileges", "GPCS 2.3.1 §11.4.3.1 Table 11-36, §11.1.2", 1, 3)
IMPLICIT_SELECTION = TlvDef(0xCF, "implicit_selection", "GPCS 2.3.1 §11.4.3.1 Table 11-36, §11.1.7", 1, 1)
ELF_AID = TlvDef(0xC4, "elf_aid", "GPCS 2.3.1 §11.4.3.1 Table 11-36", AID_MIN, AID_MAX)
ELF_VERSION = TlvDef(0xCE, "elf_version", "GPCS 2.3.1 §11.4.3.1 Table 11-36", 1, 2)
MODULE_AID = TlvDef(0x84, "module_aid", "GPCS 2.3.1 §11.4.3.1 Table 11-36", AID_MIN, AID_MAX)
ASSOCIATED_SD_AID = TlvDef(0xCC, "associated_sd_aid", "GPCS 2.3.1 §11.4.3.1 Table 11-36", AID_MIN, AID_MAX)

REGISTRY_DATA = TlvDef(
    0xE3,
    "registry_data",
    "GPCS 2.3.1 §11.4.3.1 Table 11-36 (GlobalPlatform Registry related data)",
    nested=(
        APPLICATION_AID,
        LIFE_CYCLE_STATE,
        PRIVILEGES,
        IMPLICIT_SELECTION,
        ELF_AID,
        ELF_VERSION,
        MODULE_AID,
        ASSOCIATED_SD_AID,
    ),
    examples=(
        (  # miketlk/omfgp tests/omfgp/scp_test.py GET STATUS response (vectors/secure_channel_scp03.json)
            "E32A4F08A0000001510000009F700107C5039EFE80C407A0000000620001CE020100CC08A000000151000000",
            [
                ("aid", h("A000000151000000")),
                ("life_cycle_state", h("07")),
                ("privileges", h("9EFE80")),
                ("elf_aid", h("A0000000620001")),
                ("elf_version", h("0100")),
                ("associated_sd_aid", h("A000000151000000")),
            ],
        ),
        (  # GPCS 2.3.1 Table 11-36: an Executable Load File with two Executable Modules (P1 '10').
            "E3234F07A00000006200019F700101CE0201018407A00000006200018407A0000000620002",
            [
                ("aid", h("A0000000620001")),
                ("life_cycle_state", h("01")),
                ("elf_version", h("0101")),
                ("module_aid", h("A0000000620001")),
                ("module_aid", h("A0000000620002")),
            ],
        ),
    ),
)

SEARCH_AID = TlvDef(0x4F, "aid", "GPCS 2.3.1 §11.4.2.2 Table 11-33 (empty value: any AID)", 0, AID_MAX)
TAG_LIST = TlvDef(0x5C, "tag_list", "GPCS 2.3.1 §11.4.2.2 Table 11-33, ISO 7816-4 §8.4.3", 1, 0xFF)
GET_STATUS_CRITERIA = TlvSequence(
    "get_status_criteria",
    "GPCS 2.3.1 §11.4.2.2 (search qualifier '4F', optional tag list '5C')",
    (SEARCH_AID, TAG_LIST),
    examples=(
        ("4F00", [("aid", b"")]),  # omfgp GET STATUS command data, tests/vectors/secure_channel_scp03.json
        ("4F00 5C044F9F70C5", [("aid", b""), ("tag_list", h("4F9F70C5"))]),
    ),
)

APPLICATION_SPECIFIC_PARAMETERS = TlvDef(0xC9, "application_specific", "GPCS 2.3.1 §11.5.2.3.7 Table 11-49")
NON_VOLATILE_CODE_MIN = TlvDef(0xC6, "non_volatile_code_min", "GPCS 2.3.1 Table 11-48", 2, 4)
VOLATILE_MEMORY_QUOTA = TlvDef(0xC7, "volatile_memory_quota", "GPCS 2.3.1 Tables 11-48/11-49", 2, 4)
NON_VOLATILE_MEMORY_QUOTA = TlvDef(0xC8, "non_volatile_memory_quota", "GPCS 2.3.1 Tables 11-48/11-49", 2, 4)
GLOBAL_SERVICE_PARAMETERS = TlvDef(0xCB, "global_service", "GPCS 2.3.1 Table 11-49")
VOLATILE_RESERVED_MEMORY = TlvDef(0xD7, "volatile_reserved_memory", "GPCS 2.3.1 Table 11-49", 2, 4)
NON_VOLATILE_RESERVED_MEMORY = TlvDef(0xD8, "non_volatile_reserved_memory", "GPCS 2.3.1 Table 11-49", 2, 4)
SYSTEM_IMPLICIT_SELECTION = TlvDef(0xCF, "implicit_selection", "GPCS 2.3.1 Table 11-50, §11.1.7", 1, 1)
SYSTEM_SPECIFIC_PARAMETERS = TlvDef(
    0xEF,
    "system_specific",
    "GPCS 2.3.1 §11.5.2.3.7 Tables 11-48/11-49/11-50",
    nested=(
        NON_VOLATILE_CODE_MIN,
        VOLATILE_MEMORY_QUOTA,
        NON_VOLATILE_MEMORY_QUOTA,
        GLOBAL_SERVICE_PARAMETERS,
        VOLATILE_RESERVED_MEMORY,
        NON_VOLATILE_RESERVED_MEMORY,
        SYSTEM_IMPLICIT_SELECTION,
    ),
    examples=(
        (
            "EF08C7020200C8020800",
            [("volatile_memory_quota", h("0200")), ("non_volatile_memory_quota", h("0800"))],
        ),
    ),
)
INSTALL_PARAMETERS = TlvSequence(
    "install_parameters",
    "GPCS 2.3.1 §11.5.2.3.7 Table 11-49 (C9 mandatory for INSTALL [for install], EF optional)",
    (APPLICATION_SPECIFIC_PARAMETERS, SYSTEM_SPECIFIC_PARAMETERS),
    examples=(
        ("C900", [("application_specific", b"")]),  # GlobalPlatformPro's default install parameters
        (
            "C903010203 EF08C7020200C8020800",
            [
                ("application_specific", h("010203")),
                (
                    "system_specific",
                    [("volatile_memory_quota", h("0200")), ("non_volatile_memory_quota", h("0800"))],
                ),
            ],
        ),
    ),
)

DAP_SD_AID = TlvDef(0x4F, "sd_aid", "GPCS 2.3.1 §11.6.2.3 Table 11-58", AID_MIN, AID_MAX)
DAP_SIGNATURE = TlvDef(0xC3, "signature", "GPCS 2.3.1 §11.6.2.3 Table 11-58", 1, 0xFFFF)
DAP_BLOCK = TlvDef(
    0xE2,
    "dap_block",
    "GPCS 2.3.1 §11.6.2.3 Table 11-58 (DAP block)",
    nested=(DAP_SD_AID, DAP_SIGNATURE),
    examples=(
        (
            "E2134F07A0000000030000C308 0102030405060708",
            [("sd_aid", h("A0000000030000")), ("signature", h("0102030405060708"))],
        ),
    ),
)
LOAD_FILE_DATA_BLOCK_TAG = 0xC4
"""GPCS 2.3.1 §11.6.2.3 Table 11-58: the Load File Data Block follows the DAP blocks under tag 'C4'."""

DELETE_AID = TlvDef(0x4F, "aid", "GPCS 2.3.1 §11.2.2.3 Table 11-22", AID_MIN, AID_MAX)
DELETE_CRT = TlvDef(0xB6, "crt_digital_signature", "GPCS 2.3.1 §11.2.2.3 Table 11-22")
DELETE_TOKEN = TlvDef(0x9E, "delete_token", "GPCS 2.3.1 §11.2.2.3 Table 11-22", 1, 0xFF)
DELETE_DATA = TlvSequence(
    "delete_data",
    "GPCS 2.3.1 §11.2.2.3 Table 11-22",
    (DELETE_AID, DELETE_CRT, DELETE_TOKEN),
    examples=(("4F07A0000001510001", [("aid", h("A0000001510001"))]),),
)

TLV_DEFINITIONS: tuple[TlvDef | TlvSequence, ...] = (
    REGISTRY_DATA,
    GET_STATUS_CRITERIA,
    SYSTEM_SPECIFIC_PARAMETERS,
    INSTALL_PARAMETERS,
    DAP_BLOCK,
    DELETE_DATA,
)
"""Every top-level declaration with examples; `tests/tsm_core/test_tlv.py` round-trips all of them."""
