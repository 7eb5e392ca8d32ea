"""The key service's trust base under attack (issue 8): a rollback of the database stays caught, the anchor is
never moved past a discrepancy, every stored field is covered by the chain, middle records are checked without a
full walk, key records an administrator of the database cannot forge.

Each test reproduces an attack a hostile reviewer ran against the previous code; the attacker has the database
(SQL, file copies) but not the HSM.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from globalplatform.keys import KeyAlgorithm
from keyservice.audit import ANCHOR_APPLICATION
from keyservice.channels import ChannelSpec
from keyservice.errors import AuditChainBroken, KeyRecordForged, ServiceSealed
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.models import AuditHead, AuditRecord, KeyRecord
from keyservice.policy import Purpose, Request
from keyservice.runtime import close_all
from keyservice.views import NewKey
from tests.conftest import core_of, make_service

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
TSM = Request(Caller("tsm-core", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-1")
KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


def _exec(service, *stmts):
    with core_of(service).sessions() as db, db.begin():
        for stmt in stmts:
            db.execute(stmt)


@pytest.fixture
def lab(keyservice):
    keyservice.keys.import_test(OFFICER, NewKey("isd", KeyAlgorithm.AES, 16, KeyUsage.ISD_KEYSET, "issuer"), KEY)
    keyservice.keys.generate(OFFICER, NewKey("kek", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    return keyservice


def _head(service) -> tuple[int, str]:
    with core_of(service).sessions() as db:
        head = db.execute(select(AuditHead)).scalar_one()
        return head.seq, head.record_hash


def _rewind_to(service, seq: int) -> None:
    """The attacker's rollback: drop every record after `seq` and rewind the head row to it."""
    with core_of(service).sessions() as db, db.begin():
        last = db.execute(select(AuditRecord).where(AuditRecord.seq == seq)).scalar_one()
        db.execute(delete(AuditRecord).where(AuditRecord.seq > seq))
        db.execute(update(AuditHead).values(seq=seq, record_hash=last.record_hash))


# ---- the audit chain stays broken once broken ------------------------------------------------------------------

