"""Running a job: claim its SE, run each step after its probe, record what the card confirmed, release.

One job runs at a time per SE, for every worker process and thread: the job row's `running_se` is unique, and
the threads of one process (one worker id) also hold the SE in memory while they run it. On PostgreSQL
the claim is also a session advisory lock on the SE held for the whole run, so a worker that dies (kill -9,
a lost machine) releases it with its connection and the next run takes the job over; on SQLite (one machine) a
claim whose process is gone is taken over the same way.

Each step commits when the card confirmed it (a safe point). A run that stops anywhere (transport lost,
process killed, a refused command) leaves the job resumable: the next run probes the card before each step
that is not done. A step that cannot be resumed safely, or any typed error, ends the job IN_ERROR with the
reason; running it again resumes it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, cast

from sqlalchemy import Connection, CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from globalplatform.errors import GpError
from keyservice.errors import KeyServiceError
from tsm_core.catalog import service as catalog
from tsm_core.context import Tsm, now
from tsm_core.errors import Conflict, NotFound, TsmCoreError
from tsm_core.flows.errors import WrongCard
from tsm_core.jobs import outcome, perso
from tsm_core.jobs.link import CardLink
from tsm_core.jobs.models import ApduLogEntry, Job, JobStep
from tsm_core.jobs.plan import JobParams
from tsm_core.jobs.stepcontext import Probe, StepContext, Unresumable, refresh
from tsm_core.jobs.steps import STEPS
from tsm_core.jobs.views import JobView, job_view
from tsm_core.registry import service as registry
from tsm_core.registry.models import ServiceInstance
from tsm_core.registry.views import SeView
from tsm_core.transport.base import Transport
from tsm_core.transport.errors import TransportError
from tsm_core.webhooks import events

PENDING: Final = "pending"
RUNNING: Final = "running"
DONE: Final = "done"
IN_ERROR: Final = "in_error"
WAITING: Final = "waiting"
"""Queued for the device's next contact (a card-side lock or deletion of an SE that was not reachable)."""
CANCELLED: Final = "cancelled"
"""A waiting job made unnecessary before the device was reached (an unlock before the card-side lock ran)."""
STEP_STARTED: Final = "started"
"""A non-repeatable step that sent a command the card may keep (`StepContext.start`): when its probe cannot tell
what the card holds, a resumed run stops it as unresumable."""
RESUMABLE_ERRORS: Final = (TsmCoreError, GpError, KeyServiceError)
DEAD_HOLDER_WAIT: Final = 10.0
DEAD_HOLDER_POLL: Final = 0.05
"""Seconds to wait, polling, for the server to drop the lock of a worker process that died."""


class SeBusy(Conflict):
    """Another job of this SE is running in a live worker."""

    code = "se_busy"


