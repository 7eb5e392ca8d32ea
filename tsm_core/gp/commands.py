"""Pure builders of GlobalPlatform card-management commands (GPCS 2.3.1 §11), plain (no secure messaging).

Each builder returns `CommandApdu`s and raises `InvalidParameter` for values that cannot be encoded.
Secure-channel wrapping (CLA '84', C-MAC, C-DEC) is applied afterwards by the session object. Round-trip
examples live next to each builder in `BUILDER_EXAMPLES`; one generic test runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, unique
from typing import Any

from globalplatform import tlv
from globalplatform.apdu import SHORT_NC_MAX, SHORT_NE_MAX, Cla, CommandApdu, Ins
from globalplatform.errors import InvalidParameter
from globalplatform.scp import Scp, SecurityLevel, security_level
from tsm_core.gp.getstatus import StatusSubset


@unique
class SelectP1(IntEnum):
    """SELECT P1 (GPCS 2.3.1 §11.9.2.1 Table 11-82)."""

    BY_NAME = 0x04


@unique
class SelectP2(IntEnum):
    """SELECT P2 (GPCS 2.3.1 §11.9.2.2 Table 11-83)."""

    FIRST_OR_ONLY = 0x00
    NEXT = 0x02


@unique
class GetStatusP2(IntFlag):
    """GET STATUS P2 (GPCS 2.3.1 §11.4.2.2 Table 11-33): b2 response format, b1 next occurrence."""

    LEGACY = 0x00
    NEXT = 0x01
    TLV = 0x02


@unique
class DeleteP2(IntEnum):
    """DELETE P2 (GPCS 2.3.1 §11.2.2.2 Table 11-21)."""

    OBJECT = 0x00
    OBJECT_AND_RELATED = 0x80


@unique
class SetStatusScope(IntEnum):
    """SET STATUS P1 (GPCS 2.3.1 §11.10.2.1 Table 11-86)."""

    ISD = 0x80
    APPLICATION_OR_SSD = 0x40
    SD_AND_ASSOCIATED = 0x60


@unique
class PutKeyFlag(IntFlag):
    """PUT KEY b8 of P1 (more commands follow) and of P2 (multiple keys) (GPCS 2.3.1 §11.8.2.1-2)."""

    MORE_COMMANDS_OR_MULTIPLE_KEYS = 0x80


@unique
class DataObject(IntEnum):
    """GET DATA tags held in P1-P2 (GPCS 2.3.1 §11.3.1, §11.3.3.1, §H.2; CPLC from GP 2.1.1 §9.6; 'FF21' from
    ETSI TS 102 226 §8.2.1.7.2)."""

    IIN = 0x0042
    CIN = 0x0045
    CARD_DATA = 0x0066
    CARD_CAPABILITY = 0x0067
    SEQUENCE_COUNTER = 0x00C1
    KEY_DIVERSIFICATION_DATA = 0x00CF
    KEY_INFORMATION = 0x00E0
    CPLC = 0x9F7F
    EXTENDED_CARD_RESOURCES = 0xFF21


C_MAC_LENGTH = 8
"""C-MAC bytes appended by SCP02 (GPCS 2.3.1 §E.4.4) and SCP03 in its usual S8 mode (Amd D §6.2.4)."""
CIPHER_BLOCK: dict[Scp, int] = {Scp.SCP02: 8, Scp.SCP03: 16}
"""C-DECRYPTION pads to the cipher's block: 3DES for SCP02 (§E.4.6), AES for SCP03 (Amd D §6.2.6)."""
DEFAULT_BLOCK_SIZE = 239
"""LOAD/STORE DATA block size for any channel: padded to 240 and with an 8-byte MAC it still fits a short Lc
(255); `max_block_size` gives the largest for a known channel."""
MAX_BLOCK_NUMBER = 0xFF
PUT_KEY_ID_MAX = 0x7F


def aid_field(aid: bytes, *, empty_ok: bool = False) -> bytes:
    if empty_ok and not aid:
        return aid
    if not tlv.AID_MIN <= len(aid) <= tlv.AID_MAX:
        raise InvalidParameter(f"AID must be {tlv.AID_MIN}..{tlv.AID_MAX} bytes, got {len(aid)}")
    return aid


def lv(value: bytes) -> bytes:
    if len(value) > SHORT_NC_MAX:
        raise InvalidParameter(f"length-prefixed field of {len(value)} bytes exceeds 255")
    return bytes((len(value),)) + value


