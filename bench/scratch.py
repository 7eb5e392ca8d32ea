"""A scratch key service for the benchmarks: a test token in a temporary $TSM_HOME, and SQLite there or a
throwaway PostgreSQL database when `TSM_DATABASE_URL` (or `database_url`) names a server.

Never touches var/. Call before anything loads the PKCS#11 library in the process (SoftHSM2 reads its
configuration once).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from keyservice.hsm import Hsm
from keyservice.runtime import open_service
from keyservice.service import KeyService
from storage.config import Settings, load_settings, with_overrides
from tsm.embedded import initialise


def _throwaway_database(server_url: str) -> str:
    """A new PostgreSQL database on the server of `server_url`, dropped when the process exits."""
    url = make_url(server_url)
    name = f"tsm_bench_{secrets.token_hex(4)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    atexit.register(drop)
    return url.set(database=name).render_as_string(hide_password=False)


def scratch_settings(label: str = "bench", database_url: str | None = None) -> Settings:
    """`tsm init --test-token` in a temporary home; the settings, for this process and the ones it starts."""
    home = Path(tempfile.mkdtemp(prefix="tsm-bench-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    settings = with_overrides(load_settings({"TSM_HOME": str(home)}), token_label=label)
    server = database_url or os.environ.get("TSM_DATABASE_URL")
    if server and server.startswith("postgresql"):
        settings = with_overrides(settings, database_url=_throwaway_database(server))
    initialise(settings, test_token=True)
    return settings


def scratch_service(label: str = "bench", database_url: str | None = None) -> KeyService:
    """The opened key service of a scratch home (`scratch_settings`)."""
    return open_service(scratch_settings(label, database_url))


def hsm_of(service: KeyService) -> Hsm:
    """The open HSM session behind the facade: the benchmarks measure the layers under it (declared in
    docs/architecture.md)."""
    return service._open_core().hsm
