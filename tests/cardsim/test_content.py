"""Card content management: LOAD, INSTALL, DELETE, GET STATUS, extradition, memory quotas."""

from __future__ import annotations

import hashlib

from cardsim.memory import free_memory
from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY
from tests.cardsim.host import C_DEC, C_MAC, R_ENC, R_MAC, Host

PKG = bytes.fromhex("D27600012301")
MOD = PKG + b"\x01"
APP = PKG + b"\x01\x01"
SSD = bytes.fromhex("D2760001239900")
SSD_ELF = bytes.fromhex("A0000001515350")  # any load file works as SSD code in the simulator


def load(host: Host, package: bytes = PKG, modules=(MOD,), sd: bytes = b"", filler: int = 100, **kw) -> int:
    lfdb = gp.cap_file(package, list(modules), filler)
    _, sw = host.send(gp.install(0x02, gp.install_for_load_data(package, sd, kw.get("hash", b""))))
    if sw != 0x9000:
        return sw
    for block in gp.load_blocks(lfdb, kw.get("dap", b""), kw.get("block", 200)):
        _, sw = host.send(block)
        if sw != 0x9000:
            return sw
    return sw


def install(host: Host, app: bytes = APP, p1: int = 0x0C, privileges: bytes = b"\x00", params: bytes = b"") -> int:
    return host.send(gp.install(p1, gp.install_data(PKG, MOD, app, privileges, params)))[1]


def test_load_install_select(card, host):
    assert load(host) == 0x9000
    assert install(host) == 0x9000
    response = card.transmit(gp.select(APP))
    assert response[-2:] == b"\x90\x00" and APP in response


def test_get_status_views(card, host):
    load(host)
    install(host)
    isd, sw = host.send(gp.get_status(0x80))
    assert sw == 0x9000 and isd.hex().startswith("e3") and bytes.fromhex("9f70010f") in isd
    apps, _ = host.send(gp.get_status(0x40))
    assert gp.tlv(0x4F, APP) + bytes.fromhex("9f700107") in apps
    elfs, _ = host.send(gp.get_status(0x20))
    assert gp.tlv(0x4F, PKG) in elfs and b"\x84" + bytes([len(MOD)]) + MOD not in elfs
    modules, _ = host.send(gp.get_status(0x10))
    assert b"\x84" + bytes([len(MOD)]) + MOD in modules
    legacy, _ = host.send(gp.get_status(0x40, p2=0x00))
    assert legacy == bytes([len(APP)]) + APP + b"\x07\x00"
    assert host.send(gp.get_status(0x40, b"\xa0\x01"))[1] == 0x6A88
    assert host.send(gp.get_status(0x08))[1] == 0x6A86
    assert host.send(gp.apdu(0x80, 0xF2, 0x40, 0x02, b"\x5f\x00"))[1] == 0x6A80


def test_get_status_paging(card):
    host = Host(card, TEST_KEY).open(C_MAC | C_DEC | R_MAC | R_ENC)
    load(host)
    aids = [PKG + bytes([0x10 + n]) for n in range(20)]
    for aid in aids:
        assert install(host, aid) == 0x9000
    seen = b""
    data, sw = host.send(gp.get_status(0x40))
    pages = 1
    while sw == 0x6310:
        seen += data
        data, sw = host.send(gp.get_status(0x40, p2=0x03))
        pages += 1
    seen += data
    assert sw == 0x9000 and pages > 1
    assert all(gp.tlv(0x4F, aid) in seen for aid in aids)
    assert host.send(gp.get_status(0x40, p2=0x03))[1] == 0x6985


