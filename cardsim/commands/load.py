"""LOAD (GPCS 2.3.1 11.6): blocks numbered by P2 from 00, P1 b8 = last block; the first block may carry DAP
blocks E2 { 4F, C3 } before the Load File Data Block C4 (11.6.2.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from cardsim import dap, dm
from cardsim.apdu import CommandApdu, Response
from cardsim.cap import read_load_file
from cardsim.memory import Memory, require
from cardsim.registry import LoadFile
from cardsim.sw import SW, ApduError
from cardsim.tlv import iter_tlv, read_length

if TYPE_CHECKING:
    from cardsim.card import Card

LAST_BLOCK: Final = 0x80
TAG_DAP_BLOCK: Final = 0xE2
TAG_LFDB: Final = 0xC4
TAG_AID: Final = 0x4F
TAG_SIGNATURE: Final = 0xC3


def _split(data: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """DAP blocks (SD AID → signature) and the Load File Data Block."""
    blocks: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] == TAG_DAP_BLOCK:
        length, start = read_length(data, pos + 1)
        fields = dict(iter_tlv(data[start : start + length]))
        if TAG_AID not in fields or TAG_SIGNATURE not in fields:
            raise ApduError(SW.WRONG_DATA, "DAP block needs 4F and C3")
        blocks[fields[TAG_AID]] = fields[TAG_SIGNATURE]
        pos = start + length
    if pos >= len(data) or data[pos] != TAG_LFDB:
        raise ApduError(SW.WRONG_DATA, "Load File Data Block C4 missing")
    length, start = read_length(data, pos + 1)
    if start + length != len(data):
        raise ApduError(SW.WRONG_DATA, "Load File Data Block length mismatch")
    return blocks, data[start:]


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Accumulate blocks; on the last one verify hash and DAPs, charge memory and register the load file."""
    card.require_channel()
    pending = card.pending_load
    if pending is None:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no INSTALL [for load]")
    if apdu.p1 & ~LAST_BLOCK or apdu.p2 != pending.next_block:
        card.pending_load = None
        raise ApduError(SW.WRONG_P1P2, "block number out of sequence")
    pending.data += apdu.data
    pending.next_block += 1
    if not apdu.p1 & LAST_BLOCK:
        return Response()
    card.pending_load = None
    registry = card.registry
    blocks, lfdb = _split(pending.data)
    lfdb_hash = dap.load_file_hash(lfdb, pending.hash)
    dap.verify(registry, pending.sd_aid, lfdb_hash, blocks)
    content = read_load_file(lfdb)
    if content.package_aid != pending.elf_aid:
        raise ApduError(SW.WRONG_DATA, "package AID differs from INSTALL [for load]")
    nv = max(len(lfdb), pending.nv_hint)
    require(registry, pending.sd_aid, Memory(nv, 0))
    registry.load_files[pending.elf_aid] = LoadFile(
        pending.elf_aid, pending.sd_aid, content.modules, content.version, nv
    )
    return Response(dm.confirmation(card, pending.receipt_data))
