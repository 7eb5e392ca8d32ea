"""The API-key table: an id for lookup, the owner, the operations allowed, and a SHA-256 of the secret.

Never the key itself: it is shown once when created (docs/api.md, "Authentication").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class ApiKey(Base):
    """One machine credential; a revoked key keeps its row (`revoked_at` set) so its id is never reused."""

    __tablename__ = "tsm_api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))
    """sp, vendor, device or component."""
    owner_name: Mapped[str] = mapped_column(String(64))
    """The SP's or vendor's name, the device's SE id, or the TSM component's name."""
    scopes: Mapped[str] = mapped_column(String(512))
    """The operations allowed, separated by spaces."""
    purposes: Mapped[str] = mapped_column(String(256), default="")
    """A component's key-service purposes (keyservice.policy.Purpose), separated by spaces; empty for others."""
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
