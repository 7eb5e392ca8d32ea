"""The SE registry's service layer on SQLite and PostgreSQL: tenants, discovery (what the card says, and again
when it changed), vendor batches in JSON and CSV (all or nothing), an SE announced by its vendor then discovered,
and the space check that refuses an app before anything is sent to the card."""

from __future__ import annotations

import csv
import io
import json

import pytest

from cardsim.memory import free_memory
from cardsim.state import kdd_from_cplc, make_cplc, new_card
from globalplatform.cplc import parse_cplc
from keyservice.inventory import KeyUsage
from tests.cardsim import gp
from tests.cardsim.host import Host
from tests.tsm_core.conftest import GP_TEST_KEY
from tests.tsm_core.lab import VENDOR_ISD, VENDOR_SSD, Wire, assert_registry_is_card, registry_entries
from tsm_core.errors import Conflict, InvalidRequest, NotFound
from tsm_core.jobs import service as jobs
from tsm_core.jobs.stepcontext import DoesNotFit
from tsm_core.registry import batch
from tsm_core.registry import service as registry

ISD = "A000000151000000"
SD_PACKAGE = "A0000001515350"
CIN_TAG = 0x45


def test_tenant_names_are_unique_across_kinds(lab):
    tsm = lab.tsm
    assert registry.add_tenant(tsm, "transitco", "sp").sd_mode == "cm"
    registry.add_tenant(tsm, "bankco", "sp", "am")
    registry.add_tenant(tsm, "acme", "vendor")
    for name, kind in (("transitco", "sp"), ("transitco", "vendor"), ("acme", "sp")):
        with pytest.raises(Conflict) as refused:
            registry.add_tenant(tsm, name, kind)
        assert refused.value.code == "conflict"
    for name, kind, mode in (("bad name", "sp", "cm"), ("", "sp", "cm"), ("x" * 65, "sp", "cm"),
                             ("ok", "bank", "cm"), ("ok", "sp", "xx")):
        with pytest.raises(InvalidRequest):
            registry.add_tenant(tsm, name, kind, mode)
    assert [(t.name, t.sd_mode) for t in registry.list_tenants(tsm, "sp")] == [("bankco", "am"), ("transitco", "cm")]
    assert [t.name for t in registry.list_tenants(tsm, "vendor")] == ["acme"]


def test_discovery_registers_what_the_card_says(lab):
    card = new_card("wearable")
    se_id = lab.discover(card)
    se = registry.show(lab.tsm, se_id)
    kdd = card.identity.kdd
    assert se_id == f"se-{kdd.hex()}" and se.kdd == kdd.hex().upper()
    assert se.cplc == card.identity.cplc.hex().upper() and se.cplc[24:32] == card.identity.cplc[12:16].hex().upper()
    assert se.cin == card.registry.isd.sd.data_objects[CIN_TAG].hex().upper() and se.iin == ""
    profile = se.profile
    assert (profile.scp, profile.i, profile.isd_aid, profile.diversification) == (0x03, 0x70, ISD, "none")
    assert profile.initial_ssd_key == VENDOR_SSD
    assert [(d.aid, d.mode, d.sp) for d in se.domains] == [(ISD, "isd", "")]
    assert [(k.kvn, k.keys, k.diversification, k.active) for k in se.isd.key_sets] == [(0xFF, (VENDOR_ISD,), "none",
                                                                                       True)]
    assert se.life_cycle == "SECURED" and se.seen_at is not None
    free = free_memory(card.registry, card.registry.isd_aid)
    assert (se.free_nv, se.free_volatile) == (free.nv, free.volatile)
    assert registry_entries(lab.tsm, se_id) == {(ISD, "isd", 0x0F, ISD), (SD_PACKAGE, "elf", 0x01, ISD)}
    assert_registry_is_card(lab, se_id, card)
    assert [(s.id, s.profile, s.seen, s.domains) for s in registry.list_ses(lab.tsm)] == [(se_id, profile.name, True,
                                                                                           1)]


