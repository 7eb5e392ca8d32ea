"""Tamper tests for the audit chain: edit, delete, reorder, truncate, restore — each named by verify."""

from __future__ import annotations

import pytest
from pkcs11.constants import ObjectClass
from sqlalchemy import delete, select, update

from globalplatform.keys import KeyAlgorithm
from keyservice.audit import ANCHOR_APPLICATION
from keyservice.errors import AuditChainBroken, AuditFailure
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.models import AuditHead, AuditRecord
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from tests.conftest import core_of

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
HEAD = 7
"""The chain's newest record: the audit, vault and approval keys made at initialisation, then four keys."""


@pytest.fixture
def chain(keyservice):
    for i in range(4):
        keyservice.keys.generate(OFFICER, NewKey(f"k{i}", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"))
    assert keyservice.audit.verify().records == HEAD
    return keyservice


def _exec(service, stmt):
    with core_of(service).sessions() as db, db.begin():
        db.execute(stmt)


def _broken_at(service) -> int:
    with pytest.raises(AuditChainBroken) as info:
        service.audit.verify()
    return info.value.seq


def test_head_check_for_health_probes(chain):
    assert chain.audit.check_head().records == HEAD
    _exec(chain, delete(AuditRecord).where(AuditRecord.seq == HEAD))
    with pytest.raises(AuditChainBroken):
        chain.audit.check_head()


def test_head_check_sees_an_altered_newest_record(chain):
    _exec(chain, update(AuditRecord).where(AuditRecord.seq == HEAD).values(outcome="refused"))
    with pytest.raises(AuditChainBroken):
        chain.audit.check_head()


def test_edit_is_detected(chain):
    _exec(chain, update(AuditRecord).where(AuditRecord.seq == 3).values(actor="officer:mallory"))
    assert _broken_at(chain) == 3


def test_edit_with_recomputed_hash_fails_the_mac(chain):
    from keyservice.audit import row_hash

    with core_of(chain).sessions() as db, db.begin():
        row = db.execute(select(AuditRecord).where(AuditRecord.seq == HEAD)).scalar_one()
        row.target = "elsewhere"
        row.record_hash = row_hash(row)
    assert _broken_at(chain) == HEAD


def test_delete_is_detected(chain):
    _exec(chain, delete(AuditRecord).where(AuditRecord.seq == 2))
    assert _broken_at(chain) == 2


def test_reorder_is_detected(chain):
    with core_of(chain).sessions() as db, db.begin():
        a, b = (db.execute(select(AuditRecord).where(AuditRecord.seq == n)).scalar_one() for n in (2, 3))
        for field in ("ts", "actor", "operation", "purpose", "target", "keys", "outcome", "detail"):
            va, vb = getattr(a, field), getattr(b, field)
            setattr(a, field, vb)
            setattr(b, field, va)
    assert _broken_at(chain) == 2


def test_truncation_is_detected_even_with_the_head_row_rewound(chain):
    _exec(chain, delete(AuditRecord).where(AuditRecord.seq >= 4))
    with core_of(chain).sessions() as db, db.begin():
        third = db.execute(select(AuditRecord).where(AuditRecord.seq == 3)).scalar_one()
        db.execute(update(AuditHead).values(seq=3, record_hash=third.record_hash))
    assert _broken_at(chain) == 4


def test_anchor_mismatch_is_detected(chain):
    core_of(chain).hsm.set_anchor(ANCHOR_APPLICATION, f"{HEAD}:" + "0" * 64)
    assert _broken_at(chain) == HEAD


def test_no_key_material_in_records(chain):
    for rec in chain.audit.records(100):
        assert "404142" not in str(rec.keys).lower()


def test_audit_failure_fails_the_operation(chain):
    core_of(chain).hsm.forget("tsm.audit-key")
    handle = core_of(chain).hsm.handle("tsm.audit-key")
    audit_key = ("tsm.audit-key", ObjectClass.SECRET_KEY)
    core_of(chain).hsm._handles[audit_key] = handle + 100000  # an invalid handle: the MAC cannot be computed
    with pytest.raises(AuditFailure):
        chain.keys.generate(OFFICER, NewKey("lost", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x"))
    core_of(chain).hsm._handles[audit_key] = handle
    assert [k.label for k in chain.keys.list_keys() if k.label == "lost"] == []
    assert "lost" not in {o.label for o in core_of(chain).hsm.objects()}
    assert chain.audit.verify().records == HEAD
