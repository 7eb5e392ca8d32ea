"""The phone relay's sessions and exchanges move into the database (tsm_core/transport/relay_models.py,
docs/relay.md): any web worker answers any phone request, the job may run in another process.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tsm_relay_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("se_id", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("contacted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("told_closed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("atr", sa.String(66), nullable=False, server_default=""),
        sa.Column("answered_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("answer", sa.Text, nullable=False, server_default=""),
        sa.Column("reported_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_batch", sa.Integer, nullable=False, server_default="1"),
        sa.UniqueConstraint("token_hash", name="uq_tsm_relay_sessions_token_hash"),
        sa.Index("ix_tsm_relay_sessions_se_id", "se_id"),
        sa.Index("ix_tsm_relay_sessions_expires_at", "expires_at"),
    )
    op.create_table(
        "tsm_relay_exchanges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("tsm_relay_sessions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("target_aid", sa.String(32), nullable=True),
        sa.Column("commands", sa.Text, nullable=False, server_default="[]"),
        sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("delivered_seq", sa.Integer, nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default=""),
        sa.Column("responses", sa.Text, nullable=False, server_default="[]"),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("session_id", "batch", name="uq_tsm_relay_exchanges_session_id"),
        sa.Index("ix_tsm_relay_exchanges_session_id", "session_id"),
    )


def downgrade() -> None:
    op.drop_table("tsm_relay_exchanges")
    op.drop_table("tsm_relay_sessions")