def worker_id() -> str:
    """This process, as a job's `worker` names it: host and PID."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(worker: str) -> bool:
    """Whether the process a worker id names still runs (only this host's processes can be known)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_key(se_id: str) -> int:
    return int.from_bytes(hashlib.sha256(se_id.encode()).digest()[:8], "big", signed=True)


_running: set[str] = set()
"""SEs a run of this process holds: its threads share one worker id, so the claim cannot tell them apart."""
_running_lock = threading.Lock()


@contextmanager
def _in_process(se_id: str) -> Iterator[None]:
    """Hold the SE against the other threads of this process, or SeBusy."""
    with _running_lock:
        if se_id in _running:
            raise SeBusy(f"a job for SE {se_id} is running in this process")
        _running.add(se_id)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(se_id)


@contextmanager
def _se_lock(tsm: Tsm, se_id: str) -> Iterator[bool]:
    """PostgreSQL: a session advisory lock on the SE for the run (True), or SeBusy; SQLite: False (no lock)."""
    engine = tsm.sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        yield False
        return
    conn: Connection = engine.connect()
    try:
        _take_advisory_lock(tsm, conn, se_id)
        try:
            yield True
        finally:
            with suppress(Exception):
                conn.execute(select(func.pg_advisory_unlock(_lock_key(se_id))))
                conn.commit()
    finally:
        conn.close()


def _take_advisory_lock(tsm: Tsm, conn: Connection, se_id: str) -> None:
    """The SE's advisory lock, or SeBusy. When the worker the job row names is a process of this host that is
    gone (kill -9), its server backend may not have noticed yet: wait for it to let go (bounded)."""
    deadline = time.monotonic() + DEAD_HOLDER_WAIT
    while True:
        got = conn.execute(select(func.pg_try_advisory_lock(_lock_key(se_id)))).scalar_one()
        conn.commit()
        if got:
            return
        with tsm.sessions() as db:
            holder = db.execute(select(Job.worker).where(Job.running_se == se_id)).scalar_one_or_none()
        if holder is None or _alive(holder) or time.monotonic() > deadline:
            raise SeBusy(f"a job for SE {se_id} is running in another worker")
        time.sleep(DEAD_HOLDER_POLL)


def _claim(tsm: Tsm, job_id: str, me: str, locked: bool) -> Job:
    """Mark the job running for this worker; a stale claim on the SE (its worker gone) is cleared first."""
    with tsm.transaction() as db:
        job = db.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (tsm job list)")
        if job.state in (DONE, CANCELLED):
            raise Conflict(f"job {job_id} is {job.state}")
        holder = db.execute(select(Job).where(Job.running_se == job.se_id)).scalar_one_or_none()
        if holder is not None:
            if not locked and _alive(holder.worker) and holder.worker != me:
                raise SeBusy(f"job {holder.id} for SE {job.se_id} is running in {holder.worker}")
            holder.running_se = None
            db.flush()
        se_id = job.se_id
    try:
        with tsm.transaction() as db:
            claimed = db.execute(update(Job).where(Job.id == job_id, Job.running_se.is_(None))
                                 .values(running_se=Job.se_id, state=RUNNING, worker=me, error="",
                                         attempts=Job.attempts + 1, started_at=now()))
            if not cast(CursorResult[Any], claimed).rowcount:
                raise SeBusy(f"job {job_id} was claimed by another worker")
            job = db.get(Job, job_id)
            assert job is not None
            return job
    except IntegrityError:
        raise SeBusy(f"another job for SE {se_id} started meanwhile") from None


def _steps(tsm: Tsm, job_id: str) -> list[JobStep]:
    with tsm.sessions() as db:
        return list(db.execute(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.position)).scalars())


@dataclass
class _Recorder:
    """Writes step outcomes and the APDU log; each write is its own short transaction (a safe point)."""

    tsm: Tsm
    job_id: str
    link: CardLink

    def step(self, step: JobStep, state: str, detail: str, ctx: StepContext | None = None) -> None:
        """The step's outcome and APDU log, and (with `ctx`, for a step the card confirmed) the service
        instance's new state, in one transaction."""
        service = SERVICE_STATE.get(step.name) if ctx is not None and ctx.service_id is not None else None
        with self.tsm.transaction() as db:
            db.execute(update(JobStep).where(JobStep.id == step.id)
                       .values(state=state, detail=detail[:1000], finished_at=now()))
            self._log(db)
            if service is not None and ctx is not None:
                db.execute(update(ServiceInstance).where(ServiceInstance.id == ctx.service_id)
                           .values(state=service, updated_at=now()))
        step.state = state

    def finish(self, state: str, error: str = "") -> None:
        """The job's end, and what it means for its service instance (tsm_core/jobs/outcome.py)."""
        with self.tsm.transaction() as db:
            db.execute(update(Job).where(Job.id == self.job_id)
                       .values(state=state, error=error[:2000], running_se=None, finished_at=now()))
            self._log(db)
            job = db.get(Job, self.job_id)
            if job is not None:
                outcome.record(db, job, state, error[:2000], self.tsm.caller.name)
                events.job_ended(db, job)

    def _log(self, db: Session) -> None:
        db.add_all(ApduLogEntry(job_id=self.job_id, step=e.step, header=e.header, lc=e.lc, sw=e.sw,
                                micros=e.micros, at=e.at) for e in self.link.wire.take())


def _context(tsm: Tsm, job: Job, se: SeView, link: CardLink, given: dict[int, bytes]) -> StepContext:
    params = JobParams.loads(job.params)
    app = catalog.app(tsm, job.app_id) if job.app_id else None
    installs = app is not None and job.kind == "install-app"
    lfdb = catalog.load_file_data(tsm, app.load_file.id) if installs and app is not None else b""
    service = None
    if job.service_id is not None:
        with tsm.sessions() as db:
            service = db.get(ServiceInstance, job.service_id)
    dgis = perso.resolve(tsm, app, service, params, given) if installs and app is not None else []
    return StepContext(tsm, job.id, job.kind, params, se, link, app, lfdb, dgis, job.service_id)