def test_deleting_the_newest_record_seals_the_service_until_reconciled(lab):
    lab.keys.change_state(OFFICER, "isd", KeyState.COMPROMISED)  # the record the attacker wants gone
    seq, _ = _head(lab)
    _rewind_to(lab, seq - 1)
    _exec(lab, update(KeyRecord).where(KeyRecord.label == "isd").values(state="active"))  # and its effect
    with pytest.raises(ServiceSealed, match="rollback"):
        lab.channels.open(TSM, ChannelSpec(("isd",)))
    with pytest.raises(ServiceSealed):  # still sealed: the next operation cannot move the anchor
        lab.keys.generate(OFFICER, NewKey("later", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    with pytest.raises(AuditChainBroken, match=r"rollback|truncated"):
        lab.audit.verify()
    assert lab.status()["audit_chain"]["status"] == "sealed"
    findings = lab.keys.reconcile(OFFICER, apply=True)
    assert any(f.kind == "audit-rollback" and f"record {seq}" in f.detail for f in findings)
    last = lab.audit.records(1)[0]
    assert last.operation == "reconcile" and f"{seq}" in last.detail  # the event names what was lost
    assert lab.audit.verify().records == seq  # the reconcile record takes the lost record's place, linked
    lab.keys.generate(OFFICER, NewKey("after", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))


def test_restoring_an_older_database_copy_stays_caught(settings_factory, tmp_path):
    settings, test_token = settings_factory(f"sqlite:///{tmp_path / 'tsm.db'}")
    service = make_service(settings, test_token)
    service.keys.import_test(OFFICER, NewKey("isd", KeyAlgorithm.AES, 16, KeyUsage.ISD_KEYSET, "issuer"), KEY)
    close_all()
    shutil.copy(tmp_path / "tsm.db", tmp_path / "snap.db")  # the backup
    service = make_service(settings, False)
    service.keys.change_state(OFFICER, "isd", KeyState.COMPROMISED)
    close_all()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'tsm.db'}{suffix}").unlink(missing_ok=True)
    shutil.copy(tmp_path / "snap.db", tmp_path / "tsm.db")  # restored: the key is active again
    service = make_service(settings, False)
    with pytest.raises(ServiceSealed):
        service.channels.open(TSM, ChannelSpec(("isd",)))
    with pytest.raises(ServiceSealed):
        service.keys.kcv(OFFICER, "isd")
    with pytest.raises(AuditChainBroken):  # and verify keeps saying so: the anchor was never moved
        service.audit.verify()


def test_the_anchor_is_never_moved_past_a_discrepancy(lab):
    seq, _ = _head(lab)
    _rewind_to(lab, seq - 1)
    for _ in range(3):
        with pytest.raises(ServiceSealed):
            lab.keys.kcv(OFFICER, "kek")
    anchored = core_of(lab).hsm.anchor(ANCHOR_APPLICATION)
    assert (anchored is not None and anchored.split(":")[1] == str(seq)) or str(seq) in anchored


def test_a_commit_whose_anchor_was_not_written_rolls_forward(lab):
    """A process killed after the commit and before the anchor write: the records the database holds beyond the
    anchor are genuine (MACed by the HSM), so the next operation moves the anchor forward; nothing is sealed."""
    seq, digest = _head(lab)
    lab.keys.change_state(OFFICER, "kek", KeyState.ACTIVE)
    core_of(lab).hsm.set_anchor(ANCHOR_APPLICATION, f"{seq}:{digest}")  # a crash before the anchor write
    lab.keys.kcv(OFFICER, "kek")
    assert lab.audit.verify().records == seq + 2


def test_records_beyond_the_anchor_must_be_genuine(settings_factory, db_url):
    """After a crash between commit and anchor write, a new process finds records beyond the anchor: a forged
    one among them seals the service instead of being anchored."""
    settings, test_token = settings_factory(db_url)
    lab = make_service(settings, test_token)
    lab.keys.generate(OFFICER, NewKey("kek", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    seq, digest = _head(lab)
    lab.keys.change_state(OFFICER, "kek", KeyState.ACTIVE)
    close_all()
    lab = make_service(settings, False)  # a new process, after a crash that lost the last anchor write:
    core_of(lab).hsm.set_anchor(ANCHOR_APPLICATION, f"{seq}:{digest}")
    _exec(lab, update(AuditRecord).where(AuditRecord.seq == seq + 1).values(detail="forged"))
    with pytest.raises(ServiceSealed):
        lab.keys.kcv(OFFICER, "kek")


# ---- every stored field is covered ------------------------------------------------------------------------------

def test_a_third_element_in_keys_breaks_the_chain(lab):
    _exec(lab, update(AuditRecord).where(AuditRecord.seq == 2).values(
        keys='[["isd","504A77","approved by 2 officers"]]'))
    with pytest.raises(AuditChainBroken) as info:
        lab.audit.verify()
    assert info.value.seq == 2


@pytest.mark.parametrize("value", ["not json", "{}", '[["a"]]', '[["a", 5]]', "[[" * 5000 + "]]" * 5000])
def test_malformed_keys_columns_are_breaks_not_tracebacks(lab, value):
    _exec(lab, update(AuditRecord).where(AuditRecord.seq == 2).values(keys=value))
    with pytest.raises(AuditChainBroken):
        lab.audit.verify()
    assert lab.status()["audit_chain"]["status"] != "ok"


# ---- the health check sees middle records ------------------------------------------------------------------------

@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_health_sees_a_tampered_middle_record(lab, tamper):
    for _ in range(6):
        lab.keys.kcv(OFFICER, "kek")
    assert lab.status()["audit_chain"]["status"] == "ok"
    if tamper == "edit":
        _exec(lab, update(AuditRecord).where(AuditRecord.seq == 3).values(actor="officer:mallory"))
    elif tamper == "delete":
        _exec(lab, delete(AuditRecord).where(AuditRecord.seq == 3))
    else:
        with core_of(lab).sessions() as db, db.begin():
            a, b = (db.execute(select(AuditRecord).where(AuditRecord.seq == n)).scalar_one() for n in (3, 4))
            a.seq, b.seq = -1, -2
            db.flush()
            a.seq, b.seq = 4, 3
    chain = lab.status()["audit_chain"]
    assert chain["status"] == "broken" and chain["seq"] in (3, 4)


# ---- key records an administrator of the database cannot forge ---------------------------------------------------

def test_a_compromised_key_made_active_in_the_database_is_refused(lab):
    lab.keys.change_state(OFFICER, "isd", KeyState.COMPROMISED)
    _exec(lab, update(KeyRecord).where(KeyRecord.label == "isd").values(state="active"))
    with pytest.raises(KeyRecordForged):
        lab.channels.open(TSM, ChannelSpec(("isd",)))
    report = lab.keys.check()
    assert not report.consistent and any(p.startswith("isd:") and "signed" in p for p in report.untrusted_records)
    assert not lab.keys.show("isd").signed and [k.signed for k in lab.keys.list_keys() if k.label == "isd"] == [False]
    assert lab.keys.integrity()["status"] == "untrusted"


@pytest.mark.parametrize(("column", "value"), [("usage", "KMC"), ("owner", "sp:evil"), ("exportable", True),
                                               ("kvn", 0x30), ("kcv", "000000")])
def test_every_bound_field_is_checked(lab, column, value):
    _exec(lab, update(KeyRecord).where(KeyRecord.label == "kek").values({column: value}))
    with pytest.raises(KeyRecordForged):
        lab.keys.kcv(OFFICER, "kek")


def test_an_old_row_replayed_from_a_backup_is_reported(lab):
    with core_of(lab).sessions() as db:
        old = {c: getattr(db.execute(select(KeyRecord).where(KeyRecord.label == "isd")).scalar_one(), c)
               for c in ("state", "state_changed_at", "audit_seq", "mac")}
    lab.keys.change_state(OFFICER, "isd", KeyState.COMPROMISED)
    _exec(lab, update(KeyRecord).where(KeyRecord.label == "isd").values(old))
    report = lab.keys.check()
    assert any(p.startswith("isd:") and "audit record" in p for p in report.untrusted_records)
