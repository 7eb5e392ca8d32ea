"""Database records of people, quorum settings and consumed approvals (docs/people.md); no secret in clear.

A person's password is stored as its argon2id hash, the TOTP secret sealed with AES-GCM by the HSM-resident
vault key; every person and quorum row is signed by the HSM-resident audit key (keyservice/people.py,
keyservice/quorum.py), so a database administrator cannot change a role, swap a hash or lower a quorum.
"""

from __future__ import annotations

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class PersonRecord(Base):
    """One person who authenticates with a password and a TOTP code."""

    __tablename__ = "ks_people"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(128), default="")
    """The vendor or service provider a `vendor` / `sp` person acts for (empty otherwise)."""
    state: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_sealed: Mapped[str] = mapped_column(Text)
    """nonce ‖ ciphertext ‖ tag (hex) of the TOTP secret, sealed by the vault key for this person's name."""
    enrolled_at: Mapped[float] = mapped_column(Float)
    enrolled_by: Mapped[str] = mapped_column(String(128))
    removed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_step: Mapped[int] = mapped_column(Integer, default=0)
    """The TOTP time step of the last accepted code (a code of that step or an earlier one is refused)."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float] = mapped_column(Float, default=0.0)
    audit_seq: Mapped[int] = mapped_column(Integer)
    """The audit record that produced this version of the row (bound by `mac`)."""
    mac: Mapped[str] = mapped_column(String(64))


class QuorumRecord(Base):
    """The quorum M of one operation class (`class:NAME`) or one key (`label:NAME`)."""

    __tablename__ = "ks_quorum"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    m: Mapped[int] = mapped_column(Integer)
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[float] = mapped_column(Float)
    audit_seq: Mapped[int] = mapped_column(Integer)
    mac: Mapped[str] = mapped_column(String(64))


class ApprovalUsed(Base):
    """An approval consumed by a privileged operation (its nonce is unique: an approval is used once)."""

    __tablename__ = "ks_approvals_used"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(64))
    audit_seq: Mapped[int] = mapped_column(Integer)
