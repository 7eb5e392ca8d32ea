"""Each provisioning flow end to end against an in-process cardsim card (LocalTransport), on SQLite and PostgreSQL:
an SP's SSD in issuer-centric (CM) and Authorized Management (AM) mode, an app loaded, installed, extradited (CM),
personalized and activated, ISD key rotation FF -> 01 -> 02 and an SSD key rotation, a job run against the wrong
card. After each, the registry equals what an independent GET STATUS of the card shows, and the card itself is
asked (GET DATA 'E0', the bank applet's READ RECORD and INTERNAL AUTHENTICATE) whether it holds what the job says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from sqlalchemy import String, select

from cardsim.card import Card
from cardsim.state import new_card
from cardsim.vpcd import serve
from globalplatform import tlv
from globalplatform.apdu import Ins
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose
from storage.base import Base
from tests.tsm_core.conftest import READER, wait_for_card, wait_for_removal
from tests.tsm_core.lab import (
    BANK_CARD_DGIS,
    BANK_INSTANCE,
    BANK_KEY,
    BANK_NAME,
    BANK_PAN,
    TRANSIT_INSTANCE,
    VENDOR_ISD,
    VENDOR_SSD,
    Lab,
    Wire,
    assert_registry_is_card,
    key_versions,
    registry_entries,
    send,
)
from tsm_core.errors import Conflict
from tsm_core.flows.errors import CardCryptogramMismatch
from tsm_core.gp.getstatus import Privilege
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.jobs.link import CardLink
from tsm_core.registry import discovery
from tsm_core.registry import service as registry
from tsm_core.registry.models import ServiceInstance
from tsm_core.registry.views import KeySetView
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport

ISD = "A000000151000000"
SSD_ENTRY_STATE = 0x07
"""SELECTABLE: an SD made selectable by INSTALL [for install and make selectable] (GPCS 2.3.1 §11.1.1)."""
PERSONALIZED = 0x0F
"""An application in its application-specific PERSONALIZED state (bank applet after its last STORE DATA)."""


def steps_of(view) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(s.name, s.state) for s in view.steps]


def done(view) -> None:  # type: ignore[no-untyped-def]
    assert view.state == "done", view.error
    assert all(s.state == "done" for s in view.steps), steps_of(view)


def opens(lab: Lab, se_id: str, card, aid: str, key_set: KeySetView) -> None:  # type: ignore[no-untyped-def]
    """A secure channel to SD `aid` opens with `key_set` (the card checks the host cryptogram)."""
    se = registry.show(lab.tsm, se_id)
    with LocalTransport(card) as transport:
        link = CardLink(lab.tsm, se_id, transport, se.profile.i, bytes.fromhex(se.kdd))
        link.open(bytes.fromhex(aid), key_set, Purpose.SE_MANAGEMENT)
        link.close_channel()


def service_state(lab: Lab, se_id: str, app_id: str) -> str:
    with lab.tsm.sessions() as db:
        return db.execute(select(ServiceInstance.state).where(ServiceInstance.se_id == se_id,
                                                              ServiceInstance.app_id == app_id)).scalar_one()


def test_ssds_in_issuer_centric_and_authorized_modes(lab):
    card, se_id = lab.new_se()
    lab.add_sp("transitco", "cm")
    lab.add_sp("bankco", "am")
    for sp, mode in (("transitco", "cm"), ("bankco", "am")):
        view = lab.run(jobs.create_ssd(lab.tsm, se_id, sp, mode), card)
        done(view)
        assert steps_of(view) == [("ssd", "done"), ("ssd-keys", "done")]

    se = registry.show(lab.tsm, se_id)
    cm, am = se.domain_of("transitco"), se.domain_of("bankco")
    assert cm is not None and am is not None and cm.aid != am.aid
    assert (cm.mode, am.mode, cm.parent_aid, am.parent_aid) == ("cm", "am", ISD, ISD)
    on_card = {e.aid.hex().upper(): e for e in lab.card_content(se_id, card).applications}
    assert on_card[cm.aid].privileges == Privilege.SECURITY_DOMAIN
    assert on_card[am.aid].privileges == Privilege.SECURITY_DOMAIN | Privilege.AUTHORIZED_MANAGEMENT
    assert {on_card[cm.aid].life_cycle, on_card[am.aid].life_cycle} == {SSD_ENTRY_STATE}
    assert assert_registry_is_card(lab, se_id, card) >= {(cm.aid, "sd", SSD_ENTRY_STATE, ISD),
                                                         (am.aid, "sd", SSD_ENTRY_STATE, ISD)}
    for domain, sp in ((cm, "transitco"), (am, "bankco")):
        assert [(k.kvn, k.diversification, k.active) for k in domain.key_sets] == [(0x01, "kdf3", True)]
        master = lab.keys.keys.list_keys(owner=f"sp:{sp}")
        assert [k.label for k in master] == list(domain.key_sets[0].keys)  # the SP's own master key
        assert key_versions(card, domain.aid) == {0x01}  # the vendor's initial key set FF was replaced
        opens(lab, se_id, card, domain.aid, domain.key_sets[0])  # the card holds the SP's diversified keys
    with pytest.raises(Conflict):
        jobs.create_ssd(lab.tsm, se_id, "transitco", "cm")


def test_transit_purse_loaded_installed_and_extradited_in_cm_mode(lab):
    card, se_id = lab.new_se()
    lab.add_sp("transitco", "cm")
    app_id = lab.app("transitco", "transit")
    view = lab.run(jobs.order(lab.tsm, se_id, app_id), card)
    done(view)
    assert [s.name for s in view.steps] == ["ssd", "ssd-keys", "load", "install", "extradite", "activate"]
    ssd = registry.show(lab.tsm, se_id).domain_of("transitco")
    assert ssd is not None
    entries = assert_registry_is_card(lab, se_id, card)
    assert (TRANSIT_INSTANCE, "app", SSD_ENTRY_STATE, ssd.aid) in entries  # extradited to the SP's SSD
    assert ("F0000000010101", "elf", 0x01, ssd.aid) in entries  # loaded with the SSD as its associated SD
    assert service_state(lab, se_id, app_id) == "active"
    shown = jobs.show(lab.tsm, view.id)
    assert {a.step for a in shown.apdus} >= {"ssd", "ssd-keys", "load", "install", "extradite", "activate",
                                             "refresh"}
    with pytest.raises(Conflict):  # the SE has it now
        jobs.order(lab.tsm, se_id, app_id)


def _text_in_database(lab: Lab) -> str:
    """Every string value of every table, upper-cased."""
    found = []
    with lab.tsm.sessions() as db:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String)]
            if columns:
                found += [str(v) for row in db.execute(select(*columns)) for v in row if v]
    return " ".join(found).upper()


@pytest.mark.parametrize("mode", ["am", "cm"])
def test_bank_card_personalized_and_activated(lab, mode):
    card, se_id = lab.new_se()
    lab.add_sp("bankco", mode)
    app_id = lab.app("bankco", "bank")
    job_id = jobs.order(lab.tsm, se_id, app_id)
    before = registry_entries(lab.tsm, se_id)

    missing = lab.run(job_id, card)  # the card's DGIs were not given: nothing is sent to change the card
    assert missing.state == "in_error" and missing.error.startswith("invalid_request:")
    assert "8101, 8000" in missing.error and all(s.state == "pending" for s in missing.steps)
    assert registry_entries(lab.tsm, se_id) == before == assert_registry_is_card(lab, se_id, card)

    view = lab.run(job_id, card, BANK_CARD_DGIS)
    done(view)
    expected = ["ssd", "ssd-keys", "load", "install", *(["extradite"] if mode == "cm" else []), "personalize",
                "activate"]
    assert [s.name for s in view.steps] == expected and view.attempts == 2
    ssd = registry.show(lab.tsm, se_id).domain_of("bankco")
    assert ssd is not None
    assert (BANK_INSTANCE, "app", PERSONALIZED, ssd.aid) in assert_registry_is_card(lab, se_id, card)
    assert service_state(lab, se_id, app_id) == "active"

    select_app, read_record, authenticate = send(card, f"00A4040009{BANK_INSTANCE}", "00B2010C00",
                                                 "0088000008" + "A1B2C3D4E5F60718" + "08")
    assert select_app.sw == read_record.sw == authenticate.sw == 0x9000
    record = {item.tag: item.value for item in tlv.decode_all(tlv.decode_one(read_record.data)[0].value)}
    assert record[0xDF10] == ("*" * 12 + BANK_PAN[-4:]).encode()  # the card holds the PAN sent encrypted
    assert record[0x5F20] == BANK_NAME
    mac = CMAC(algorithms.AES(BANK_KEY))
    mac.update(bytes.fromhex("A1B2C3D4E5F60718"))
    assert authenticate.data == mac.finalize()[:8]  # and the card authentication key
    stored = _text_in_database(lab)
    assert BANK_PAN not in stored and BANK_KEY.hex().upper() not in stored  # per card, never stored


def test_isd_keys_rotate_ff_01_02_and_an_ssd_key_rotates(lab):
    card, se_id = lab.new_se()
    kmc = lab.issuer_kmc()
    assert key_versions(card, ISD) == {0xFF}
    for kvn in (0x01, 0x02):
        view = lab.run(jobs.rotate_keys(lab.tsm, se_id, kvn), card)
        done(view)
        assert steps_of(view) == [("put-key", "done")]
        assert key_versions(card, ISD) == {kvn}
        se = registry.show(lab.tsm, se_id)
        assert [(k.kvn, k.keys, k.diversification, k.active) for k in se.isd.key_sets] == [(kvn, (kmc,), "kdf3",
                                                                                           True)]
        assert_registry_is_card(lab, se_id, card)  # read over a channel opened with the new keys
    with pytest.raises(Conflict):
        jobs.rotate_keys(lab.tsm, se_id, 0x02)

    lab.add_sp("bankco", "am")
    done(lab.run(jobs.create_ssd(lab.tsm, se_id, "bankco", "am"), card))
    ssd = registry.show(lab.tsm, se_id).domain_of("bankco")
    assert ssd is not None
    done(lab.run(jobs.rotate_keys(lab.tsm, se_id, 0x02, ssd.aid), card))
    assert key_versions(card, ssd.aid) == {0x02}
    rotated = registry.show(lab.tsm, se_id).domain_of("bankco")
    assert rotated is not None and [(k.kvn, k.active) for k in rotated.key_sets] == [(0x02, True)]
    # the SP manages its content through the rotated SSD (AM): its new keys open it
    view = lab.run(jobs.order(lab.tsm, se_id, lab.app("bankco", "transit")), card)
    done(view)
    assert (TRANSIT_INSTANCE, "app", SSD_ENTRY_STATE, ssd.aid) in assert_registry_is_card(lab, se_id, card)


def test_a_job_run_against_another_card_stops_at_initialize_update(lab):
    card_a, se_a = lab.new_se()
    card_b, se_b = lab.new_se()
    lab.add_sp("transitco", "cm")
    job_id = jobs.order(lab.tsm, se_a, lab.app("transitco", "transit"))
    registry_a, registry_b = registry_entries(lab.tsm, se_a), registry_entries(lab.tsm, se_b)
    content_b = assert_registry_is_card(lab, se_b, card_b)

    wire = Wire(card_b)
    view = lab.run(job_id, wire)
    assert view.state == "in_error" and view.error.startswith("wrong_card:"), view.error
    sent = [a.ins for a in wire.seen]
    assert Ins.INITIALIZE_UPDATE in sent
    assert set(sent) <= {Ins.SELECT, Ins.INITIALIZE_UPDATE}  # nothing after INITIALIZE UPDATE but a new SELECT
    assert card_b.registry.isd.sd.failed_authentications == 0
    assert registry_entries(lab.tsm, se_a) == registry_a and registry_entries(lab.tsm, se_b) == registry_b
    assert assert_registry_is_card(lab, se_b, card_b) == content_b

    done(lab.run(job_id, card_a))
    assert TRANSIT_INSTANCE in {e[0] for e in assert_registry_is_card(lab, se_a, card_a)}


def test_discovery_with_another_vendor_key_label_is_refused_by_the_card(lab):
    """The registry's key set is what opened the card: a wrong key never registers a card."""
    lab.import_key("wrong-isd", KeyUsage.ISD_KEYSET, bytes(16))
    card = new_card("wearable")
    with pytest.raises(CardCryptogramMismatch):
        lab.discover(card, key="wrong-isd")
    assert registry.list_ses(lab.tsm) == []
    assert lab.discover(card, key=VENDOR_ISD).startswith("se-")


