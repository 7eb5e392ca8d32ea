"""The service life cycle and metering: service instances' history, backups and sealed card numbers, top-up
orders, jobs bound to a service (and waiting for a device's next contact), app master keys, metering events
and tariffs per service provider.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tsm_service_instances") as batch:
        batch.drop_constraint("uq_tsm_service_instances_se_id", type_="unique")
        batch.add_column(sa.Column("live", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("card_locked", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("reason", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("seen", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("card_number", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("card_number_sealed", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("balance", sa.Integer, nullable=True))
        batch.add_column(sa.Column("purse_counter", sa.Integer, nullable=True))
        batch.add_column(sa.Column("backed_up_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("previous_id", sa.String(32), nullable=False, server_default=""))
        batch.create_unique_constraint("uq_tsm_service_instances_live", ["se_id", "app_id", "live"])
    op.execute("UPDATE tsm_service_instances SET live = true")
    with op.batch_alter_table("tsm_jobs") as batch:
        batch.add_column(sa.Column("service_id", sa.String(32), nullable=True))
        batch.create_index("ix_tsm_jobs_service_id", ["service_id"])
    with op.batch_alter_table("tsm_apps") as batch:
        batch.add_column(sa.Column("app_key", sa.String(128), nullable=False, server_default=""))
    op.create_table(
        "tsm_service_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("service_id", sa.String(32), sa.ForeignKey("tsm_service_instances.id"), nullable=False,
                  index=True),
        sa.Column("operation", sa.String(24), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False, server_default=""),
        sa.Column("to_state", sa.String(16), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tsm_topups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("service_id", sa.String(32), sa.ForeignKey("tsm_service_instances.id"), nullable=False,
                  index=True),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="ordered"),
        sa.Column("counter_before", sa.Integer, nullable=True),
        sa.Column("balance_before", sa.Integer, nullable=True),
        sa.Column("balance_after", sa.Integer, nullable=True),
        sa.Column("counter_after", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "tsm_metering_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), nullable=False),
        sa.Column("operation", sa.String(24), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("se_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("se_kind", sa.String(16), nullable=False, server_default=""),
        sa.Column("service_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("job_id", "operation", name="uq_tsm_metering_events_job_op"),
        sa.Index("ix_tsm_metering_events_sp_at", "sp_id", "at"),
    )
    op.create_table(
        "tsm_tariffs",
        sa.Column("sp_id", sa.Integer, sa.ForeignKey("tsm_tenants.id"), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False, server_default="EUR"),
        sa.Column("onboarding", sa.Integer, nullable=False, server_default="0"),
        sa.Column("monthly", sa.Integer, nullable=False, server_default="0"),
        sa.Column("per_download", sa.Integer, nullable=False, server_default="0"),
        sa.Column("per_operation", sa.Text, nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tsm_tariffs")
    op.drop_table("tsm_metering_events")
    op.drop_table("tsm_topups")
    op.drop_table("tsm_service_events")
    with op.batch_alter_table("tsm_apps") as batch:
        batch.drop_column("app_key")
    with op.batch_alter_table("tsm_jobs") as batch:
        batch.drop_index("ix_tsm_jobs_service_id")
        batch.drop_column("service_id")
    with op.batch_alter_table("tsm_service_instances") as batch:
        batch.drop_constraint("uq_tsm_service_instances_live", type_="unique")
        for column in ("previous_id", "backed_up_at", "purse_counter", "balance", "card_number_sealed",
                       "card_number", "seen", "reason", "card_locked", "live"):
            batch.drop_column(column)
        batch.create_unique_constraint("uq_tsm_service_instances_se_id", ["se_id", "app_id"])
