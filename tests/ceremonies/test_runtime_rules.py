"""Refusals, abort, time-out and evidence of the ceremony runtime (lab and production tokens), and ceremonies 4, 5
and 6 end to end (docs/ceremonies.md)."""

from __future__ import annotations

import json

import pytest

from ceremonies.errors import CeremonyClosed, DutiesNotSegregated, EvidenceMismatch, NotYetDue
from ceremonies.models import ApprovalRecord
from keyservice import operations
from keyservice.approvals import ApprovalSet
from keyservice.errors import (
    ApprovalExpired,
    ApprovalInvalid,
    ApprovalReplayed,
    AuthenticationFailed,
    SelfApproval,
    TotpReplayed,
)
from keyservice.identity import Caller, CallerKind
from keyservice.policy import Purpose, Request
from tests.ceremonies.conftest import Room, make_room
from tests.conftest import fresh_settings

AUDITOR = Caller("eve", CallerKind.SERVICE)


def test_authentication_refusals(production: Room):
    room = production
    with pytest.raises(AuthenticationFailed):
        room.service.start("key-generation", {"label": "k"}, "alice", room.creds("alice", password="wrong pass 123"))
    with pytest.raises(AuthenticationFailed):
        room.service.start("key-generation", {"label": "k"}, "alice", room.creds("alice", code="000000"))
    creds = room.creds("alice")
    room.service.start("key-generation", {"label": "k"}, "alice", creds)
    with pytest.raises(TotpReplayed):  # the same code again: replayed
        room.service.start("key-generation", {"label": "k2"}, "alice", creds)


def test_segregation_and_approval_refusals(production: Room):
    room = production
    cid = room.start("key-destruction", {"label": "nothing"})
    with pytest.raises(DutiesNotSegregated):
        room.join(cid, "alice", "officer")  # the requester is already in
    with pytest.raises(DutiesNotSegregated):
        room.join(cid, "eve", "officer")  # an auditor is not an officer
    room.join(cid, "eve", "auditor")
    with pytest.raises(DutiesNotSegregated):
        room.join(cid, "eve", "auditor")  # one person, one role
    with pytest.raises(DutiesNotSegregated):
        room.approve(cid, "alice")  # self-approval, refused before the key service is asked
    with pytest.raises(SelfApproval):  # and by the key service itself
        room.ks.approvals.approve("ab" * 32, "alice", room.creds("alice"), requester="alice")


def test_expired_replayed_and_foreign_approvals(production: Room):
    room = production
    cid = room.start("key-generation", {"label": "kx"})
    room.join(cid, "bob", "officer")
    room.sign(cid, "alice")
    room.approve(cid, "bob", "carol")
    room.t += 3600  # the approvals expire (15 minutes)
    with pytest.raises(ApprovalExpired):
        room.sign(cid, "alice")
    assert room.service.show(cid).approvals == []  # stale approvals dropped: collect new ones
    other = room.start("key-generation", {"label": "ky"}, who="dave")
    room.join(other, "bob", "officer")
    room.sign(other, "dave")
    room.approve(other, "bob", "carol")  # approvals for another operation (label ky, requester dave)
    with room.service.sessions() as db, db.begin():
        for rec in db.query(ApprovalRecord).filter_by(ceremony_id=other):
            rec.ceremony_id = cid
            rec.step = 2
    with pytest.raises(ApprovalInvalid):
        room.sign(cid, "alice")
    room.approve(cid, "bob", "carol")
    room.sign(cid, "alice")  # fresh approvals for this very step pass
    assert room.ks.keys.show("kx").state == "pre-activation"


def test_the_same_approval_set_presented_twice_is_replayed(production: Room):
    room = production
    spec = operations.quorum_change("key-export", 2)  # a call that may legitimately be made twice

    def approvals() -> ApprovalSet:
        return ApprovalSet("alice", tuple(room.ks.approvals.approve(spec.digest, who, room.creds(who),
                                                                    requester="alice", now=room.t)
                                          for who in ("bob", "carol")))

    once = approvals()
    req = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "quorum")
    room.ks.quorum.set(req, "key-export", 2, approvals=once)
    with pytest.raises(ApprovalReplayed):
        room.ks.quorum.set(req, "key-export", 2, approvals=once)
    room.ks.quorum.set(req, "key-export", 2, approvals=approvals())  # the same call, a fresh set: cleared