# ---- through pcscd + vpcd + pyscard ------------------------------------------------------------------------


@pytest.fixture
def served_wearable(pcscd) -> Iterator[tuple[Card, Callable[[], None]]]:
    """A wearable cardsim card inserted in "Virtual PCD 00 00" by a thread; the callable pulls it out."""
    card, stop = new_card("wearable"), threading.Event()
    thread = threading.Thread(target=serve, args=(card,), kwargs={"stop": stop}, name="vpcd-wearable", daemon=True)
    thread.start()

    def remove() -> None:
        if thread.is_alive():
            stop.set()
            thread.join(timeout=5)
            wait_for_removal()

    try:
        wait_for_card()
        yield card, remove
    finally:
        remove()


@pytest.mark.pcsc
def test_the_main_flow_through_pcscd_and_vpcd(sqlite_lab, served_wearable):
    """Discovery, an SSD in each mode, load, install, extradition, personalization, each over PC/SC."""
    lab, (card, remove) = sqlite_lab, served_wearable
    given = discovery.Discovery((VENDOR_ISD,), initial_ssd_key=VENDOR_SSD)
    with PcscTransport(READER) as transport:
        se_id, _ = discovery.discover_se(lab.tsm, transport, given, f"reader:{READER}")

    def run(job_id: str, perso: dict[int, bytes] | None = None) -> None:
        with PcscTransport(READER) as transport:
            done(engine.run(lab.tsm, job_id, transport, perso=perso))

    lab.add_sp("transitco", "cm")
    lab.add_sp("bankco", "am")
    run(jobs.create_ssd(lab.tsm, se_id, "transitco", "cm"))
    run(jobs.order(lab.tsm, se_id, lab.app("transitco", "transit")))
    run(jobs.order(lab.tsm, se_id, lab.app("bankco", "bank")), BANK_CARD_DGIS)
    remove()
    se = registry.show(lab.tsm, se_id)
    cm, am = se.domain_of("transitco"), se.domain_of("bankco")
    assert cm is not None and am is not None and (cm.mode, am.mode) == ("cm", "am")
    assert {(TRANSIT_INSTANCE, "app", SSD_ENTRY_STATE, cm.aid), (BANK_INSTANCE, "app", PERSONALIZED, am.aid)} <= \
        assert_registry_is_card(lab, se_id, card)
    _, record = send(card, f"00A4040009{BANK_INSTANCE}", "00B2010C00")
    assert ("*" * 12 + BANK_PAN[-4:]).encode() in record.data
