"""Job tables: a job, its steps (the plan, with their outcome) and the APDU log of its runs.

The APDU log keeps header, status word and timing; never a command's data (it may carry keys or perso data).
One job runs at a time per SE: `running_se` is unique (NULL when the job is not running), which the database
enforces for every worker process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class Job(Base):
    """One provisioning job for one SE."""

    __tablename__ = "tsm_jobs"
    __table_args__ = (UniqueConstraint("running_se"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    se_id: Mapped[str] = mapped_column(ForeignKey("tsm_secure_elements.id"), index=True)
    app_id: Mapped[str | None] = mapped_column(ForeignKey("tsm_apps.id"), nullable=True)
    service_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    """The service instance the job acts on (life-cycle jobs)."""
    params: Mapped[str] = mapped_column(Text, default="{}")
    """JSON parameters of the plan (target KVN, SD mode, ...)."""
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, running, done, in_error, or waiting (queued for the device's next contact)."""
    running_se: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The SE id while the job runs (unique: one running job per SE), else NULL."""
    worker: Mapped[str] = mapped_column(String(64), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobStep(Base):
    """One step of a job's plan and what happened to it."""

    __tablename__ = "tsm_job_steps"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("tsm_jobs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, done (run now), present (the card already showed its effect), failed."""
    detail: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApduLogEntry(Base):
    """One command a job sent: header, data length, status word and time; never the data."""

    __tablename__ = "tsm_apdu_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("tsm_jobs.id"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    header: Mapped[str] = mapped_column(String(8))
    lc: Mapped[int] = mapped_column(Integer)
    sw: Mapped[str] = mapped_column(String(4))
    micros: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
