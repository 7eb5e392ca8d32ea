"""Metering and tariff tables (docs/billing.md). Amounts are integers in minor units (cents), never floats.

Both tables are append-only: an event is never changed or deleted, and a tariff change is a new version, so
that any month's statement can be computed again from them and comes out the same.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class MeteringEvent(Base):
    """One billable fact: a completed download/install or a life-cycle operation, for one SP."""

    __tablename__ = "tsm_metering_events"
    __table_args__ = (UniqueConstraint("job_id", "operation", name="uq_tsm_metering_events_job_op"),
                      Index("ix_tsm_metering_events_sp_at", "sp_id", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sp_id: Mapped[int] = mapped_column(ForeignKey("tsm_tenants.id"))
    operation: Mapped[str] = mapped_column(String(24))
    """One of `tsm_core.billing.OPERATIONS`."""
    app_id: Mapped[str] = mapped_column(String(32), default="")
    se_id: Mapped[str] = mapped_column(String(32), default="")
    se_kind: Mapped[str] = mapped_column(String(16), default="")
    """The device kind of the SE (phone, wearable, iot, card)."""
    service_id: Mapped[str] = mapped_column(String(32), default="")
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The job that did it (unique with the operation: a resumed job is metered once); NULL for registry-only
    operations."""
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When it happened, stored in UTC (the month boundaries of the reports are UTC)."""


class TariffVersion(Base):
    """One version of what an SP pays: a one-time onboarding fee, a monthly hosting fee, a price per download and
    per operation. In force from `effective_from` until the next version of the SP; never updated."""

    __tablename__ = "tsm_tariff_versions"
    __table_args__ = (Index("ix_tsm_tariff_versions_sp_from", "sp_id", "effective_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sp_id: Mapped[int] = mapped_column(ForeignKey("tsm_tenants.id"))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When it was set (UTC); it prices every month that ends after it, until a later version does."""
    set_by: Mapped[str] = mapped_column(String(128), default="")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    onboarding: Mapped[int] = mapped_column(Integer, default=0)
    monthly: Mapped[int] = mapped_column(Integer, default=0)
    per_download: Mapped[int] = mapped_column(Integer, default=0)
    per_operation: Mapped[str] = mapped_column(Text, default="{}")
    """JSON object: operation name -> price in minor units (priced operations only, names sorted)."""