def test_discovery_again_refreshes_the_se(lab):
    card, se_id = lab.new_se()
    ssd = bytes.fromhex("F0535344AA")
    host = Host(card, GP_TEST_KEY).open()  # someone else changed the card meanwhile
    answer = host.send(gp.install(0x0C, gp.install_data(bytes.fromhex(SD_PACKAGE), bytes.fromhex("A000000151535041"),
                                                        ssd, b"\x80", gp.tlv(0xC9, b""))))
    assert answer[1] == 0x9000
    lab.import_key("vendor-isd-2", KeyUsage.ISD_KEYSET)
    assert lab.discover(card, key="vendor-isd-2") == se_id
    se = registry.show(lab.tsm, se_id)
    assert (ssd.hex().upper(), "sd", 0x07, ISD) in assert_registry_is_card(lab, se_id, card)
    assert [(k.kvn, k.keys) for k in se.isd.key_sets] == [(0xFF, ("vendor-isd-2",))]
    assert se.free_nv == free_memory(card.registry, card.registry.isd_aid).nv
    assert len(registry.list_ses(lab.tsm)) == 1 and len(registry.list_profiles(lab.tsm)) == 1


def _vendor_json(entries: list[dict[str, str]]) -> bytes:
    profile = {"scp": "03", "i": "70", "diversification": "none", "isd_aid": ISD, "initial_ssd_key": VENDOR_SSD}
    return json.dumps({"vendor": "acme", "profiles": {"acme-w1": profile}, "secure_elements": entries}).encode()


def _entry(cplc: bytes | None = None, **fields: str) -> dict[str, str]:
    cplc = cplc or make_cplc()
    return {"kdd": kdd_from_cplc(cplc).hex(), "profile": "acme-w1", "isd_key": VENDOR_ISD, "isd_kvn": "FF",
            "cplc": cplc.hex(), "device_kind": "wearable"} | fields


def _csv(entries: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["kdd", "profile", "isd_key", "isd_kvn", "cplc", "device_kind", "vendor"])
    writer.writeheader()
    writer.writerows(e | {"vendor": "acme"} for e in entries)
    return out.getvalue().encode()


def test_vendor_batches_in_json_and_csv(lab):
    registry.add_tenant(lab.tsm, "acme", "vendor")
    cplcs = [make_cplc() for _ in range(5)]
    ids = registry.import_batch(lab.tsm, batch.parse_batch(_vendor_json([_entry(c) for c in cplcs[:3]])))
    ids += registry.import_batch(lab.tsm, batch.parse_batch(_csv([_entry(c) for c in cplcs[3:]])))
    assert ids == [f"se-{kdd_from_cplc(c).hex()}" for c in cplcs]
    listed = registry.list_ses(lab.tsm, vendor="acme")
    assert sorted(s.id for s in listed) == sorted(ids)
    assert {(s.profile, s.device_kind, s.vendor, s.seen) for s in listed} == {("acme-w1", "wearable", "acme", False)}
    for se_id, cplc in zip(ids, cplcs, strict=True):
        se = registry.show(lab.tsm, se_id)
        assert se.cplc == cplc.hex().upper() and se.seen_at is None and se.content == ()
        assert [(k.kvn, k.keys) for k in se.isd.key_sets] == [(0xFF, (VENDOR_ISD,))]
    assert [p.name for p in registry.list_profiles(lab.tsm)] == ["acme-w1"]
    for se_id, cplc in zip(ids, cplcs, strict=True):  # found by a CPLC field (the IC serial, bytes 12-15)
        serial = parse_cplc(cplc).ic_serial_number.hex()
        assert [s.id for s in registry.list_ses(lab.tsm, cplc=("ic_serial_number", serial))] == [se_id]
    fabricator = parse_cplc(cplcs[0]).ic_fabricator.hex()
    assert {s.id for s in registry.list_ses(lab.tsm, cplc=("ic_fabricator", fabricator))} \
        == {i for i, c in zip(ids, cplcs, strict=True) if parse_cplc(c).ic_fabricator.hex() == fabricator}
    for bad in (("ic_colour", "00"), ("ic_serial_number", "0A0B"), ("ic_type", "ZZZZ")):
        with pytest.raises(InvalidRequest):
            registry.list_ses(lab.tsm, cplc=bad)
    with pytest.raises(Conflict):  # announced twice
        registry.import_batch(lab.tsm, batch.parse_batch(_csv([_entry(cplcs[0])])))


