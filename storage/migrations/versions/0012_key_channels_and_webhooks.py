"""TSM components' API keys (owner kind `component`, their key-service purposes), the key-service API's channel
handles (no session key: docs/api.md, "Key service") and SPs' webhook endpoints and deliveries (no signing secret:
docs/api.md, "Webhooks").

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tsm_api_keys") as batch:
        batch.alter_column("owner_kind", type_=sa.String(16), existing_type=sa.String(8), existing_nullable=False)
        batch.add_column(sa.Column("purposes", sa.String(256), nullable=False, server_default=""))
    op.create_table(
        "tsm_key_channels",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(80), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("se_id", sa.String(32), nullable=False),
        sa.Column("sd_aid", sa.String(32), nullable=False),
        sa.Column("kvn", sa.Integer, nullable=False),
        sa.Column("keys", sa.String(400), nullable=False),
        sa.Column("diversification", sa.String(8), nullable=False),
        sa.Column("scp", sa.String(2), nullable=False),
        sa.Column("security_level", sa.Integer, nullable=False),
        sa.Column("i", sa.Integer, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("host_challenge", sa.String(64), nullable=False),
        sa.Column("card_challenge", sa.String(64), nullable=False),
        sa.Column("sequence_counter", sa.String(16), nullable=False),
        sa.Column("kdd", sa.String(64), nullable=False),
        sa.Column("chaining", sa.String(64), nullable=False),
        sa.Column("r_chaining", sa.String(32), nullable=False),
        sa.Column("counter", sa.Integer, nullable=False),
        sa.Column("rmac_command", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tsm_key_channels_expires_at", "tsm_key_channels", ["expires_at"])
    op.create_table(
        "tsm_webhook_endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("key_label", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tsm_webhook_endpoints_sp_id", "tsm_webhook_endpoints", ["sp_id"])
    op.create_table(
        "tsm_webhook_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("endpoint_id", sa.String(32), sa.ForeignKey("tsm_webhook_endpoints.id"), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tsm_webhook_deliveries_endpoint_id", "tsm_webhook_deliveries", ["endpoint_id"])
    op.create_index("ix_tsm_webhook_deliveries_next_attempt_at", "tsm_webhook_deliveries", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("tsm_webhook_deliveries")
    op.drop_table("tsm_webhook_endpoints")
    op.drop_table("tsm_key_channels")
    with op.batch_alter_table("tsm_api_keys") as batch:
        batch.drop_column("purposes")
        batch.alter_column("owner_kind", type_=sa.String(8), existing_type=sa.String(16), existing_nullable=False)
