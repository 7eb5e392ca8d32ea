"""The reconciliation of a sealed audit chain needs an approval set too (issue 11; docs/people.md "Sealed chain"):
approvers authenticate without a record, only for that reconciliation, and the reconciliation record persists
what their authentication could not write. The attacker has the database, not the HSM."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import delete, select, update

from globalplatform.keys import KeyAlgorithm
from keyservice import operations, sealed_auth
from keyservice.approvals import ApprovalSet
from keyservice.errors import (
    AccountLocked,
    ApprovalInvalid,
    ApprovalRequired,
    AuditChainBroken,
    AuditSealed,
    AuthenticationFailed,
    PersonRecordForged,
    QuorumNotReached,
    TotpReplayed,
)
from keyservice.inventory import KeyUsage
from keyservice.models import AuditHead, AuditRecord
from keyservice.people import Credentials, Role
from keyservice.people_models import ApprovalUsed, PersonRecord
from keyservice.views import NewKey
from tests.conftest import core_of, make_service
from tests.keyservice.peoplekit import PASSWORD, officer, team

KEY = NewKey("kek-1", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer")


def _seal(service) -> int:
    """The attacker deletes the newest record and rewinds the head; the next check seals. Returns the lost seq."""
    with core_of(service).sessions() as db, db.begin():
        seq = db.execute(select(AuditHead)).scalar_one().seq
        before = db.execute(select(AuditRecord).where(AuditRecord.seq == seq - 1)).scalar_one()
        db.execute(delete(AuditRecord).where(AuditRecord.seq == seq))
        db.execute(update(AuditHead).values(seq=seq - 1, record_hash=before.record_hash))
    with pytest.raises(AuditChainBroken):
        service.audit.verify()
    assert core_of(service).audit.anchor().sealed
    return seq


def _records(service) -> int:
    with core_of(service).sessions() as db:
        return int(db.execute(select(AuditHead)).scalar_one().seq)


@pytest.fixture
def sealed(settings_factory, db_url):
    """A production token, officers alice (requester), bob, carol, dave and auditor erin; then sealed."""
    crew = team(make_service(*settings_factory(db_url, False)))
    for name in ("alice", "bob", "carol", "dave"):
        crew.enroll(name)
    crew.enroll("erin", Role.AUDITOR)
    crew.login("erin")  # the record the attacker deletes
    _seal(crew.service)
    return crew


def _approve(crew, name, requester="alice", digest=None):
    digest = digest or crew.service.keys.reconciliation().digest
    approval = crew.service.approvals.approve(digest, name, crew.creds(name), requester=requester)
    crew.clock.tick()
    return approval


def _reconcile(crew, *approvals):
    req = replace(officer("alice"), approvals=ApprovalSet("alice", approvals) if approvals else None)
    return crew.service.keys.reconcile(req, apply=True)


def test_reconcile_without_approvals_is_refused_and_nothing_is_written(sealed):
    head = _records(sealed.service)
    with pytest.raises(ApprovalRequired, match="tsm keys approve-reconcile"):
        _reconcile(sealed)
    assert _records(sealed.service) == head and core_of(sealed.service).audit.anchor().sealed
    with pytest.raises(QuorumNotReached):  # one approval of the two a production token needs
        _reconcile(sealed, _approve(sealed, "bob"))
    assert core_of(sealed.service).audit.anchor().sealed


def test_a_quorum_reconciles_and_the_record_names_approvers_and_persists_their_steps(sealed):
    svc = sealed.service
    bob_code, head = sealed.code("bob"), _records(svc)
    approvals = (_approve(sealed, "bob"), _approve(sealed, "carol"))
    assert all(a.step for a in approvals) and _records(svc) == head  # nothing written while sealed
    _reconcile(sealed, *approvals)
    record = svc.audit.records(1)[0]
    detail = json.loads(record.detail)
    assert record.operation == "reconcile" and detail["clearance"] == "approved by bob, carol"
    assert detail["persons"] == ["bob", "carol"] and detail["lost"]
    with core_of(svc).sessions() as db:
        used = {(u.approver, u.audit_seq) for u in db.execute(select(ApprovalUsed)).scalars()}
        rows = {name: db.get(PersonRecord, name) for name in ("bob", "carol")}
    assert used == {("bob", record.seq), ("carol", record.seq)}
    assert {r.last_step for r in rows.values()} == {a.step for a in approvals}
    assert all(r.audit_seq == record.seq for r in rows.values())
    assert svc.status()["audit_chain"]["status"] == "ok" and all(p.genuine for p in svc.people.list_people())
    sealed.clock.now = approvals[0].issued_at  # bob's code, still inside its window: used once, for good
    with pytest.raises(TotpReplayed):
        svc.people.authenticate("bob", Credentials(PASSWORD, bob_code))


def test_an_older_version_of_a_row_the_reconciliation_wrote_is_refused(sealed):
    svc = sealed.service
    with core_of(svc).sessions() as db:
        before = {c: getattr(db.get(PersonRecord, "bob"), c) for c in ("last_step", "audit_seq", "mac")}
    _reconcile(sealed, _approve(sealed, "bob"), _approve(sealed, "carol"))
    with core_of(svc).sessions() as db, db.begin():
        db.execute(update(PersonRecord).where(PersonRecord.name == "bob").values(before))  # the used step undone
    with pytest.raises(PersonRecordForged):
        svc.people.person("bob")


def test_while_sealed_a_code_approves_once_and_only_the_reconciliation(sealed):
    svc = sealed.service
    digest = svc.keys.reconciliation().digest
    creds = sealed.creds("bob")
    svc.approvals.approve(digest, "bob", creds, requester="alice")
    with pytest.raises(TotpReplayed):  # the ledger on the token remembers the step
        svc.approvals.approve(digest, "bob", creds, requester="alice")
    other = operations.reconcile([("audit-sealed", "record 1", "lift the seal")]).digest
    for foreign in (operations.generate(KEY).digest, other):
        with pytest.raises(AuditSealed, match="only its reconciliation"):
            svc.approvals.approve(foreign, "carol", sealed.creds("carol"), requester="alice")


def test_a_sealed_approval_is_refused_once_the_chain_is_open(sealed):
    svc = sealed.service
    spec = svc.keys.reconciliation()
    spare = _approve(sealed, "dave")
    _reconcile(sealed, _approve(sealed, "bob"), _approve(sealed, "carol"))
    with pytest.raises(ApprovalInvalid, match="sealed"):  # given while sealed, for that seal only
        svc.approvals.clear(replace(officer("alice"), approvals=ApprovalSet("alice", (spare,))), spec)


def test_failures_while_sealed_lock_out_and_are_reported_by_the_reconciliation(sealed):
    svc = sealed.service
    digest = svc.keys.reconciliation().digest
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            svc.approvals.approve(digest, "dave", Credentials("wrong password!", sealed.code("dave")),
                                  requester="alice")
    with pytest.raises(AccountLocked):
        svc.approvals.approve(digest, "dave", sealed.creds("dave"), requester="alice")
    with pytest.raises(AuthenticationFailed):
        svc.approvals.approve(digest, "mallory", sealed.creds("bob"), requester="alice")
    _reconcile(sealed, _approve(sealed, "bob"), _approve(sealed, "carol"))
    detail = json.loads(svc.audit.records(1)[0].detail)
    assert detail["sealed_failures"] == {"?": 1, "dave": 5} and "dave" in detail["persons"]
    assert svc.people.person("dave").locked  # the lock-out carried into the row, which stays genuine
    assert sealed_auth.load(core_of(svc)).people == {}  # the ledger was emptied with the record
    assert svc.status()["audit_chain"]["status"] == "ok"


def test_a_lab_token_keeps_the_console_officer_alone_marked_lab(keyservice):
    keyservice.keys.generate(officer("console"), KEY)
    _seal(keyservice)
    keyservice.keys.reconcile(officer("console"), apply=True)
    record = keyservice.audit.records(1)[0]
    assert json.loads(record.detail)["clearance"] == "lab: console officer alone"
    assert keyservice.status()["audit_chain"]["status"] == "ok"
