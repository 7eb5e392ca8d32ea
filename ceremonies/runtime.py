"""The ceremony runtime: start, join, sign step by step, collect approvals, record exceptions, abort, time out.

Rules (docs/ceremonies.md): an officer starts a ceremony and is its requester (joined as an officer); a person
joins in one role only and never fills two roles in one ceremony; steps are signed in order, each by a participant
in the role it names; a custodian signs one component step only; the KCV is confirmed by another officer than the
requester; the privileged steps are signed by the requester, with the approvals other officers gave for that
exact step (`approve`: the key service re-authenticates the approver and MACs the approval; it never lets the
requester approve their own request, and verifies the set, its quorum included, when the step runs).

Crash safety: a step's effect is made by the key service (its own transactions, crash-safe there) and the step's
sign-off commits after it. A step interrupted anywhere (kill -9) is simply signed again: what the killed run left
half-done for the step's key is finished first (`KeyService.components.resume`: an object without its record
destroyed, a recorded destruction completed), then every action finds what the interrupted run made and goes on
(ceremonies/actions.py); an abort killed half-way is aborted again. Nothing made by a ceremony is usable before its
activation step; aborting (by an officer, or on the first touch after the time limit) discards the sealed
components and destroys every never-activated key the ceremony made (`KeyService.components.discard`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ceremonies import actions, quorum
from ceremonies.definitions import Definition, Step, definition, shipped
from ceremonies.errors import (
    CeremonyClosed,
    CeremonyError,
    CeremonyNotFound,
    DutiesNotSegregated,
    InvalidCeremony,
    OutOfTurn,
)
from ceremonies.models import ApprovalRecord, Ceremony, Event, Participant, StepRecord
from ceremonies.views import ApprovalView, CeremonyView, EventView, Person, SignResult, StepView
from keyservice.errors import KeyServiceError
from keyservice.people import Credentials
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService

OPEN, COMPLETED, ABORTED = "open", "completed", "aborted"
_APPROVAL_FAILURES = frozenset({"approval_expired", "approval_replayed", "approval_invalid"})


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Runtime:
    """Ceremonies over one key service and database; `clock` is injected by tests, `planner` by the edge."""

    def __init__(self, ks: KeyService, sessions: sessionmaker[Session], *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 planner: actions.Planner | None = None) -> None:
        self.ks, self.sessions, self.clock, self.planner = ks, sessions, clock, planner

    # ---- reading ------------------------------------------------------------------------------------------

    @staticmethod
    def types() -> list[Definition]:
        return list(shipped().values())

    def list_ceremonies(self) -> list[CeremonyView]:
        with self.sessions() as db:
            ids = list(db.execute(select(Ceremony.id).order_by(Ceremony.created_at)).scalars())
        return [self.show(cid) for cid in ids]

    def show(self, cid: str) -> CeremonyView:
        with self.sessions() as db:
            c = self._get(db, cid)
            steps = list(db.execute(select(StepRecord).where(StepRecord.ceremony_id == cid)
                                    .order_by(StepRecord.number)).scalars())
            plan = self._plan(c)
            people = {p.name: p.role for p in db.execute(select(Participant).where(
                Participant.ceremony_id == cid).order_by(Participant.joined_at)).scalars()}
            approvals = [ApprovalView(a.step, a.approver, _utc(a.at)) for a in db.execute(
                select(ApprovalRecord).where(ApprovalRecord.ceremony_id == cid).order_by(ApprovalRecord.at))
                .scalars()]
            events = [EventView(_utc(e.at), e.kind, e.actor, e.step, e.detail) for e in db.execute(
                select(Event).where(Event.ceremony_id == cid).order_by(Event.id)).scalars()]
            views = [StepView(s.number, s.role, s.action, s.title, plan[s.number - 1].checks,
                              plan[s.number - 1].approval, s.signed_by,
                              _utc(s.signed_at) if s.signed_at else None, json.loads(s.output)) for s in steps]
            nxt = next((s.number for s in steps if s.signed_by is None), None) if c.state == OPEN else None
            return CeremonyView(c.id, c.kind, definition(c.kind).title, c.state, c.requester, json.loads(c.params),
                                _utc(c.created_at), _utc(c.expires_at), _utc(c.ended_at) if c.ended_at else None,
                                c.abort_reason, people, views, nxt, approvals, json.loads(c.outputs), events,
                                c.evidence_sha256)

    # ---- the life of a ceremony -----------------------------------------------------------------------------

    def start(self, person: Person, kind: str, params: dict[str, str]) -> CeremonyView:
        """An officer starts a ceremony of `kind` and becomes its requester (joined as an officer)."""
        found = definition(kind)
        if person.role != "officer":
            raise DutiesNotSegregated(f"{person.name} is {person.role}: a ceremony is started by an officer")
        values = found.resolve(params)
        plan = found.plan(values)
        now = self.clock()
        cid = f"cer-{secrets.token_hex(6)}"
        with self.sessions() as db, db.begin():
            db.add(Ceremony(id=cid, kind=kind, params=json.dumps(values, sort_keys=True), state=OPEN,
                            requester=person.name, created_at=now, updated_at=now,
                            expires_at=now + timedelta(minutes=found.time_limit_minutes), outputs="{}",
                            abort_reason="", evidence_sha256=""))
            db.flush()
            db.add_all(StepRecord(ceremony_id=cid, number=s.number, role=s.role, action=s.action, title=s.title,
                                  output="{}") for s in plan)
            db.add(Participant(ceremony_id=cid, name=person.name, role="officer", joined_at=now))
            self._event(db, cid, "start", person.name, None, f"{kind} {json.dumps(values, sort_keys=True)}")
        return self.show(cid)

    def join(self, cid: str, person: Person, role: str) -> CeremonyView:
        """`person` joins in `role`: their enrolled role, one of the ceremony's, and their only one in it."""
        with self.sessions() as db, db.begin():
            c = self._open(db, cid, person)
            if role not in definition(c.kind).roles:
                raise InvalidCeremony(f"{c.kind} has no role {role!r} (roles: {', '.join(definition(c.kind).roles)})")
            if person.role != role:
                raise DutiesNotSegregated(f"{person.name} is enrolled as {person.role}, not {role}")
            existing = db.execute(select(Participant).where(Participant.ceremony_id == cid,
                                                            Participant.name == person.name)).scalar_one_or_none()
            if existing is not None:
                raise DutiesNotSegregated(f"{person.name} already takes part in {cid} as {existing.role}: one "
                                          "person never fills two roles in one ceremony")
            db.add(Participant(ceremony_id=cid, name=person.name, role=role, joined_at=self.clock()))
            self._event(db, cid, "join", person.name, None, role)
        return self.show(cid)

    def sign(self, cid: str, number: int, person: Person, inputs: dict[str, str] | None = None) -> SignResult:
        """`person` signs step `number`: the step's effect is made, then its sign-off recorded."""
        with self.sessions() as db:
            c = self._open(db, cid, person)
            step = self._turn(db, c, number, person)
            approvals = [a.token for a in db.execute(select(ApprovalRecord).where(
                ApprovalRecord.ceremony_id == cid, ApprovalRecord.step == number)).scalars()]
            params, outputs = json.loads(c.params), json.loads(c.outputs)
        ctx = actions.Context(self.ks, cid, params, outputs, step, person, dict(inputs or {}),
                              quorum.approval_set(c.requester, approvals) if approvals else None, self.clock(),
                              self.planner)
        try:
            actions.resume(ctx)
            output = actions.ACTIONS[step.action](ctx) if step.action in actions.ACTIONS else \
                quorum.ACTIONS[step.action](ctx)
        except (KeyServiceError, CeremonyError) as exc:
            self._exception(cid, step, person, exc)
            raise
        with self.sessions() as db, db.begin():
            c = self._get(db, cid)
            rec = db.execute(select(StepRecord).where(StepRecord.ceremony_id == cid,
                                                      StepRecord.number == number)).scalar_one()
            now = self.clock()
            rec.signed_by, rec.signed_at, rec.output = person.name, now, json.dumps(output, sort_keys=True)
            c.outputs = json.dumps({**json.loads(c.outputs), **output}, sort_keys=True)
            c.updated_at = now
            self._event(db, cid, "sign", person.name, number, step.title)
            db.execute(delete(ApprovalRecord).where(ApprovalRecord.ceremony_id == cid,
                                                    ApprovalRecord.step == number))
            if number == len(self._plan(c)):
                c.state, c.ended_at = COMPLETED, now
                self._event(db, cid, "complete", person.name, None, "")
        return SignResult(self.show(cid), ctx.shown)

    def approve(self, cid: str, name: str, creds: Credentials) -> CeremonyView:
        """`name` re-authenticates with the key service and approves the next privileged step of `cid`."""
        with self.sessions() as db:
            c = self._get(db, cid)
            if c.state != OPEN:
                raise CeremonyClosed(f"{cid} is {c.state}")
            if self.clock() > _utc(c.expires_at):
                raise CeremonyClosed(f"{cid} passed its time limit: the next participant's touch aborts it")
            if name == c.requester:
                raise DutiesNotSegregated(f"{name} requested {cid} and cannot approve it")
            signed = {s.number for s in db.execute(select(StepRecord).where(
                StepRecord.ceremony_id == cid, StepRecord.signed_by.is_not(None))).scalars()}
            pending = [s for s in self._plan(c) if s.approval and s.number not in signed]
            if not pending:
                raise InvalidCeremony(f"{cid} has no step left that needs approvals")
            step = pending[0]
            ctx = actions.Context(self.ks, cid, json.loads(c.params), json.loads(c.outputs), step, None, {}, None,
                                  self.clock())
        digest = quorum.digest(ctx)
        token = quorum.approve(self.ks, digest, name, creds, c.requester, self.clock())
        with self.sessions() as db, db.begin():
            db.execute(delete(ApprovalRecord).where(ApprovalRecord.ceremony_id == cid,
                                                    ApprovalRecord.step == step.number,
                                                    ApprovalRecord.approver == name))
            db.add(ApprovalRecord(ceremony_id=cid, step=step.number, approver=name, at=self.clock(), digest=digest,
                                  token=token))
            self._event(db, cid, "approve", name, step.number, f"operation {digest}")
        return self.show(cid)

    def abort(self, cid: str, person: Person, reason: str) -> CeremonyView:
        """An officer aborts: the sealed components are deleted, never-activated keys destroyed (audited)."""
        if person.role != "officer":
            raise DutiesNotSegregated(f"{person.name} is {person.role}: an officer aborts a ceremony")
        if not reason.strip() or not reason.isprintable():
            raise InvalidCeremony("an abort needs a reason (printable text)")
        with self.sessions() as db:
            c = self._get(db, cid)
            if c.state != OPEN:
                raise CeremonyClosed(f"{cid} is {c.state}")
        self._abort(cid, person, reason)
        return self.show(cid)

    # ---- internals ------------------------------------------------------------------------------------------

    def _abort(self, cid: str, person: Person, reason: str) -> None:
        with self.sessions() as db:
            c = self._get(db, cid)
            params = json.loads(c.params)
            made = [params.get(s.spec.key, "") for s in self._plan(c) if s.action in actions.MAKERS]
        destroyed = self.ks.components.discard(Request(person.caller, Purpose.KEY_MANAGEMENT, cid), cid,
                                               [label for label in made if label])
        with self.sessions() as db, db.begin():
            c = self._get(db, cid)
            c.state, c.ended_at, c.abort_reason = ABORTED, self.clock(), reason
            detail = reason + (f"; destroyed never-activated {', '.join(destroyed)}" if destroyed else "")
            self._event(db, cid, "abort", person.name, None, detail)
            db.execute(delete(ApprovalRecord).where(ApprovalRecord.ceremony_id == cid))

    def _exception(self, cid: str, step: Step, person: Person, exc: Exception) -> None:
        code = getattr(exc, "code", "error")
        with self.sessions() as db, db.begin():
            self._event(db, cid, "exception", person.name, step.number, f"{code}: {exc}")
            if code in _APPROVAL_FAILURES:  # spent or stale approvals: collect new ones
                db.execute(delete(ApprovalRecord).where(ApprovalRecord.ceremony_id == cid,
                                                        ApprovalRecord.step == step.number))
            kind = db.execute(select(Ceremony.kind).where(Ceremony.id == cid)).scalar_one()
        if definition(kind).handling(code).handling == "abort":
            self._abort(cid, person, f"step {step.number}: {code}")

    def _get(self, db: Session, cid: str) -> Ceremony:
        c = db.get(Ceremony, cid)
        if c is None:
            raise CeremonyNotFound(f"no ceremony {cid!r}")
        return c

    def _touch(self, cid: str, person: Person) -> None:
        """Abort a ceremony past its time limit on this touch (CeremonyClosed)."""
        with self.sessions() as db:
            c = self._get(db, cid)
            late = c.state == OPEN and self.clock() > _utc(c.expires_at)
        if late:
            self._abort(cid, person, "timed out")
            raise CeremonyClosed(f"{cid} passed its time limit and was aborted")

    def _open(self, db: Session, cid: str, person: Person) -> Ceremony:
        self._touch(cid, person)
        c = self._get(db, cid)
        if c.state != OPEN:
            raise CeremonyClosed(f"{cid} is {c.state}" + (f" ({c.abort_reason})" if c.abort_reason else ""))
        return c

    @staticmethod
    def _plan(c: Ceremony) -> list[Step]:
        return definition(c.kind).plan(json.loads(c.params))

    def _turn(self, db: Session, c: Ceremony, number: int, person: Person) -> Step:
        """The step `person` may sign now (OutOfTurn, DutiesNotSegregated otherwise)."""
        records = list(db.execute(select(StepRecord).where(StepRecord.ceremony_id == c.id)
                                  .order_by(StepRecord.number)).scalars())
        nxt = next((s.number for s in records if s.signed_by is None), None)
        if number != nxt:
            raise OutOfTurn(f"step {number} is not the next step of {c.id} (next: {nxt})")
        step = self._plan(c)[number - 1]
        joined = db.execute(select(Participant.role).where(Participant.ceremony_id == c.id,
                                                           Participant.name == person.name)).scalar_one_or_none()
        if joined != step.role:
            raise OutOfTurn(f"step {number} is signed by a participant in the role {step.role}; "
                            f"{person.name} is {joined or 'not a participant'}")
        if step.approval and person.name != c.requester:
            raise OutOfTurn(f"step {number} is privileged: the requester {c.requester} signs it")
        if step.action == "confirm-kcv" and person.name == c.requester:
            raise DutiesNotSegregated(f"the KCV is confirmed by another officer than the requester {c.requester}")
        if step.index:
            repeated = [r for r in records if r.action == step.action and r.signed_by == person.name]
            if repeated:
                raise DutiesNotSegregated(f"{person.name} already holds component of step {repeated[0].number}: "
                                          "each component goes to another custodian")
        return step

    def _event(self, db: Session, cid: str, kind: str, actor: str, step: int | None, detail: str) -> None:
        db.add(Event(ceremony_id=cid, at=self.clock(), kind=kind, actor=actor, step=step, detail=detail))