def test_install_refusals(card, host):
    load(host)
    assert install(host) == 0x9000
    assert install(host) == 0x6985  # AID already present
    assert host.send(gp.install(0x0C, gp.install_data(PKG, MOD + b"\x09", APP + b"\x02")))[1] == 0x6A88
    assert host.send(gp.install(0x0C, gp.install_data(b"\xa0\x00\x00\x00\x09", MOD, APP + b"\x02")))[1] == 0x6A88
    assert host.send(gp.apdu(0x80, 0xE6, 0x40, 0x00, b"\x00\x00\x00\x00\x00\x00"))[1] == 0x6A86
    assert host.send(gp.apdu(0x80, 0xE6, 0x0C, 0x01, gp.install_data(PKG, MOD, APP)))[1] == 0x6A86
    assert host.send(gp.apdu(0x80, 0xE6, 0x0C, 0x00, b"\x10\x01"))[1] == 0x6A80
    privileges_without_sd = b"\x40\x00\x00"
    assert install(host, APP + b"\x03", privileges=privileges_without_sd) == 0x6A80


def test_install_then_make_selectable(card, host):
    load(host)
    assert install(host, p1=0x04) == 0x9000
    assert card.transmit(gp.select(APP)).hex() == "6a82"
    host = Host(card, TEST_KEY).open()
    make = gp.lv(b"") + gp.lv(b"") + gp.lv(APP) + gp.lv(b"\x00") + gp.lv(b"")
    assert host.send(gp.install(0x08, make))[1] == 0x9000
    assert host.send(gp.install(0x08, make))[1] == 0x6985
    assert card.transmit(gp.select(APP))[-2:].hex() == "9000"


def test_load_refusals(card, host):
    assert host.send(gp.load_blocks(gp.cap_file(PKG, [MOD]))[0])[1] == 0x6985  # no INSTALL [for load]
    assert load(host, hash=hashlib.sha256(b"other").digest()) == 0x6A80
    host.send(gp.install(0x02, gp.install_for_load_data(PKG)))
    assert host.send(gp.apdu(0x80, 0xE8, 0x00, 0x01, b"\xc4\x01\x00"))[1] == 0x6A86  # block 1 before 0
    host.send(gp.install(0x02, gp.install_for_load_data(PKG)))
    assert host.send(gp.apdu(0x80, 0xE8, 0x80, 0x00, b"\xc4\x03abc"))[1] == 0x6A80  # not a CAP file
    host.send(gp.install(0x02, gp.install_for_load_data(PKG)))
    other = gp.cap_file(PKG[:-1] + b"\x09", [MOD])
    assert host.send(gp.load_blocks(other)[0])[1] == 0x6A80  # package AID differs
    assert load(host, hash=hashlib.sha1(gp.cap_file(PKG, [MOD], 100)).digest(), block=50)  # noqa: S324 == 0x9000
    assert load(host) == 0x6985  # already loaded


def test_delete(card, host):
    load(host)
    install(host)
    assert host.send(gp.delete(PKG))[1] == 0x6985  # has an instance
    assert host.send(gp.delete(card.registry.isd_aid))[1] == 0x6985
    assert host.send(gp.delete(b"\xa0\x00\x00\x00\x77"))[1] == 0x6A88
    assert host.send(gp.apdu(0x80, 0xE4, 0x00, 0x00, b"\x5f\x01\x00"))[1] == 0x6A80
    data, sw = host.send(gp.delete(APP))
    assert (data, sw) == (b"\x00", 0x9000)
    install(host)
    assert host.send(gp.delete(PKG, related=True))[1] == 0x9000
    assert APP not in card.registry.apps and PKG not in card.registry.load_files


def test_memory_quota(card, host):
    isd = card.registry.isd_aid
    free0 = free_memory(card.registry, isd)
    load(host, filler=1000)
    after_load = free_memory(card.registry, isd)
    assert 1000 < free0.nv - after_load.nv < 1100
    assert install(host, params=gp.tlv(0xC9, b"") + gp.system_params(nv=2000, volatile=100)) == 0x9000
    assert free_memory(card.registry, isd).nv == after_load.nv - 2000
    resources, _ = host.send(gp.apdu(0x80, 0xCA, 0xFF, 0x21, le=0))
    assert gp.tlv(0x82, (after_load.nv - 2000).to_bytes(3, "big")) in resources
    too_big = gp.tlv(0xC9, b"") + gp.system_params(nv=0xFFFF, volatile=0xFFFF)
    assert install(host, APP + b"\x02", params=too_big) == 0x6A84
    host.send(gp.delete(APP))
    assert free_memory(card.registry, isd) == after_load