def block_number(n: int) -> int:
    if not 0 <= n <= MAX_BLOCK_NUMBER:
        raise InvalidParameter(f"block number {n} exceeds {MAX_BLOCK_NUMBER}")
    return n


def max_block_size(level: int, scp: Scp) -> int:
    """The largest LOAD / STORE DATA block whose protected command still has a short Lc (ISO 7816-4 §5.1): the
    C-MAC takes 8 bytes, and C-DECRYPTION pads with '80 00..' to a cipher block, always adding at least one
    byte (GPCS 2.3.1 §E.4.4, §E.4.6; Amd D §6.2.4, §6.2.6). 247 with C-MAC only, 239 with C-DECRYPTION."""
    protection = security_level(level)
    room = SHORT_NC_MAX - (C_MAC_LENGTH if protection & SecurityLevel.C_MAC else 0)
    if not protection & SecurityLevel.C_DECRYPTION:
        return room
    block = CIPHER_BLOCK[scp]
    return room // block * block - 1


def split_blocks(data: bytes, block_size: int) -> list[bytes]:
    if not 1 <= block_size <= SHORT_NC_MAX:
        raise InvalidParameter(f"block size must be 1..{SHORT_NC_MAX}, got {block_size}")
    return [data[i : i + block_size] for i in range(0, len(data), block_size)] or [b""]


@dataclass(frozen=True)
class BuilderExample:
    """A round-trip example: calling `builder(**kwargs)` gives exactly the APDUs in `expected` (hex)."""

    builder: Callable[..., CommandApdu | list[CommandApdu]]
    kwargs: dict[str, Any]
    expected: tuple[str, ...]
    source: str = field(default="constructed from the cited GPCS table")


BUILDER_EXAMPLES: list[BuilderExample] = []


def select(aid: bytes = b"", *, next_occurrence: bool = False) -> CommandApdu:
    """SELECT by name (GPCS 2.3.1 §11.9); an empty AID selects the ISD (or the default application)."""
    p2 = SelectP2.NEXT if next_occurrence else SelectP2.FIRST_OR_ONLY
    return CommandApdu(Cla.ISO, Ins.SELECT, SelectP1.BY_NAME, p2, aid_field(aid, empty_ok=True), SHORT_NE_MAX)


BUILDER_EXAMPLES += [
    BuilderExample(select, {"aid": tlv.h("A000000151000000")}, ("00A4040008A00000015100000000",)),
    BuilderExample(select, {}, ("00A4040000",), "GlobalPlatformPro: SELECT of the default ISD"),
]


def get_data(tag: DataObject | int, *, cla: Cla = Cla.GP) -> CommandApdu:
    """GET DATA, the tag in P1-P2 (GPCS 2.3.1 §11.3)."""
    if not 0 <= tag <= 0xFFFF:
        raise InvalidParameter(f"GET DATA tag must fit two bytes, got {tag:X}")
    return CommandApdu(cla, Ins.GET_DATA, tag >> 8, tag & 0xFF, le=SHORT_NE_MAX)


BUILDER_EXAMPLES += [
    BuilderExample(get_data, {"tag": DataObject.CARD_DATA}, ("80CA006600",), "osmocom pySim: GET DATA '66'"),
    BuilderExample(get_data, {"tag": DataObject.CPLC}, ("80CA9F7F00",)),
    BuilderExample(get_data, {"tag": DataObject.EXTENDED_CARD_RESOURCES}, ("80CAFF2100",)),
]


def get_status(
    subset: StatusSubset,
    *,
    tlv_format: bool = True,
    next_occurrence: bool = False,
    aid: bytes = b"",
    tags: bytes = b"",
    le: int | None = SHORT_NE_MAX,
) -> CommandApdu:
    """GET STATUS (GPCS 2.3.1 §11.4): search by AID prefix ('4F', empty = all), optional tag list ('5C')."""
    p2 = (GetStatusP2.TLV if tlv_format else GetStatusP2.LEGACY) | (
        GetStatusP2.NEXT if next_occurrence else GetStatusP2.LEGACY
    )
    criteria: list[tuple[str, tlv.Decoded]] = [("aid", aid_field(aid, empty_ok=True))]
    if tags:
        criteria.append(("tag_list", tags))
    data = tlv.GET_STATUS_CRITERIA.encode(criteria)
    return CommandApdu(Cla.GP, Ins.GET_STATUS, subset, p2, data, le)


