"""People: enrolment (argon2id, TOTP secret sealed in the HSM), authentication (password AND code, replay,
lock-out), signed rows a database administrator cannot change or put back, the bootstrap (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from keyservice.approvals import ApprovalSet
from keyservice.errors import (
    AccountLocked,
    ApprovalRequired,
    AuthenticationFailed,
    BootstrapClosed,
    BootstrapIncomplete,
    PersonRecordForged,
    TotpReplayed,
    WeakPassword,
)
from keyservice.people import LOCK_AFTER, LOCK_SECONDS, Credentials, Role
from keyservice.people_models import PersonRecord
from tests.conftest import core_of, make_service
from tests.keyservice.peoplekit import PASSWORD, officer, team


@pytest.fixture
def prod(settings_factory, db_url):
    """A production token (not a test token)."""
    return team(make_service(*settings_factory(db_url, False)))


def _exec(service, stmt, params=None):
    with core_of(service).sessions() as db, db.begin():
        db.execute(stmt, params or {})


def test_enrol_then_authenticate_with_password_and_code(prod, db_url):
    prod.enroll("alice", Role.CUSTODIAN)
    who = prod.service.people.authenticate("alice", prod.creds("alice"))
    assert (who.name, who.role, who.at) == ("alice", Role.CUSTODIAN, prod.clock.now)
    with core_of(prod.service).sessions() as db:
        row = db.get(PersonRecord, "alice")
        assert row.password_hash.startswith("$argon2id$")
        dump = " ".join(str(v) for table in ("ks_people", "ks_audit")
                        for r in db.execute(text(f"SELECT * FROM {table}")) for v in r)  # noqa: S608
    secret = prod.secrets["alice"]
    assert PASSWORD not in dump and secret not in dump and secret.lower() not in dump
    if db_url.startswith("sqlite"):
        raw = Path(db_url.removeprefix("sqlite:///")).read_bytes()
        assert PASSWORD.encode() not in raw and secret.encode() not in raw
    last = prod.service.audit.records(1)[0]
    assert (last.actor, last.operation, last.outcome, last.target) == ("alice", "authenticate", "ok", "person:alice")


def test_reprs_hide_the_secrets(prod):
    enrollment = prod.service.people.enroll(officer("console"), "bob", Role.OFFICER, PASSWORD)
    creds = Credentials(PASSWORD, "123456")
    for shown in (repr(creds), str(creds), repr(enrollment), str(enrollment)):
        assert PASSWORD not in shown and "123456" not in shown and enrollment.secret not in shown
    assert enrollment.provisioning_uri.startswith("otpauth://totp/") and enrollment.secret in \
        enrollment.provisioning_uri


@pytest.mark.parametrize("password", ["short", "eleven-char", "Alexander-The-Great"])
def test_password_policy(prod, password):
    with pytest.raises(WeakPassword):
        prod.service.people.enroll(officer("console"), "alexander-the-great", Role.OFFICER, password)


def test_wrong_password_code_or_name_fail_alike(prod):
    prod.enroll("alice")
    people = prod.service.people
    tries = [("alice", Credentials("wrong password!", prod.code("alice"))),
             ("alice", Credentials(PASSWORD, "000000" if prod.code("alice") != "000000" else "111111")),
             ("alice", Credentials(PASSWORD, prod.code("alice", prod.clock.now - 120))),  # expired code
             ("nobody", Credentials(PASSWORD, prod.code("alice"))),
             ("bad\nname", Credentials(PASSWORD, prod.code("alice")))]
    messages = set()
    for name, creds in tries:
        with pytest.raises(AuthenticationFailed) as info:
            people.authenticate(name, creds)
        assert type(info.value) is AuthenticationFailed
        messages.add(str(info.value))
    assert len(messages) == 1
    records = prod.service.audit.records(5)
    assert all(r.outcome == "refused" and r.operation == "authenticate" for r in records)
    assert all(PASSWORD not in r.detail and "wrong password" not in r.detail for r in records)


def test_a_code_is_accepted_once(prod):
    prod.enroll("alice")
    code = prod.code("alice")
    prod.service.people.authenticate("alice", Credentials(PASSWORD, code))
    with pytest.raises(TotpReplayed):
        prod.service.people.authenticate("alice", Credentials(PASSWORD, code))
    prod.clock.tick(10)  # the same time step: still the used code
    with pytest.raises(TotpReplayed):
        prod.service.people.authenticate("alice", prod.creds("alice"))
    prod.clock.tick(30)
    prod.service.people.authenticate("alice", prod.creds("alice"))


def test_lock_out_and_its_expiry(prod):
    prod.enroll("alice")
    for _ in range(LOCK_AFTER):
        with pytest.raises(AuthenticationFailed):
            prod.service.people.authenticate("alice", prod.creds("alice", "wrong password!"))
    with pytest.raises(AccountLocked):
        prod.service.people.authenticate("alice", prod.creds("alice"))  # right credentials, still locked
    assert [p.locked for p in prod.service.people.list_people()] == [True]
    prod.clock.tick(LOCK_SECONDS + 1)
    assert prod.service.people.authenticate("alice", prod.creds("alice")).name == "alice"
    assert prod.service.audit.records(2)[1].detail == "account_locked"


def test_a_changed_row_is_refused(prod):
    prod.enroll("alice", Role.AUDITOR)
    _exec(prod.service, update(PersonRecord).where(PersonRecord.name == "alice").values(role="officer"))
    with pytest.raises(PersonRecordForged):
        prod.service.people.authenticate("alice", prod.creds("alice"))
    assert [p.genuine for p in prod.service.people.list_people()] == [False]


def test_a_swapped_password_hash_is_refused(prod):
    prod.enroll("alice")
    prod.enroll("mallory")
    with core_of(prod.service).sessions() as db:
        theirs = db.get(PersonRecord, "mallory").password_hash
    _exec(prod.service, update(PersonRecord).where(PersonRecord.name == "alice").values(password_hash=theirs))
    with pytest.raises(PersonRecordForged):
        prod.service.people.authenticate("alice", prod.creds("alice"))


def test_a_removed_person_put_back_from_a_backup_is_refused(prod):
    prod.enroll("alice")
    with core_of(prod.service).sessions() as db:
        before = {c.name: getattr(db.get(PersonRecord, "alice"), c.name) for c in PersonRecord.__table__.columns}
    prod.service.people.remove(officer("console"), "alice")  # bootstrap open: no approvals needed
    with pytest.raises(AuthenticationFailed):
        prod.service.people.authenticate("alice", prod.creds("alice"))
    _exec(prod.service, update(PersonRecord).where(PersonRecord.name == "alice").values(**before))
    with pytest.raises(PersonRecordForged):
        prod.service.people.authenticate("alice", prod.creds("alice"))


def test_bootstrap_closes_with_two_officers_then_enrolment_needs_approvals(prod):
    people = prod.service.people
    prod.enroll("alice")
    prod.enroll("dave", Role.AUDITOR)
    with pytest.raises(BootstrapIncomplete):
        people.close_bootstrap("alice", prod.creds("alice"))
    prod.clock.tick()
    prod.enroll("bob")
    prod.enroll("carol")
    assert people.bootstrap_open()
    people.close_bootstrap("alice", prod.creds("alice"))
    prod.clock.tick()
    assert not people.bootstrap_open()
    assert prod.service.audit.records(1)[0].operation == "bootstrap-close"
    with pytest.raises(BootstrapClosed):
        people.close_bootstrap("bob", prod.creds("bob"))
    prod.clock.tick()
    with pytest.raises(ApprovalRequired, match="tsm ceremony start"):
        people.enroll(officer("alice"), "erin", Role.OFFICER, PASSWORD)
    spec = prod.service.approvals.describe  # the one builder both sides use
    from keyservice import operations

    wanted = operations.enroll("erin", "officer", None)
    assert spec(wanted.operation, **dict(wanted.fields)).digest == wanted.digest
    approvals = ApprovalSet("alice", (prod.approve(wanted, "bob", "alice"), prod.approve(wanted, "carol", "alice")))
    people.enroll(officer("alice"), "erin", Role.OFFICER, PASSWORD, approvals=approvals)
    assert prod.service.audit.records(1)[0].detail == "role=officer; approved by bob, carol"
    with core_of(prod.service).sessions() as db:
        assert len(db.execute(select(text("nonce")).select_from(text("ks_approvals_used"))).all()) == 2
