"""The app catalog's service layer on SQLite and PostgreSQL: a CAP file submitted is parsed and stored with its
hash, the review approves or rejects with a reason, only approved apps can be ordered, and an AID another SP
already uses blocks the approval."""

from __future__ import annotations

import hashlib

import pytest

from cardsim.capbuild import demo_cap
from tests.tsm_core.lab import BANK_INSTANCE, TRANSIT_INSTANCE, cap
from tsm_core.catalog import service as catalog
from tsm_core.errors import Conflict, InvalidRequest, NotFound
from tsm_core.jobs import service as jobs
from tsm_core.registry import service as registry
from tsm_core.registry.service import ProfileSpec, SeRegistration

ISD = "A000000151000000"


def _announced_se(lab) -> str:  # type: ignore[no-untyped-def]
    """An SE its vendor announced (no card needed to plan a job)."""
    profile = ProfileSpec(0x03, 0x70, "none", ISD, initial_ssd_key="vendor-ssd", name="w1")
    return registry.register(lab.tsm, SeRegistration(bytes.fromhex("0102030405060708090A"), profile, ("vendor-isd",),
                                                     0xFF))


def test_a_cap_file_is_parsed_and_stored_with_its_hash(lab):
    lab.add_sp("transitco")
    image = demo_cap("transit")
    app_id = catalog.submit(lab.tsm, catalog.Submission("transitco", image.jar(), instance_aid=TRANSIT_INSTANCE.lower(),
                                                        nv_quota=4096, target_profiles=("w1",)))
    view = catalog.app(lab.tsm, app_id)
    lfdb = catalog.load_file_data(lab.tsm, view.load_file.id)
    assert (view.load_file.package_aid, view.load_file.version) == ("F0000000010101", "1.0")
    assert view.load_file.module_aids == ("F000000001010101",) and view.module_aid == "F000000001010101"
    assert view.instance_aid == TRANSIT_INSTANCE and view.nv_quota == 4096
    assert view.load_file.size == len(lfdb) and view.load_file.sha256 == hashlib.sha256(lfdb).hexdigest()
    assert lfdb[0] == 0x01 and lfdb[lfdb.index(b"\x02", 3)] == 0x02  # Header component first, then Directory
    assert {i.split(":")[0] for i in view.load_file.imports} >= {"A0000000620101"}  # javacard.framework
    assert (view.review, view.sp, view.target_profiles) == ("pending", "transitco", ("w1",))
    again = catalog.submit(lab.tsm, catalog.Submission("transitco", image.jar(), name="transit-2",
                                                       instance_aid="F00000000101010102"))
    assert catalog.app(lab.tsm, again).load_file.id == view.load_file.id  # one load file, two apps
    assert [a.id for a in catalog.list_apps(lab.tsm, "transitco", "pending")] == [app_id, again]


@pytest.mark.parametrize(("fields", "what"), [
    ({"cap": b"PK\x03\x04 not a zip"}, "not a CAP file"),
    ({"cap": b"\x01\x00\x05"}, "not a CAP file"),
    ({"instance_aid": "F0000"}, "is not hex"),
    ({"instance_aid": "F000"}, "an AID is 5 to 16"),
    ({"module_aid": "F000000002010101"}, "has no applet"),
    ({"privileges": "8000"}, "privileges are 1 or 3 bytes"),
    ({"perso": "8101=5A08"}, "sensitive"),
    ({"perso": "0101!"}, "8000..8FFF"),
    ({"perso": "101=00"}, "is not DGI=hex"),
    ({"sp": "nobody"}, "no service provider"),
])
def test_a_bad_submission_is_refused(sqlite_lab, fields, what):
    lab = sqlite_lab
    lab.add_sp("transitco")
    submission = catalog.Submission("transitco", cap("transit")) if "cap" not in fields else \
        catalog.Submission("transitco", fields["cap"])
    arguments = {k: v for k, v in fields.items() if k != "cap"}
    with pytest.raises((InvalidRequest, NotFound)) as refused:
        catalog.submit(lab.tsm, catalog.Submission(**(submission.__dict__ | arguments)))
    assert what in str(refused.value)
    assert catalog.list_apps(lab.tsm) == []


def test_review_only_approved_apps_are_ordered(lab):
    lab.add_sp("transitco")
    se_id = _announced_se(lab)
    app_id = lab.app("transitco", "transit", approve=False)
    with pytest.raises(Conflict, match="pending"):
        jobs.order(lab.tsm, se_id, app_id)
    with pytest.raises(InvalidRequest, match="needs a reason"):
        catalog.review(lab.tsm, app_id, approve=False, reason="  ")
    assert catalog.app(lab.tsm, app_id).review == "pending"
    rejected = catalog.review(lab.tsm, app_id, approve=False, reason="no DAP signature")
    assert (rejected.review, rejected.review_reason, rejected.reviewed_by) == ("rejected", "no DAP signature", "alice")
    with pytest.raises(Conflict, match="rejected"):
        jobs.order(lab.tsm, se_id, app_id)
    with pytest.raises(NotFound):
        catalog.review(lab.tsm, "app-000000000000", approve=True)
    assert jobs.list_jobs(lab.tsm) == []

    approved = lab.app("transitco", "transit", instance_aid="F00000000101010102")
    job_id = jobs.order(lab.tsm, se_id, approved)
    assert [j.id for j in jobs.list_jobs(lab.tsm, se_id)] == [job_id]
    targeted = lab.app("transitco", "bank", approve=False, target_profiles=("other-profile",))
    with pytest.raises(Conflict):  # the review refuses a target profile that does not exist
        catalog.review(lab.tsm, targeted, approve=True)


def test_an_aid_of_another_sp_blocks_the_approval(lab):
    lab.add_sp("transitco")
    lab.add_sp("bankco")
    bank = lab.app("bankco", "bank")  # approved: instance F00000000201010101
    # another SP's app with the same instance AID, on another package
    clash = lab.app("transitco", "transit", approve=False, instance_aid=BANK_INSTANCE)
    with pytest.raises(Conflict, match=f"instance AID {BANK_INSTANCE}"):
        catalog.review(lab.tsm, clash, approve=True)
    # another SP's submission of the same package
    same_package = lab.app("transitco", "bank", approve=False, instance_aid="F00000000201010199", perso="")
    with pytest.raises(Conflict, match="another SP's package"):
        catalog.review(lab.tsm, same_package, approve=True)
    # an app that would take a security domain's AID
    sd_aid = lab.app("transitco", "transit", approve=False, instance_aid=ISD)
    _announced_se(lab)
    with pytest.raises(Conflict, match="security domain"):
        catalog.review(lab.tsm, sd_aid, approve=True)
    assert [a.review for a in catalog.list_apps(lab.tsm)] == ["approved", "pending", "pending", "pending"]
    assert catalog.app(lab.tsm, bank).review == "approved"
