"""STORE DATA builder and DGI framing (GPCS 2.3.1 §11.11): pure, plain (no secure messaging)."""

from __future__ import annotations

from enum import IntFlag, unique

from globalplatform import tlv
from globalplatform.apdu import SHORT_NE_MAX, Cla, CommandApdu, Ins
from globalplatform.errors import InvalidParameter
from tsm_core.gp.commands import (
    DEFAULT_BLOCK_SIZE,
    BuilderExample,
    block_number,
    split_blocks,
)


@unique
class StoreDataP1(IntFlag):
    """STORE DATA P1 (GPCS 2.3.1 §11.11.2.1 Table 11-89): b8 last block, b7-b6 encryption, b5-b4 structure,
    b1 response data expected."""

    NONE = 0x00
    RESPONSE_EXPECTED = 0x01
    DGI = 0x08
    BER_TLV = 0x10
    APPLICATION_DEPENDENT_ENCRYPTION = 0x20
    ENCRYPTED = 0x60
    LAST_BLOCK = 0x80


DGI_SHORT_MAX = 0xFE
"""A DGI length up to 254 is one byte; above, 'FF' then two bytes (GPCS 2.3.1 §11.11.2.3, EMV CPS §A.1)."""
DGI_LONG_LENGTH = 0xFF

BUILDER_EXAMPLES: list[BuilderExample] = []


def dgi(tag: int, value: bytes) -> bytes:
    """One Data Grouping Identifier: 2-byte tag, 1-byte length (<= 254) or 'FF' + 2 bytes (GPCS 2.3.1
    §11.11.2.3)."""
    if not 0 <= tag <= 0xFFFF:
        raise InvalidParameter(f"DGI tag must be two bytes, got {tag:X}")
    if len(value) > 0xFFFF:
        raise InvalidParameter(f"DGI value of {len(value)} bytes is too long")
    length = (
        bytes((len(value),))
        if len(value) <= DGI_SHORT_MAX
        else bytes((DGI_LONG_LENGTH,)) + len(value).to_bytes(2, "big")
    )
    return tag.to_bytes(2, "big") + length + value


def store_data(
    data: bytes,
    *,
    structure: StoreDataP1 = StoreDataP1.NONE,
    encryption: StoreDataP1 = StoreDataP1.NONE,
    response_expected: bool = False,
    first_block: int = 0,
    last: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> list[CommandApdu]:
    """STORE DATA (GPCS 2.3.1 §11.11): split `data` into blocks numbered from `first_block` (P2); the final
    block carries P1 b8 when `last`. Encrypted DGIs must already be encrypted by the key service."""
    if structure not in (StoreDataP1.NONE, StoreDataP1.DGI, StoreDataP1.BER_TLV):
        raise InvalidParameter(f"invalid STORE DATA structure {structure!r}")
    if encryption not in (
        StoreDataP1.NONE,
        StoreDataP1.APPLICATION_DEPENDENT_ENCRYPTION,
        StoreDataP1.ENCRYPTED,
    ):
        raise InvalidParameter(f"invalid STORE DATA encryption {encryption!r}")
    p1 = structure | encryption | (StoreDataP1.RESPONSE_EXPECTED if response_expected else StoreDataP1.NONE)
    blocks = split_blocks(data, block_size)
    return [
        CommandApdu(
            Cla.GP,
            Ins.STORE_DATA,
            p1 | (StoreDataP1.LAST_BLOCK if last and n == len(blocks) - 1 else StoreDataP1.NONE),
            block_number(first_block + n),
            block,
            SHORT_NE_MAX if response_expected else None,
        )
        for n, block in enumerate(blocks)
    ]


BUILDER_EXAMPLES += [
    BuilderExample(
        store_data,
        {"data": dgi(0x0101, tlv.h("0102")), "structure": StoreDataP1.DGI},
        ("80E2880005 0101020102",),
    ),
    BuilderExample(
        store_data,
        {
            "data": dgi(0x8010, bytes(16)),
            "structure": StoreDataP1.DGI,
            "encryption": StoreDataP1.ENCRYPTED,
            "first_block": 3,
            "last": False,
        },
        ("80E2680313 801010 00000000000000000000000000000000",),
    ),
]
