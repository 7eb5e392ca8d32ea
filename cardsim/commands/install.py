"""INSTALL (GPCS 2.3.1 11.5): [for load], [for install], [for make selectable], [for install and make
selectable], [for extradition], [for personalization]. [for registry update] is answered 6A86."""

from __future__ import annotations

from enum import IntFlag, unique
from typing import TYPE_CHECKING, Final

from cardsim import dm
from cardsim.apdu import CommandApdu, Response
from cardsim.applets import applet_for
from cardsim.keys import KeyType, scp_key_set
from cardsim.lifecycle import AppLifeCycle, is_locked
from cardsim.memory import Memory, quota_holder, require
from cardsim.privileges import Privilege
from cardsim.registry import Application, SecurityDomainData
from cardsim.session import PendingLoad
from cardsim.sw import SW, ApduError
from cardsim.tlv import LvReader, parse_tlv

if TYPE_CHECKING:
    from cardsim.card import Card


@unique
class InstallFor(IntFlag):
    """P1 of INSTALL (11.5.2.1); b8 'more INSTALL commands' is ignored."""

    LOAD = 0x02
    INSTALL = 0x04
    MAKE_SELECTABLE = 0x08
    EXTRADITION = 0x10
    PERSONALIZATION = 0x20
    REGISTRY_UPDATE = 0x40
    MORE = 0x80


SUPPORTED: Final = frozenset(
    {
        InstallFor.LOAD,
        InstallFor.INSTALL,
        InstallFor.MAKE_SELECTABLE,
        InstallFor.INSTALL | InstallFor.MAKE_SELECTABLE,
        InstallFor.EXTRADITION,
        InstallFor.PERSONALIZATION,
    }
)
TAG_APP_PARAMS: Final = 0xC9
TAG_SYSTEM_PARAMS: Final = 0xEF
TAG_NV_CODE: Final = 0xC6
TAG_VOLATILE: Final = 0xC7
TAG_NV_DATA: Final = 0xC8
ISD_KVN: Final = 0xFF


def _system_params(params: bytes) -> dict[int, int]:
    """C6/C7/C8 from the EF system parameters (GPCS 2.3.1 11.5.2.3.7)."""
    system = parse_tlv(params).get(TAG_SYSTEM_PARAMS, b"")
    return {tag: int.from_bytes(value, "big") for tag, value in parse_tlv(system).items()}


