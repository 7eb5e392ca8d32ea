"""People who authenticate (password + TOTP), quorum settings and consumed approvals (docs/people.md).

`ks_people` holds argon2id hashes and TOTP secrets sealed by the HSM-resident vault key, each row signed by the
audit key; `ks_quorum` the signed M per operation class or key; `ks_approvals_used` the nonce of every approval a
privileged operation consumed (unique: single use). An index on the audit chain's target finds the last record
that wrote a person or a quorum row (replay of an older row version).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ks_people",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("totp_sealed", sa.Text, nullable=False),
        sa.Column("enrolled_at", sa.Float, nullable=False),
        sa.Column("enrolled_by", sa.String(128), nullable=False),
        sa.Column("removed_at", sa.Float, nullable=True),
        sa.Column("last_step", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("audit_seq", sa.Integer, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_table(
        "ks_quorum",
        sa.Column("scope", sa.String(160), primary_key=True),
        sa.Column("m", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
        sa.Column("audit_seq", sa.Integer, nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.create_table(
        "ks_approvals_used",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("audit_seq", sa.Integer, nullable=False),
    )
    op.create_index("ix_ks_audit_target", "ks_audit", ["target", "seq"])


def downgrade() -> None:
    op.drop_index("ix_ks_audit_target", table_name="ks_audit")
    op.drop_table("ks_approvals_used")
    op.drop_table("ks_quorum")
    op.drop_table("ks_people")