def test_abort_destroys_the_half_made_key_and_evidence_verifies(production: Room):
    room = production
    cid = room.start("key-generation", {"label": "half", "components": "2"})
    for who, role in (("cus1", "custodian"), ("cus2", "custodian")):
        room.join(cid, who, role)
    room.sign(cid, "alice")
    room.sign(cid, "cus1")
    assert len(room.ks.components.held(cid)) == 1
    room.service.abort(cid, "custodian 2 is ill", "alice", room.creds("alice"))
    assert room.ks.components.held(cid) == []
    with pytest.raises(CeremonyClosed):
        room.service.sign(cid, 3, "cus2", room.creds("cus2"))
    document, page = room.service.export(cid, AUDITOR)
    assert "signature" in page and "custodian 2 is ill" in page
    assert room.service.verify(document) == cid
    data = json.loads(document)
    data["transcript"]["abort_reason"] = "nothing happened"
    with pytest.raises(EvidenceMismatch):
        room.service.verify(json.dumps(data))
    data["sha256"] = __import__("ceremonies.evidence", fromlist=["digest"]).digest(data["transcript"])
    with pytest.raises(EvidenceMismatch):  # a consistent forgery is not anchored in the chain
        room.service.verify(json.dumps(data))


def test_a_ceremony_past_its_limit_is_aborted_on_the_next_touch(production: Room):
    room = production
    cid = room.start("key-generation", {"label": "late", "components": "2"})
    room.join(cid, "cus1", "custodian")
    room.sign(cid, "alice")
    room.sign(cid, "cus1")
    room.t += 5 * 3600
    with pytest.raises(CeremonyClosed):
        room.join(cid, "cus2", "custodian")
    view = room.service.show(cid)
    assert view.state == "aborted" and view.abort_reason == "timed out"
    assert room.ks.components.held(cid) == []


def test_rotation_then_destruction_then_enrollment(tmp_path):  # its own room: it closes the bootstrap
    planned: list[int] = []
    room = make_room(fresh_settings(tmp_path, f"sqlite:///{tmp_path / 'r.db'}"), test_token=False,
                     planner=lambda kvn: planned.append(kvn) or ["job-1", "job-2"])
    gen = room.start("key-generation", {"label": "kmc-v1", "kvn": "01"})
    room.join(gen, "bob", "officer")
    room.sign(gen, "alice")
    room.approve(gen, "bob", "carol")
    room.sign(gen, "alice")
    room.sign(gen, "bob", kcv=room.service.show(gen).outputs["label_kcv"])
    room.approve(gen, "bob", "carol")
    room.sign(gen, "alice")
    # 4: rotation
    rot = room.start("key-rotation", {"old": "kmc-v1", "new": "kmc-v2", "kvn": "02", "retire_after_days": "1"})
    room.join(rot, "bob", "officer")
    room.join(rot, "otto", "operator")
    room.sign(rot, "alice")
    room.approve(rot, "bob", "carol")
    room.sign(rot, "alice")
    room.sign(rot, "bob", kcv=room.service.show(rot).outputs["new_kcv"])
    room.approve(rot, "bob", "carol")
    room.sign(rot, "alice")
    room.sign(rot, "otto")
    assert planned == [2] and room.service.show(rot).outputs["rollout_jobs"] == "job-1 job-2"
    with pytest.raises(NotYetDue):
        room.sign(rot, "bob")
    room.t += 86400
    room.sign(rot, "bob")
    assert room.ks.keys.show("kmc-v1").state == "deactivated"
    assert room.ks.keys.show("kmc-v2").state == "active" and room.ks.keys.show("kmc-v2").kvn == 2
    # 5: destruction of the old version
    des = room.start("key-destruction", {"label": "kmc-v1"})
    room.join(des, "dave", "officer")
    room.join(des, "eve", "auditor")
    room.sign(des, "alice")
    room.sign(des, "dave", kcv=room.ks.keys.show("kmc-v1").kcv)
    room.approve(des, "bob", "carol")
    room.sign(des, "alice")
    room.sign(des, "eve")
    old = room.ks.keys.show("kmc-v1")
    assert old.state == "destroyed" and old.kcv and "kmc-v1" not in room.token_labels()
    # 6: enrollment after the bootstrap closed
    room.ks.people.close_bootstrap("alice", room.creds("alice"), now=room.t)
    ppl = room.start("quorum-and-people", {"action": "enroll", "name": "olga", "role": "officer"})
    room.join(ppl, "eve", "auditor")
    room.sign(ppl, "alice")
    room.approve(ppl, "bob", "carol")
    shown = room.service.sign(ppl, 2, "alice", room.creds("alice"), {"password": "olga's long passphrase"}).shown
    assert shown["provisioning_uri"].startswith("otpauth://")
    room.sign(ppl, "eve")
    assert "olga" in {p.name for p in room.ks.people.list_people()}
    assert room.ks.keys.check().consistent
