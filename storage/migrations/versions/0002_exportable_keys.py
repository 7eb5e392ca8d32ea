"""Keys created exportable (wrapped only) are marked in the inventory.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ks_keys") as batch:
        batch.add_column(sa.Column("exportable", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("ks_keys") as batch:
        batch.drop_column("exportable")