BAD_BATCHES = {  # name: (the batch, given an SE already registered; the entry the error names)
    "json-bad-hex": (lambda known: _vendor_json([_entry(), _entry(), _entry(kdd="XYZ")]), 3),
    "json-twice-in-batch": (lambda known: _vendor_json([(same := _entry()), _entry(), same]), 3),
    "json-already-registered": (lambda known: _vendor_json([_entry(), _entry(known)]), 2),
    "json-unknown-field": (lambda known: _vendor_json([_entry(), _entry(colour="red")]), 2),
    "csv-unknown-profile": (lambda known: _csv([_entry(), _entry(profile="nope"), _entry()]), 2),
    "csv-bad-kvn": (lambda known: _csv([_entry(), _entry(), _entry(isd_kvn="1FF")]), 3),
    "csv-bad-cplc": (lambda known: _csv([_entry(), _entry(cplc=b"\x01" * 41)]), 2),
    "csv-two-keys": (lambda known: _csv([_entry(), _entry(isd_key="a b")]), 2),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_batch_with_one_bad_entry_imports_nothing(lab, case):
    registry.add_tenant(lab.tsm, "acme", "vendor")
    known = make_cplc()
    first = registry.import_batch(lab.tsm, batch.parse_batch(_vendor_json([_entry(known)])))
    make, bad_entry = BAD_BATCHES[case]
    with pytest.raises((InvalidRequest, Conflict, NotFound)) as refused:
        registry.import_batch(lab.tsm, batch.parse_batch(make(known)))
    assert str(refused.value).startswith(f"entry {bad_entry}: "), refused.value
    assert [s.id for s in registry.list_ses(lab.tsm)] == first


def test_an_announced_se_is_completed_by_its_discovery(lab):
    registry.add_tenant(lab.tsm, "acme", "vendor")
    card = new_card("wearable")
    [se_id] = registry.import_batch(lab.tsm, batch.parse_batch(_vendor_json([_entry(card.identity.cplc)])))
    assert se_id == f"se-{card.identity.kdd.hex()}"
    assert lab.discover(card, profile="acme-w1") == se_id
    se = registry.show(lab.tsm, se_id)
    assert (se.vendor, se.device_kind, se.profile.name, se.life_cycle) == ("acme", "wearable", "acme-w1", "SECURED")
    assert se.seen_at is not None and se.free_nv is not None
    assert_registry_is_card(lab, se_id, card)


def test_an_app_bigger_than_the_free_memory_is_refused_before_any_apdu(lab):
    card = new_card("wearable")
    wire = Wire(card)
    se_id = lab.discover(wire)
    wire.seen.clear()
    free = registry.show(lab.tsm, se_id).free_nv
    assert free is not None
    lab.add_sp("transitco")
    too_big = lab.app("transitco", "transit", nv_quota=free)  # its load file does not fit beside it
    with pytest.raises(DoesNotFit) as refused:
        jobs.order(lab.tsm, se_id, too_big)
    assert refused.value.code == "insufficient_space" and str(free) in str(refused.value)
    assert jobs.list_jobs(lab.tsm) == [] and wire.seen == []
    fitting = lab.app("transitco", "transit", nv_quota=free // 2, instance_aid="F00000000101010102")
    job_id = jobs.order(lab.tsm, se_id, fitting)
    assert jobs.show(lab.tsm, job_id).state == "pending" and wire.seen == []


def test_a_job_whose_app_no_longer_fits_changes_nothing_on_the_card(lab):
    """Two apps each fit the memory the card reported when they were ordered, not both: the second job is
    refused before it sends anything that would change the card (the first one took the space)."""
    card = new_card("wearable")
    wire = Wire(card)
    se_id = lab.discover(wire)
    free = registry.show(lab.tsm, se_id).free_nv
    assert free is not None
    lab.add_sp("transitco")
    transit = lab.app("transitco", "transit", nv_quota=free // 2)
    bank = lab.app("transitco", "bank", perso="", nv_quota=free // 2)
    first, second = jobs.order(lab.tsm, se_id, transit), jobs.order(lab.tsm, se_id, bank)
    view = lab.run(first, wire)
    assert view.state == "done", view.error
    before = assert_registry_is_card(lab, se_id, wire)
    wire.seen.clear()
    view = lab.run(second, wire)
    assert view.state == "in_error" and view.error.startswith("insufficient_space:"), view.error
    changing = [a for a in wire.seen if a.ins not in (0xA4, 0x50, 0x82, 0xF2, 0xCA)]
    assert changing == []  # no INSTALL, LOAD, PUT KEY: only the read-back of the card's Registry
    assert assert_registry_is_card(lab, se_id, wire) == before
    assert [s.state for s in view.steps if s.name in ("load", "install")] == ["pending", "pending"]
