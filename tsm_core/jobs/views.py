"""What the job engine tells its callers: jobs with their steps and APDU log, as plain frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tsm_core.errors import NotFound
from tsm_core.jobs.models import ApduLogEntry, Job, JobStep


@dataclass(frozen=True)
class StepView:
    """One step of a job's plan and its outcome."""

    name: str
    state: str
    detail: str
    finished_at: datetime | None


@dataclass(frozen=True)
class ApduView:
    """One logged command: header, data length, status word and time (never the data)."""

    step: str
    header: str
    lc: int
    sw: str
    micros: int


@dataclass(frozen=True)
class JobView:
    """A job, its steps and (for `show`) its APDU log."""

    id: str
    kind: str
    se_id: str
    app_id: str | None
    state: str
    error: str
    attempts: int
    worker: str
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    steps: tuple[StepView, ...]
    apdus: tuple[ApduView, ...] = ()


def job_view(db: Session, job_id: str, *, apdus: bool = False) -> JobView:
    """The job with its steps (and APDU log when asked), or NotFound."""
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r} (tsm job list)")
    steps = db.execute(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.position)).scalars()
    log: tuple[ApduView, ...] = ()
    if apdus:
        rows = db.execute(select(ApduLogEntry).where(ApduLogEntry.job_id == job_id).order_by(ApduLogEntry.id))
        log = tuple(ApduView(r.step, r.header, r.lc, r.sw, r.micros) for r in rows.scalars())
    return JobView(job.id, job.kind, job.se_id, job.app_id, job.state, job.error, job.attempts, job.worker,
                   job.requested_by, job.created_at, job.started_at, job.finished_at,
                   tuple(StepView(s.name, s.state, s.detail, s.finished_at) for s in steps), log)