def _token(reader: LvReader, data: bytes) -> tuple[bytes, bytes]:
    """(signed part = data before the token length, token)."""
    signed = data[: reader.position]
    token = reader.lv(ber=True)
    if not reader.at_end():
        raise ApduError(SW.WRONG_DATA, "trailing bytes after the token")
    return signed, token


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Dispatch on P1."""
    card.require_channel()
    mode = InstallFor(apdu.p1 & ~InstallFor.MORE)
    if apdu.p2 != 0 or mode not in SUPPORTED:
        raise ApduError(SW.WRONG_P1P2, "unsupported INSTALL variant")
    reader = LvReader(apdu.data)
    if mode is InstallFor.LOAD:
        return _for_load(card, apdu, reader)
    if mode & InstallFor.INSTALL:
        return _for_install(card, apdu, reader, mode)
    if mode is InstallFor.MAKE_SELECTABLE:
        return _make_selectable(card, apdu, reader)
    if mode is InstallFor.EXTRADITION:
        return _extradition(card, apdu, reader)
    return _personalization(card, reader)


def _for_load(card: Card, apdu: CommandApdu, reader: LvReader) -> Response:
    elf_aid, sd_aid, declared_hash = reader.lv(), reader.lv(), reader.lv()
    params = reader.lv(ber=True)
    signed, token = _token(reader, apdu.data)
    dm_op = dm.authorize(card, apdu.p1, apdu.p2, signed, token)
    registry = card.registry
    if elf_aid in registry.load_files or elf_aid in registry.apps:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "load file AID already present")
    target = card.selected.aid if not sd_aid else registry.sd(sd_aid).aid
    system = _system_params(params)
    require(registry, target, Memory(system.get(TAG_NV_CODE, 0), 0))
    receipt = dm.lv(elf_aid) + dm.lv(target) if dm_op else None
    card.pending_load = PendingLoad(elf_aid, target, declared_hash, system.get(TAG_NV_CODE, 0), receipt)
    return Response(dm.NO_CONFIRMATION)


def _for_install(card: Card, apdu: CommandApdu, reader: LvReader, mode: InstallFor) -> Response:
    elf_aid, module_aid, app_aid = reader.lv(), reader.lv(), reader.lv()
    privileges = Privilege.from_field(reader.lv())
    params = reader.lv(ber=True)
    signed, token = _token(reader, apdu.data)
    dm_op = dm.authorize(card, apdu.p1, apdu.p2, signed, token)
    registry = card.registry
    elf = registry.load_files.get(elf_aid)
    if elf is None or module_aid not in elf.modules:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "load file or module not found")
    if not 5 <= len(app_aid) <= 16:
        raise ApduError(SW.WRONG_DATA, "AID length")
    if app_aid in registry.apps or app_aid in registry.load_files:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "AID already present")
    system = _system_params(params)
    quirks = card.identity.quirks
    sd_data = None
    if privileges & Privilege.SECURITY_DOMAIN:
        keys = scp_key_set(ISD_KVN, quirks.ssd_keys, quirks.ssd_keys, quirks.ssd_keys, _key_type(card))
        isd_sd = registry.isd.sd
        sd_data = SecurityDomainData(
            scp=isd_sd.scp if isd_sd else 0x03,
            i=isd_sd.i if isd_sd else 0x70,
            keysets={ISD_KVN: keys},
            retry_limit=isd_sd.retry_limit if isd_sd else 10,
            quota_nv=system.get(TAG_NV_DATA),
            quota_volatile=system.get(TAG_VOLATILE) if TAG_NV_DATA in system else None,
        )
        need = Memory(system.get(TAG_NV_DATA, 0), system.get(TAG_VOLATILE, 0))
    else:
        need = Memory(
            system.get(TAG_NV_DATA, quirks.default_app_nv), system.get(TAG_VOLATILE, quirks.default_app_volatile)
        )
    require(registry, card.selected.aid, need)
    selectable = bool(mode & InstallFor.MAKE_SELECTABLE)
    entry = Application(
        aid=app_aid,
        elf_aid=elf_aid,
        module_aid=module_aid,
        privileges=privileges,
        life_cycle=AppLifeCycle.SELECTABLE if selectable else AppLifeCycle.INSTALLED,
        sd_aid=card.selected.aid,
        nv=0 if sd_data else need.nv,
        volatile=0 if sd_data else need.volatile,
        install_params=params,
        sd=sd_data,
    )
    if sd_data is None:
        applet_for(entry).install(parse_tlv(params).get(TAG_APP_PARAMS, b""))
    registry.apps[app_aid] = entry
    return Response(dm.confirmation(card, dm.lv(elf_aid) + dm.lv(app_aid) if dm_op else None))


def _key_type(card: Card) -> KeyType:
    isd_sd = card.registry.isd.sd
    return KeyType.DES if isd_sd is not None and isd_sd.scp == 0x02 else KeyType.AES


def _make_selectable(card: Card, apdu: CommandApdu, reader: LvReader) -> Response:
    if reader.lv() or reader.lv():
        raise ApduError(SW.WRONG_DATA, "load file and module AID must be empty")
    app_aid = reader.lv()
    reader.lv()  # privileges: unchanged by this simulator
    reader.lv(ber=True)
    signed, token = _token(reader, apdu.data)
    dm.authorize(card, apdu.p1, apdu.p2, signed, token)
    entry = _associated_app(card, app_aid)
    if entry.life_cycle != AppLifeCycle.INSTALLED:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "not in INSTALLED state")
    entry.life_cycle = AppLifeCycle.SELECTABLE
    return Response(dm.NO_CONFIRMATION)


def _extradition(card: Card, apdu: CommandApdu, reader: LvReader) -> Response:
    sd_aid = reader.lv()
    if reader.lv():
        raise ApduError(SW.WRONG_DATA, "second field must be empty")
    aid = reader.lv()
    if reader.lv():
        raise ApduError(SW.WRONG_DATA, "fourth field must be empty")
    reader.lv(ber=True)
    signed, token = _token(reader, apdu.data)
    dm_op = dm.authorize(card, apdu.p1, apdu.p2, signed, token)
    registry = card.registry
    target = registry.sd(sd_aid)
    if is_locked(target.life_cycle):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "target SD locked")
    entry = registry.apps.get(aid) or registry.load_files.get(aid)
    if entry is None or aid == registry.isd_aid or aid == sd_aid:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "nothing to extradite")
    if quota_holder(registry, sd_aid) is not quota_holder(registry, entry.sd_aid):  # else it is paid for already
        require(registry, sd_aid, Memory(entry.nv, entry.volatile if isinstance(entry, Application) else 0))
    origin = entry.sd_aid
    entry.sd_aid = sd_aid
    receipt = dm.lv(origin) + dm.lv(aid) + dm.lv(sd_aid) if dm_op else None
    return Response(dm.confirmation(card, receipt))


def _personalization(card: Card, reader: LvReader) -> Response:
    if reader.lv() or reader.lv():
        raise ApduError(SW.WRONG_DATA, "first two fields must be empty")
    aid = reader.lv()
    entry = _associated_app(card, aid)
    if entry.is_sd or is_locked(entry.life_cycle):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "cannot personalize this application")
    card.perso_target = aid
    card.perso_next_block = 0
    return Response(dm.NO_CONFIRMATION)


def _associated_app(card: Card, aid: bytes) -> Application:
    """An application associated with the selected SD (the ISD sees every application)."""
    entry = card.registry.apps.get(aid)
    isd = card.selected.aid == card.registry.isd_aid
    if entry is None or aid == card.registry.isd_aid or not (isd or entry.sd_aid == card.selected.aid):
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "application not found")
    return entry
