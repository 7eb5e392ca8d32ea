"""Tariffs become versions: a change of an SP's tariff is a new row with the time it took effect, never an
update, so that a month is always priced again with the tariff that priced it (docs/billing.md).

The rows of 0006's one-row-per-SP `tsm_tariffs` carry over as versions in force from their `updated_at`; a
downgrade keeps each SP's latest version.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TERMS = "currency, onboarding, monthly, per_download, per_operation"
"""The columns both shapes share."""


def _terms() -> list[sa.Column[Any]]:
    return [
        sa.Column("currency", sa.String(3), nullable=False, server_default="EUR"),
        sa.Column("onboarding", sa.Integer, nullable=False, server_default="0"),
        sa.Column("monthly", sa.Integer, nullable=False, server_default="0"),
        sa.Column("per_download", sa.Integer, nullable=False, server_default="0"),
        sa.Column("per_operation", sa.Text, nullable=False, server_default="{}"),
    ]


def upgrade() -> None:
    op.create_table(
        "tsm_tariff_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False, server_default=""),
        *_terms(),
        sa.Index("ix_tsm_tariff_versions_sp_from", "sp_id", "effective_from"),
    )
    op.execute(f"INSERT INTO tsm_tariff_versions (sp_id, effective_from, {TERMS}) "  # noqa: S608 (constant)
               f"SELECT sp_id, updated_at, {TERMS} FROM tsm_tariffs")
    op.drop_table("tsm_tariffs")


def downgrade() -> None:
    op.create_table(
        "tsm_tariffs",
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), primary_key=True),
        *_terms(),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(f"INSERT INTO tsm_tariffs (sp_id, updated_at, {TERMS}) "  # noqa: S608 (constant)
               f"SELECT sp_id, effective_from, {TERMS} FROM tsm_tariff_versions v "
               "WHERE v.id = (SELECT max(w.id) FROM tsm_tariff_versions w WHERE w.sp_id = v.sp_id)")
    op.drop_table("tsm_tariff_versions")
