"""Approval sets the key service itself verifies (ARCHITECTURE.md principle 3, issue 11): each refusal, the lab
token's console officer acting alone, approved operations naming their approvers, and the quorum."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import delete, update

from globalplatform.keys import KeyAlgorithm
from keyservice import operations
from keyservice.approvals import Approval, ApprovalSet
from keyservice.errors import (
    ApprovalExpired,
    ApprovalInvalid,
    ApprovalReplayed,
    ApprovalRequired,
    ApproverNotEligible,
    DuplicateApprover,
    QuorumNotReached,
    QuorumRecordForged,
    SelfApproval,
)
from keyservice.inventory import KeyState, KeyUsage
from keyservice.people import Role
from keyservice.people_models import QuorumRecord
from keyservice.views import NewKey
from tests.conftest import core_of, make_service
from tests.keyservice.peoplekit import officer, team

KEY = NewKey("kek-1", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer")


@pytest.fixture
def prod(settings_factory, db_url):
    """A production token with officers alice (requester), bob, carol and dave, auditor erin."""
    crew = team(make_service(*settings_factory(db_url, False)))
    for name in ("alice", "bob", "carol", "dave"):
        crew.enroll(name)
    crew.enroll("erin", Role.AUDITOR)
    return crew


def _set(crew, spec, *approvers, requester="alice"):
    return ApprovalSet(requester, tuple(crew.approve(spec, name, requester) for name in approvers))


def _generate(crew, approvals, spec=KEY):
    return crew.service.keys.generate(replace(officer("alice"), approvals=approvals), spec)


def test_a_direct_call_without_approvals_is_refused_on_a_production_token(prod):
    with pytest.raises(ApprovalRequired, match="tsm ceremony start key-generation"):
        prod.service.keys.generate(officer("alice"), KEY)
    last = prod.service.audit.records(1)[0]
    assert (last.operation, last.outcome, last.detail) == ("generate", "refused", "approval_required")
    assert "kek-1" not in {k.label for k in prod.service.keys.list_keys()}


def test_the_lab_console_officer_acts_alone_and_the_record_says_so(keyservice):
    keyservice.keys.generate(officer("console"), KEY)
    keyservice.keys.change_state(officer("console"), KEY.label, KeyState.ACTIVE)
    records = keyservice.audit.records(2)
    assert [r.detail for r in records] == ["pre-activation->active; lab: console officer alone",
                                           "lab: console officer alone"]


def test_two_approvals_clear_the_call_and_the_record_names_them(prod):
    view = _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol"))
    assert view.label == KEY.label
    assert prod.service.audit.records(1)[0].detail == "approved by bob, carol"


def test_an_approval_is_used_once(prod):
    keys = prod.service.keys
    _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol"))
    approvals = _set(prod, operations.change_state(KEY.label, KeyState.ACTIVE), "bob", "carol")
    keys.change_state(replace(officer("alice"), approvals=approvals), KEY.label, KeyState.ACTIVE)
    keys.change_state(officer("alice"), KEY.label, KeyState.SUSPENDED)  # taking a key out of use needs none
    with pytest.raises(ApprovalReplayed):
        keys.change_state(replace(officer("alice"), approvals=approvals), KEY.label, KeyState.ACTIVE)


def test_self_approval_is_refused(prod):
    with pytest.raises(SelfApproval):
        prod.approve(operations.generate(KEY), "alice", "alice")
    forged = ApprovalSet("bob", (prod.approve(operations.generate(KEY), "carol", "bob"),))
    with pytest.raises(ApprovalInvalid):  # a set requested by someone else than the caller
        _generate(prod, forged)


def test_one_approver_twice_is_refused(prod):
    with pytest.raises(DuplicateApprover):
        _generate(prod, _set(prod, operations.generate(KEY), "bob", "bob"))


def test_an_approval_for_another_operation_is_refused(prod):
    other = replace(KEY, length=32)
    with pytest.raises(ApprovalInvalid, match="another operation"):
        _generate(prod, _set(prod, operations.generate(other), "bob", "carol"))


def test_an_expired_approval_is_refused(prod):
    approvals = _set(prod, operations.generate(KEY), "bob", "carol")
    prod.clock.tick(15 * 60)
    with pytest.raises(ApprovalExpired):
        _generate(prod, approvals)


def test_quorum_not_reached(prod):
    with pytest.raises(QuorumNotReached):
        _generate(prod, _set(prod, operations.generate(KEY), "bob"))


def test_an_altered_approval_does_not_verify(prod):
    good = prod.approve(operations.generate(KEY), "bob", "alice")
    assert Approval.decode(good.encode()) == good
    later = replace(good, expires_at=good.expires_at + 86400)
    with pytest.raises(ApprovalInvalid, match="does not verify"):
        _generate(prod, ApprovalSet("alice", (later, prod.approve(operations.generate(KEY), "carol", "alice"))))
    with pytest.raises(ApprovalInvalid):
        Approval.decode(good.encode()[:-3] + "!!!")


def test_only_active_officers_approve(prod):
    with pytest.raises(ApproverNotEligible):
        prod.approve(operations.generate(KEY), "erin", "alice")  # an auditor
    approvals = _set(prod, operations.generate(KEY), "bob", "carol")
    prod.service.people.remove(officer("console"), "carol")  # bootstrap still open
    with pytest.raises(ApproverNotEligible):
        _generate(prod, approvals)


def test_a_quorum_change_needs_approvals_and_then_applies(prod):
    quorum = prod.service.quorum
    with pytest.raises(ApprovalRequired):
        quorum.set(officer("alice"), "key-generate", 3)
    change = operations.quorum_change("key-generate", 3)
    quorum.set(officer("alice"), "key-generate", 3, _set(prod, change, "bob", "carol"))
    assert {v.scope: (v.m, v.n) for v in quorum.show()}["key-generate"] == (3, 4)
    with pytest.raises(QuorumNotReached):
        _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol"))
    _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol", "dave"))


def test_a_database_administrator_cannot_lower_or_delete_a_quorum(prod):
    change = operations.quorum_change("key-generate", 3)
    prod.service.quorum.set(officer("alice"), "key-generate", 3, _set(prod, change, "bob", "carol"))
    core = core_of(prod.service)
    with core.sessions() as db, db.begin():
        db.execute(update(QuorumRecord).values(m=2))
    with pytest.raises(QuorumRecordForged):
        _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol"))
    with core.sessions() as db, db.begin():
        db.execute(delete(QuorumRecord))
    with pytest.raises(QuorumRecordForged):
        _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol"))


def test_a_per_key_quorum_is_stricter(prod):
    change = operations.quorum_change(f"label:{KEY.label}", 3)
    prod.service.quorum.set(officer("alice"), f"label:{KEY.label}", 3, _set(prod, change, "bob", "carol"))
    with pytest.raises(QuorumNotReached):
        _generate(prod, _set(prod, operations.generate(KEY), "bob", "carol"))
