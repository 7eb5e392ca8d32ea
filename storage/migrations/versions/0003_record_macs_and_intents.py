"""Key records bound to the HSM (MAC, last audit record) and intents of key creation and destruction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ks_keys") as batch:
        batch.add_column(sa.Column("audit_seq", sa.Integer, nullable=True))
        batch.add_column(sa.Column("mac", sa.String(64), nullable=True))
    op.create_table(
        "ks_intents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("cka_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ks_intents"),
    )


def downgrade() -> None:
    op.drop_table("ks_intents")
    with op.batch_alter_table("ks_keys") as batch:
        batch.drop_column("mac")
        batch.drop_column("audit_seq")
