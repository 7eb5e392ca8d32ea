"""Webhook endpoints of service providers and the deliveries queued for them (docs/api.md, "Webhooks").

An endpoint's signing secret is stored sealed by the key service (AES-GCM under the issuer's HSM-resident data key,
the endpoint's id as context: `KeyService.apps.seal`), never in clear.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class WebhookEndpoint(Base):
    """An SP's URL that receives signed events."""

    __tablename__ = "tsm_webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sp_id: Mapped[int] = mapped_column(ForeignKey("tsm_tenants.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_sealed: Mapped[str] = mapped_column(Text)
    """Hex: the signing secret sealed by the key service."""
    key_label: Mapped[str] = mapped_column(String(128))
    """The data key that sealed it."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookDelivery(Base):
    """One event for one endpoint: queued, retried with back-off until the endpoint answers 2xx."""

    __tablename__ = "tsm_webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("tsm_webhook_endpoints.id"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    """The JSON document sent, exactly as signed."""
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, delivered or failed (gave up after the last attempt)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
