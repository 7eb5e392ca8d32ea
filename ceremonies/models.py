"""Database records of the ceremonies (migration 0009): a ceremony, its participants, its steps with who signed
them, its events (the transcript's source) and the approvals collected for its privileged steps. No key
material: KCVs, labels and names only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class Ceremony(Base):
    """One run of a ceremony definition."""

    __tablename__ = "cer_ceremonies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[str] = mapped_column(Text)
    """The parameters given at start, JSON."""
    state: Mapped[str] = mapped_column(String(16))
    requester: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    abort_reason: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[str] = mapped_column(Text, default="{}")
    """What the steps produced (labels, KCVs, job ids), JSON."""
    evidence_sha256: Mapped[str] = mapped_column(String(64), default="")


class Participant(Base):
    """A person who joined a ceremony in one role (one role per person per ceremony)."""

    __tablename__ = "cer_participants"
    __table_args__ = (UniqueConstraint("ceremony_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ceremony_id: Mapped[str] = mapped_column(String(32), ForeignKey("cer_ceremonies.id"))
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StepRecord(Base):
    """One numbered step of a ceremony and its sign-off."""

    __tablename__ = "cer_steps"
    __table_args__ = (UniqueConstraint("ceremony_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ceremony_id: Mapped[str] = mapped_column(String(32), ForeignKey("cer_ceremonies.id"))
    number: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    signed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    output: Mapped[str] = mapped_column(Text, default="{}")


class Event(Base):
    """One line of the transcript: start, join, sign, approve, exception, abort, complete, evidence."""

    __tablename__ = "cer_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ceremony_id: Mapped[str] = mapped_column(String(32), ForeignKey("cer_ceremonies.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class ApprovalRecord(Base):
    """A key-service approval collected for one privileged step, kept until the step uses it."""

    __tablename__ = "cer_approvals"
    __table_args__ = (UniqueConstraint("ceremony_id", "step", "approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ceremony_id: Mapped[str] = mapped_column(String(32), ForeignKey("cer_ceremonies.id"))
    step: Mapped[int] = mapped_column(Integer)
    approver: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    digest: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    """The approval as the key service serialised it (MACed, single-use, time-limited)."""