KEEPS_REGISTRY: Final = frozenset({"topup", "backup"})
"""Jobs that talk to an application only: the card's Registry is not read again after them."""
SERVICE_STATE: Final = {"install": "installed", "personalize": "personalized", "activate": "active"}


def run(tsm: Tsm, job_id: str, transport: Transport, *, perso: dict[int, bytes] | None = None) -> JobView:
    """Run (or resume) a job against the card behind `transport`; returns the job as it ended.

    `perso` gives the sensitive DGIs of this card's personalization (`DGI!` in the app's profile): they are used
    for this run only, never stored.

    A typed error ends the job IN_ERROR with the error's line as its reason and is not raised: the job records
    it. SeBusy, NotFound and a done job are raised (nothing ran).
    """
    me = worker_id()
    with tsm.sessions() as db:
        found = db.get(Job, job_id)
        if found is None:
            raise NotFound(f"no job {job_id!r} (tsm job list)")
        se_id = found.se_id
    with _in_process(se_id), _se_lock(tsm, se_id) as locked:
        job = _claim(tsm, job_id, me, locked)
        se = registry.show(tsm, se_id)
        link = CardLink(tsm, job_id, transport, se.profile.i, bytes.fromhex(se.kdd))
        recorder = _Recorder(tsm, job_id, link)
        ctx: StepContext | None = None
        try:
            ctx = _context(tsm, job, se, link, perso or {})
            _run_steps(ctx, recorder, _steps(tsm, job_id))
            if job.kind not in KEEPS_REGISTRY:
                link.wire.step = "refresh"
                refresh(ctx)
            recorder.finish(DONE)
        except RESUMABLE_ERRORS as exc:
            if ctx is not None and not isinstance(exc, WrongCard):
                _refresh_after_error(ctx)
            recorder.finish(IN_ERROR, f"{getattr(exc, 'code', type(exc).__name__)}: {exc}")
        except BaseException as exc:
            with suppress(Exception):
                recorder.finish(IN_ERROR, f"{type(exc).__name__}: the run stopped")
            raise
        finally:
            link.close_channel()
    with tsm.sessions() as db:
        return job_view(db, job_id)


def _refresh_after_error(ctx: StepContext) -> None:
    """After a step failed having sent something, record what the card now reports, when it still answers, over
    a new channel (the failed one may be out of step with the card)."""
    if not ctx.link.wire.sent:
        return  # refused before any command: the card was not touched
    ctx.link.close_channel()
    ctx.channel_for = ("", "")
    ctx.link.wire.step = "refresh"
    with suppress(*RESUMABLE_ERRORS):
        refresh(ctx)


def _nothing() -> None:
    """`StepContext.start` outside a non-repeatable step: nothing to record."""


def _run_steps(ctx: StepContext, recorder: _Recorder, steps: list[JobStep]) -> None:
    pending = [step for step in steps if step.state not in ("done", "present")]
    for step in pending:
        check = STEPS[step.name].check
        if check is not None:
            check(ctx)
    for step in pending:
        action = STEPS[step.name]
        ctx.link.wire.step = step.name
        probe = action.probe(ctx)
        if probe is Probe.PRESENT:
            if action.after is not None:
                action.after(ctx)
                ctx.se = registry.show(ctx.tsm, ctx.se.id)
            recorder.step(step, "present", "the card already shows it", ctx)
            continue
        if probe is Probe.UNKNOWN and step.state == STEP_STARTED and not action.repeatable:
            raise Unresumable(f"step {step.name} was interrupted and the card cannot tell whether it completed; "
                              "the SE needs the service deleted and ordered again")
        if not action.repeatable:
            ctx.start = partial(recorder.step, step, STEP_STARTED, "sending")
        ctx.progress = 0
        try:
            detail = action.run(ctx)
        except RESUMABLE_ERRORS as exc:
            if step.state == STEP_STARTED and ctx.progress == 0 and not isinstance(exc, TransportError):
                recorder.step(step, "pending", f"the card took nothing: {exc}")  # it refused the first command
            raise
        finally:
            ctx.start = _nothing
        if action.after is not None:
            action.after(ctx)
        recorder.step(step, "done", detail, ctx)
        if action.after is not None:
            ctx.se = registry.show(ctx.tsm, ctx.se.id)  # only `after` changes what the registry says of the SE
