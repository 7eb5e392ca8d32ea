"""Secure channels opened for TSM components over the API: one row per channel handle, so any worker serves the
next call (docs/api.md, "Key service").

A row holds only what crossed the wire or follows from it (challenges, sequence counter, KDD, MAC chaining values,
counters) and the labels of the static keys; never a session key: each call derives the session keys again in the
HSM (keyservice.channels.ChannelState).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class KeyChannel(Base):
    """One channel handle: bound to its component, SE and purpose; `version` orders concurrent calls."""

    __tablename__ = "tsm_key_channels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(80))
    """`component:NAME`: only that component's keys reach it."""
    purpose: Mapped[str] = mapped_column(String(32))
    se_id: Mapped[str] = mapped_column(String(32))
    sd_aid: Mapped[str] = mapped_column(String(32))
    kvn: Mapped[int] = mapped_column(Integer)
    keys: Mapped[str] = mapped_column(String(400))
    """The static key labels (a KMC, or ENC MAC DEK), separated by spaces."""
    diversification: Mapped[str] = mapped_column(String(8))
    scp: Mapped[str] = mapped_column(String(2), default="")
    security_level: Mapped[int] = mapped_column(Integer)
    i: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    """initializing (INITIALIZE UPDATE given, card answer awaited) or open."""
    host_challenge: Mapped[str] = mapped_column(String(64))
    card_challenge: Mapped[str] = mapped_column(String(64), default="")
    sequence_counter: Mapped[str] = mapped_column(String(16), default="")
    kdd: Mapped[str] = mapped_column(String(64), default="")
    chaining: Mapped[str] = mapped_column(String(64), default="")
    r_chaining: Mapped[str] = mapped_column(String(32), default="")
    counter: Mapped[int] = mapped_column(Integer, default=0)
    rmac_command: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
