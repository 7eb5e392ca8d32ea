"""Life-cycle tables: each service instance's history, and the two-phase top-up orders of transit purses.

No secrets: a card number is kept sealed by the key service (ServiceInstance.card_number_sealed) and masked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class ServiceEvent(Base):
    """One transition (or attempt) in a service instance's life: who, what, from which state to which."""

    __tablename__ = "tsm_service_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("tsm_service_instances.id"), index=True)
    operation: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str] = mapped_column(String(16), default="")
    to_state: Mapped[str] = mapped_column(String(16), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(128), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TopUp(Base):
    """A top-up order: recorded first, then credited by a job that reads the purse before it sends anything."""

    __tablename__ = "tsm_topups"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("tsm_service_instances.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    amount: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="ordered")
    """ordered, credited or cancelled."""
    counter_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The purse's top-up counter read just before the credit command was first sent (its MAC covers it)."""
    balance_before: Mapped[int | None] = mapped_column(Integer, nullable=True)
    balance_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    counter_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
