"""Database records of the key service: the key inventory, key intents and the audit chain (no key material)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class KeyRecord(Base):
    """One HSM key object as the inventory knows it (SP 800-57 state, KCV, provenance)."""

    __tablename__ = "ks_keys"
    __table_args__ = (UniqueConstraint("label"), UniqueConstraint("cka_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    cka_id: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer)
    usage: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(128))
    kvn: Mapped[int | None] = mapped_column(Integer, nullable=True)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(24))
    kcv: Mapped[str] = mapped_column(String(10))
    kcv_method: Mapped[str] = mapped_column(String(16))
    provenance: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")
    exportable: Mapped[bool] = mapped_column(Boolean, default=False)
    audit_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The audit record that produced this version of the record (bound by `mac`)."""
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """HMAC-SHA256 by the HSM-resident audit key over every field (keyservice/records.py)."""


class AuditRecord(Base):
    """One link of the audit hash chain; `mac` is computed by the HSM-resident audit key."""

    __tablename__ = "ks_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(256))
    keys: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """A single row locked by every append: serialises writers across processes."""

    __tablename__ = "ks_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    record_hash: Mapped[str] = mapped_column(String(64))


class Intent(Base):
    """A key creation or destruction in progress: written before the token is touched, removed when the
    operation's record commits (`tsm keys reconcile` rolls an interrupted one forward or back)."""

    __tablename__ = "ks_intents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(128))
    cka_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[str] = mapped_column(String(40))
    mac: Mapped[str] = mapped_column(String(64))


class ComponentRecord(Base):
    """One key component held between custodians' sessions: sealed (AES-GCM in the HSM under the component
    sealing key), never in clear; deleted when the set is combined or discarded (keyservice/components.py)."""

    __tablename__ = "ks_components"
    __table_args__ = (UniqueConstraint("set_id", "idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[str] = mapped_column(String(64))
    idx: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(16))
    length: Mapped[int] = mapped_column(Integer)
    kcv: Mapped[str] = mapped_column(String(10))
    sealed: Mapped[str] = mapped_column(Text)
    """nonce ‖ ciphertext ‖ tag, hex; the context is the set id and index."""
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
