"""Shared fixtures: one SoftHSM2 configuration for the whole run (set before any PKCS#11 library loads),
fresh tokens created in-process per test (SoftHSM2 reads its token directory once per process), and
databases on SQLite and PostgreSQL.

PostgreSQL (127.0.0.1:5432) gets a throwaway database per test; with TSM_REQUIRE_POSTGRES=1 (CI) a
missing server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from softhsm import bootstrap

SCRATCH = Path(tempfile.mkdtemp(prefix="tsm-tests-"))
SOFTHSM_CONF = SCRATCH / "softhsm2.conf"
TOKEN_DIR = SCRATCH / "tokens"
bootstrap.write_conf(SOFTHSM_CONF, TOKEN_DIR)
os.environ["SOFTHSM2_CONF"] = str(SOFTHSM_CONF)
os.environ.setdefault("TSM_LOG_LEVEL", "DEBUG")

PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
MODULE = "/usr/lib/softhsm/libsofthsm2.so"


_TEMPLATES: dict[str, str] = {}
"""Backend -> a database migrated to head once per run, copied into each test's empty database."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SCRATCH, ignore_errors=True)
    if "postgresql" in _TEMPLATES:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATES["postgresql"]}" WITH (FORCE)')


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("TSM_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database, dropped after the test."""
    yield from throwaway_pg()


def throwaway_pg() -> Iterator[str]:
    """A PostgreSQL database for the fixture that iterates this, dropped at its end."""
    name = f"tsm_test_{secrets.token_hex(6)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    try:
        yield url
    finally:
        from keyservice.runtime import close_all

        close_all(url)  # only this database's: a module-scoped room on another database stays open
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of one test, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tsm.db'}"
    return str(request.getfixturevalue("pg_url"))


@dataclass(frozen=True)
class TokenSpec:
    label: str
    pins: bootstrap.TokenPins


def new_token(prefix: str = "t") -> TokenSpec:
    """A fresh token, created in-process (softhsm.bootstrap.init_token) with random PINs."""
    spec = TokenSpec(f"{prefix}-{secrets.token_hex(4)}", bootstrap.generate_pins())
    bootstrap.init_token(MODULE, spec.label, spec.pins)
    return spec


def fresh_settings(parent: Path, db: str):  # type: ignore[no-untyped-def]
    """Settings for a fresh home under `parent` with its own token and the given database."""
    from storage.config import load_settings, with_overrides

    token = new_token()
    settings = with_overrides(load_settings({"TSM_HOME": str(parent / token.label)}), database_url=db,
                              token_label=token.label, softhsm_conf=SOFTHSM_CONF, token_dir=TOKEN_DIR)
    bootstrap.save_pins(settings.pin_file, token.pins)
    return settings


@pytest.fixture
def settings_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings for a fresh home with its own token and the given database."""

    def make(db: str, test_token: bool = True):  # type: ignore[no-untyped-def]
        return fresh_settings(tmp_path, db), test_token

    return make


@pytest.fixture
def keyservice(settings_factory, db_url):  # type: ignore[no-untyped-def]
    """An initialised key service (test token) on a fresh token and database."""
    return make_service(*settings_factory(db_url))


def _template(backend: str) -> str:
    """The run's template database of `backend` (a SQLite path or a PostgreSQL name), migrated at first use."""
    from storage.session import upgrade

    if backend not in _TEMPLATES:
        if backend == "sqlite":
            path = SCRATCH / "template.db"
            upgrade(f"sqlite:///{path}")
            _TEMPLATES[backend] = str(path)
        else:
            name = f"tsm_template_{secrets.token_hex(6)}"
            with _pg_admin() as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            upgrade(f"postgresql+psycopg://root@127.0.0.1:5432/{name}")  # its engine disposed: no connection left
            _TEMPLATES[backend] = name
    return _TEMPLATES[backend]


def migrate(url: str) -> None:
    """`alembic upgrade head` for a test database; an empty one is copied from the run's template instead (the
    same migrations, run once per backend rather than once per test, already at head)."""
    from storage.permissions import make_private_file
    from storage.session import upgrade

    path = Path(url.removeprefix("sqlite:///"))
    if url.startswith("sqlite:///") and path.parent.is_dir() and make_private_file(path):
        with closing(sqlite3.connect(_template("sqlite"))) as source, closing(sqlite3.connect(path)) as target:
            source.backup(target)
        return
    if url.startswith("postgresql+psycopg://root@127.0.0.1:5432/"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url.replace("+psycopg", "")) as probe:
            empty = probe.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone() == (0,)
        if empty:
            template = _template("postgresql")
            with _pg_admin() as admin:
                admin.execute(f'DROP DATABASE "{name}"')
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
    upgrade(url)


def make_service(settings, test_token: bool):  # type: ignore[no-untyped-def]
    """Mirror of `tsm init` for an in-process token: migrate, mark, create the audit key."""
    from keyservice.runtime import open_service

    migrate(settings.database_url)
    service = open_service(settings)
    service.initialise(test_token=test_token)
    return service


def core_of(service):  # type: ignore[no-untyped-def]
    """The barrier's internals of an unsealed service, for tests that attack or inspect them directly."""
    return service._open_core()
