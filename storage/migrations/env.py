"""Alembic environment: one history for the whole product.

Migrations are written by hand (one revision per change, descriptive names); `target_metadata` serves
`alembic revision --autogenerate` once the packages' models are imported by the caller.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from storage.base import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
