"""Key ceremonies (issue 11): the ceremonies, their participants, steps, events and approvals; the key service's
sealed key components between custodians' sessions (docs/ceremonies.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ks_components",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("set_id", sa.String(64), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("kcv", sa.String(10), nullable=False),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("set_id", "idx"),
    )
    op.create_table(
        "cer_ceremonies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("abort_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("outputs", sa.Text, nullable=False, server_default="{}"),
        sa.Column("evidence_sha256", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_cer_ceremonies_state", "cer_ceremonies", ["state"])
    op.create_table(
        "cer_participants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ceremony_id", sa.String(32), sa.ForeignKey("cer_ceremonies.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("joined_at", _TS, nullable=False),
        sa.UniqueConstraint("ceremony_id", "name"),
    )
    op.create_table(
        "cer_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ceremony_id", sa.String(32), sa.ForeignKey("cer_ceremonies.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("signed_by", sa.String(64), nullable=True),
        sa.Column("signed_at", _TS, nullable=True),
        sa.Column("output", sa.Text, nullable=False, server_default="{}"),
        sa.UniqueConstraint("ceremony_id", "number"),
    )
    op.create_table(
        "cer_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ceremony_id", sa.String(32), sa.ForeignKey("cer_ceremonies.id"), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_cer_events_ceremony", "cer_events", ["ceremony_id"])
    op.create_table(
        "cer_approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ceremony_id", sa.String(32), sa.ForeignKey("cer_ceremonies.id"), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.UniqueConstraint("ceremony_id", "step", "approver"),
    )


def downgrade() -> None:
    for table in ("cer_approvals", "cer_events", "cer_steps", "cer_participants", "cer_ceremonies",
                  "ks_components"):
        op.drop_table(table)
