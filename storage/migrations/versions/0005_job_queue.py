"""The job queue's tables on PostgreSQL: Procrastinate's schema, as the pinned Procrastinate version ships it
(tsm_core/jobs/queue.py). SQLite (the embedded default) runs jobs in-process and gets nothing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        cursor = bind.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(SchemaManager.get_schema())  # no parameters: its '%' are SQL, not placeholders


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                      "procrastinate_workers"):
            bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
