"""Relay tables (docs/relay.md, "Sessions"): the phone relay's shared state, so that any web worker or node
answers any request of a phone and the job driving the session may run in yet another process.

A session is found by the SHA-256 of its id (the id is a bearer secret: never stored). Commands and responses
stay only while an exchange is in flight: an exchange row is deleted once the TSM side read its answer, and a
session with its exchanges once it is closed or expired and its grace period is over (`RelayStore.purge`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class RelaySessionRow(Base):
    """One relay session, bound to an SE (and the job it serves, the device that speaks for it)."""

    __tablename__ = "tsm_relay_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the session id, hex."""
    se_id: Mapped[str] = mapped_column(String(32), index=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The operation (job) the session serves, if any."""
    device_id: Mapped[str] = mapped_column(String(64), default="")
    """The device credential the session was opened for (empty: the session id is the only credential)."""
    state: Mapped[str] = mapped_column(String(16), default="open")
    """open, or closed (by the TSM side)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    contacted: Mapped[bool] = mapped_column(Boolean, default=False)
    """The phone has made a request."""
    told_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    """The phone was answered `relay_session_closed`."""
    atr: Mapped[str] = mapped_column(String(66), default="")
    """The ATR the phone reported last, hex."""
    answered_seq: Mapped[int] = mapped_column(Integer, default=0)
    """The phone's last request answered; its answer is `answer` (JSON), re-sent to a repeated request."""
    answer: Mapped[str] = mapped_column(Text, default="")
    reported_seq: Mapped[int] = mapped_column(Integer, default=0)
    """The phone's last request whose report (responses, status) was taken."""
    next_batch: Mapped[int] = mapped_column(Integer, default=1)


class RelayExchange(Base):
    """One batch of a session: queued by the TSM side, delivered in the answer to request `delivered_seq`,
    answered by the phone's next request, or abandoned by the TSM side after its answer timeout."""

    __tablename__ = "tsm_relay_exchanges"
    __table_args__ = (UniqueConstraint("session_id", "batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("tsm_relay_sessions.id", ondelete="CASCADE"), index=True)
    batch: Mapped[int] = mapped_column(Integer)
    target_aid: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The AID the phone opens a channel to, hex (None: the channel already open)."""
    commands: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of {"apdu", "expect"}."""
    state: Mapped[str] = mapped_column(String(16), default="queued")
    """queued, delivered, answered, or abandoned."""
    delivered_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="")
    """The phone's status for it (docs/relay.md, PhoneStatus)."""
    responses: Mapped[str] = mapped_column(Text, default="[]")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
