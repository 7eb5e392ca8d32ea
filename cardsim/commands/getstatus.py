"""GET STATUS (GPCS 2.3.1 11.4): P1 80 ISD, 40 applications and SDs, 20 load files, 10 load files and
modules; P2 b2 = TLV format (11.4.3.1) else the legacy format, b1 = next occurrence; search criteria 4F.
A response that does not fit `Quirks.get_status_page` ends with 6310 and continues on P2 'next'."""

from __future__ import annotations

from enum import IntEnum, unique
from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Response
from cardsim.registry import Application, LoadFile
from cardsim.sw import SW, ApduError
from cardsim.tlv import iter_tlv, tlv

if TYPE_CHECKING:
    from cardsim.card import Card


@unique
class StatusSubset(IntEnum):
    """P1 of GET STATUS (11.4.2.1)."""

    ISD = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


NEXT_OCCURRENCE: Final = 0x01
TLV_FORMAT: Final = 0x02
TAG_AID: Final = 0x4F
TAG_TAG_LIST: Final = 0x5C


def _app_tlv(app: Application, isd: bool) -> bytes:
    body = tlv(0x4F, app.aid) + tlv(0x9F70, bytes([app.life_cycle])) + tlv(0xC5, app.privileges.to_bytes3())
    if not isd or app.elf_aid:
        body += tlv(0xC4, app.elf_aid)
    if isd and app.elf_version is not None:
        body += tlv(0xCE, app.elf_version)
    return tlv(0xE3, body + tlv(0xCC, app.sd_aid))


def _elf_tlv(elf: LoadFile, modules: bool) -> bytes:
    body = tlv(0x4F, elf.aid) + tlv(0x9F70, bytes([elf.life_cycle])) + tlv(0xCE, elf.version)
    if modules:
        body += b"".join(tlv(0x84, m) for m in elf.modules)
    return tlv(0xE3, body + tlv(0xCC, elf.sd_aid))


def _app_legacy(app: Application) -> bytes:
    return bytes([len(app.aid)]) + app.aid + bytes([app.life_cycle, int(app.privileges) >> 16])


def _elf_legacy(elf: LoadFile, modules: bool) -> bytes:
    out = bytes([len(elf.aid)]) + elf.aid + bytes([elf.life_cycle, 0])
    if modules:
        out += bytes([len(elf.modules)]) + b"".join(bytes([len(m)]) + m for m in elf.modules)
    return out


def _search_prefix(data: bytes) -> bytes:
    prefix: bytes | None = None
    for tag, value in iter_tlv(data):
        if tag == TAG_AID:
            prefix = value
        elif tag != TAG_TAG_LIST:
            raise ApduError(SW.WRONG_DATA, f"unsupported search criterion {tag:X}")
    if prefix is None:
        raise ApduError(SW.WRONG_DATA, "search criteria need tag 4F")
    return prefix


def _entries(card: Card, subset: StatusSubset, prefix: bytes, tlv_format: bool) -> list[bytes]:
    registry = card.registry
    visible = card.selected.aid == registry.isd_aid
    own = card.selected.aid
    if subset is StatusSubset.ISD:
        isd = registry.isd
        return [_app_tlv(isd, True) if tlv_format else _app_legacy(isd)] if isd.aid.startswith(prefix) else []
    if subset is StatusSubset.APPLICATIONS:
        apps = [
            a
            for a in registry.apps.values()
            if a.aid != registry.isd_aid and a.aid.startswith(prefix) and (visible or a.sd_aid == own)
        ]
        return [_app_tlv(a, False) if tlv_format else _app_legacy(a) for a in apps]
    modules = subset is StatusSubset.LOAD_FILES_AND_MODULES
    elfs = [e for e in registry.load_files.values() if e.aid.startswith(prefix) and (visible or e.sd_aid == own)]
    return [_elf_tlv(e, modules) if tlv_format else _elf_legacy(e, modules) for e in elfs]


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Registry entries matching the search criteria, paged."""
    card.require_channel()
    if apdu.p1 not in frozenset(StatusSubset) or apdu.p2 & ~(NEXT_OCCURRENCE | TLV_FORMAT):
        raise ApduError(SW.WRONG_P1P2)
    if apdu.p2 & NEXT_OCCURRENCE:
        if not card.get_status_rest:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no GET STATUS in progress")
        pending = card.get_status_rest
    else:
        prefix = _search_prefix(apdu.data)
        pending = _entries(card, StatusSubset(apdu.p1), prefix, bool(apdu.p2 & TLV_FORMAT))
        if not pending:
            card.get_status_rest = []
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no matching entry")
    page = card.identity.quirks.get_status_page
    out = b""
    taken = 0
    for entry in pending:
        if out and len(out) + len(entry) > page:
            break
        out += entry
        taken += 1
    card.get_status_rest = pending[taken:]
    return Response(out, SW.MORE_DATA if card.get_status_rest else SW.OK)