BUILDER_EXAMPLES += [
    BuilderExample(
        get_status,
        {"subset": StatusSubset.LOAD_FILES_AND_MODULES, "tlv_format": False},
        ("80F21000024F0000",),
        "GlobalPlatformPro GPSession log line 'GET STATUS failed for 80F21000024F0000'",
    ),
    BuilderExample(
        get_status,
        {"subset": StatusSubset.ISD, "le": None},
        ("80F28002024F00",),
        "miketlk/omfgp scp_test.py plain GET STATUS (tests/vectors/secure_channel_scp03.json)",
    ),
    BuilderExample(get_status, {"subset": StatusSubset.APPLICATIONS, "next_occurrence": True}, ("80F24003024F0000",)),
]


def delete(aid: bytes, *, related: bool = False, token: bytes = b"") -> CommandApdu:
    """DELETE an application, SD or Executable Load File (GPCS 2.3.1 §11.2); `related` also deletes the
    Load File's applications (P2 '80')."""
    items: list[tuple[str, tlv.Decoded]] = [("aid", aid_field(aid))]
    if token:
        items.append(("delete_token", token))
    p2 = DeleteP2.OBJECT_AND_RELATED if related else DeleteP2.OBJECT
    return CommandApdu(Cla.GP, Ins.DELETE, 0x00, p2, tlv.DELETE_DATA.encode(items), SHORT_NE_MAX)


BUILDER_EXAMPLES += [
    BuilderExample(delete, {"aid": tlv.h("A0000001510001")}, ("80E40000094F07A000000151000100",)),
    BuilderExample(delete, {"aid": tlv.h("A0000000620001"), "related": True}, ("80E40080094F07A000000062000100",)),
]


def set_status(scope: SetStatusScope, state: int, aid: bytes = b"") -> CommandApdu:
    """SET STATUS (GPCS 2.3.1 §11.10): P2 is the new life-cycle byte; the ISD scope takes no AID."""
    if not 0 <= state <= 0xFF:
        raise InvalidParameter(f"life-cycle state must be one byte, got {state}")
    data = b"" if scope == SetStatusScope.ISD else aid_field(aid)
    return CommandApdu(Cla.GP, Ins.SET_STATUS, scope, state, data)


BUILDER_EXAMPLES += [
    BuilderExample(set_status, {"scope": SetStatusScope.ISD, "state": 0x7F}, ("80F0807F",)),
    BuilderExample(
        set_status,
        {"scope": SetStatusScope.APPLICATION_OR_SSD, "state": 0x83, "aid": tlv.h("A0000001510001")},
        ("80F0408307A0000001510001",),
    ),
]


def put_key(
    new_version: int,
    key_data: bytes,
    *,
    key_id: int = 1,
    old_version: int = 0,
    multiple_keys: bool = True,
    more: bool = False,
) -> CommandApdu:
    """PUT KEY envelope (GPCS 2.3.1 §11.8): `key_data` is the key data field(s) as produced by the key
    service (key type, encrypted component, KCV per key); this builder only frames them.

    P1 = old KVN (0 adds a new key set), P2 = first key identifier; b8 flags more commands / multiple keys.
    """
    for name, value in (("new_version", new_version), ("old_version", old_version), ("key_id", key_id)):
        if not 0 <= value <= PUT_KEY_ID_MAX:
            raise InvalidParameter(f"{name} must be 0..{PUT_KEY_ID_MAX}, got {value}")
    flag = PutKeyFlag.MORE_COMMANDS_OR_MULTIPLE_KEYS
    p1 = old_version | (flag if more else 0)
    p2 = key_id | (flag if multiple_keys else 0)
    return CommandApdu(Cla.GP, Ins.PUT_KEY, p1, p2, bytes((new_version,)) + key_data, SHORT_NE_MAX)


BUILDER_EXAMPLES.append(
    BuilderExample(
        put_key,
        {"new_version": 0x30, "key_data": tlv.h("8010") + bytes(16) + tlv.h("03ABCDEF")},
        ("80D80081 17 30 8010 00000000000000000000000000000000 03ABCDEF 00",),
    )
)


def get_response(length: int) -> CommandApdu:
    """GET RESPONSE after '61XX' (ISO 7816-4 §7.6.1, §5.1.3 T=0 transport); length 0 means 256."""
    return CommandApdu(Cla.ISO, Ins.GET_RESPONSE, 0x00, 0x00, le=length or SHORT_NE_MAX)


BUILDER_EXAMPLES.append(BuilderExample(get_response, {"length": 0x10}, ("00C0000010",)))