def _make_ssd(host: Host, privileges: bytes = b"\x80\x00\x00", nv: int | None = 3000) -> None:
    params = gp.tlv(0xC9, b"") + gp.system_params(nv=nv, volatile=200 if nv else None)
    assert install(host, SSD, privileges=privileges, params=params) == 0x9000


def test_ssd_quota_and_extradition(card, host):
    load(host, filler=10)
    _make_ssd(host)
    ssd_host = Host(card, TEST_KEY)
    card.transmit(gp.select(SSD))
    ssd_host.open()
    assert free_memory(card.registry, SSD).nv == 3000
    # the SSD (no AM/DM privilege) may not change card content
    assert ssd_host.send(gp.install(0x0C, gp.install_data(PKG, MOD, APP)))[1] == 0x6982
    card.transmit(gp.select(card.registry.isd_aid))
    host = Host(card, TEST_KEY).open()
    assert install(host) == 0x9000
    extradite = gp.lv(SSD) + gp.lv(b"") + gp.lv(APP) + gp.lv(b"") + gp.lv(b"")
    assert host.send(gp.install(0x10, extradite))[1] == 0x9000
    apps, _ = host.send(gp.get_status(0x40, APP))
    assert apps.endswith(gp.tlv(0xCC, SSD))
    assert free_memory(card.registry, SSD).nv == 3000 - 512
    assert host.send(gp.delete(SSD))[1] == 0x6985  # SD with associated content
    extradite_back = gp.lv(card.registry.isd_aid) + gp.lv(b"") + gp.lv(APP) + gp.lv(b"") + gp.lv(b"")
    assert host.send(gp.install(0x10, extradite_back))[1] == 0x9000
    card.transmit(gp.select(SSD))
    assert free_memory(card.registry, SSD).nv == 3000


def test_extradition_between_sds_on_one_quota_needs_no_more_memory(card, host):
    """An SSD without a quota draws on the ISD's: handing it an app the ISD's quota already pays for moves no
    memory, even when less than the app's quota is left (the issuer-centric install, GPCS 2.3.1 §11.5.2.3.4)."""
    load(host, filler=10)
    _make_ssd(host, nv=None)
    params = gp.tlv(0xC9, b"") + gp.system_params(nv=60000)
    assert install(host, APP + b"\x02", params=params) == install(host, params=params) == 0x9000
    after_install = free_memory(card.registry, card.registry.isd_aid)
    assert after_install.nv < 60000
    extradite = gp.lv(SSD) + gp.lv(b"") + gp.lv(APP) + gp.lv(b"") + gp.lv(b"")
    assert host.send(gp.install(0x10, extradite))[1] == 0x9000
    assert free_memory(card.registry, card.registry.isd_aid) == free_memory(card.registry, SSD) == after_install


def test_store_data_to_the_isd(card, host):
    iin = gp.tlv(0x42, bytes.fromhex("0102030405"))
    assert host.send(gp.store_data(0x90, 0x00, iin))[1] == 0x9000
    data, sw = host.send(gp.apdu(0x80, 0xCA, 0x00, 0x42, le=0))
    assert (data, sw) == (iin, 0x9000)
    assert host.send(gp.store_data(0x88, 0x00, gp.dgi(0x0045, b"\x99" * 8)))[1] == 0x9000
    assert host.send(gp.apdu(0x80, 0xCA, 0x00, 0x45, le=0))[0] == gp.tlv(0x45, b"\x99" * 8)
    assert host.send(gp.store_data(0x90, 0x00, gp.tlv(0x5F20, b"x")))[1] == 0x6A80
    assert host.send(gp.store_data(0x98, 0x00, iin))[1] == 0x6A86  # reserved structure coding
