"""Engine and session factory, and the Alembic upgrade entry point.

A SQLite database file is created 0600 before SQLite opens it (its -wal and -shm files take the same mode),
and an existing one others can read is refused. A write that waits for another process's lock gives up
after `database_busy_timeout` seconds: SQLite's busy timeout, PostgreSQL's `lock_timeout`.

Durability: by default a commit survives a crash of the process that made it (SQLite WAL with
synchronous=NORMAL; PostgreSQL with synchronous_commit=off: the server has the commit, it flushes it within
wal_writer_delay). A transaction that must survive a crash of the database server or a power loss too
(key management) calls `durable` (PostgreSQL: synchronous_commit on for that transaction).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from storage.config import DEFAULT_BUSY_TIMEOUT, SettingsError
from storage.permissions import make_private_file, refuse_if_shared

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_COMPANIONS: Final = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside the database (https://sqlite.org/tempfiles.html), as readable as the database."""
_LIBPQ_DRIVERS: Final = ("psycopg", "psycopg2")
POOL_RECYCLE: Final = 600
"""Seconds after which a pooled PostgreSQL connection is replaced."""
_SYNCHRONOUS_COMMIT: Final = text("SET LOCAL synchronous_commit TO on")


def make_engine(url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Engine:
    """An engine for `url`; SQLite gets foreign keys on, WAL, and a bounded busy wait."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        private_sqlite_file(parsed)
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across process crashes, not power loss
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() in _LIBPQ_DRIVERS and "options" not in parsed.query:
        # lock_timeout 0 would mean "wait forever": at least one millisecond
        connect_args["options"] = (f"-c lock_timeout={max(1, round(busy_timeout * 1000))} "
                                   "-c synchronous_commit=off")
    # connections are recycled rather than pinged before each use (a ping is one more round trip per call)
    return create_engine(parsed, pool_recycle=POOL_RECYCLE, connect_args=connect_args)


def durable(db: Session) -> None:
    """Make the current transaction's commit survive a database crash or power loss (module docstring)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(_SYNCHRONOUS_COMMIT)


def private_sqlite_file(url: URL) -> None:
    """Create the SQLite database file 0600 if it is missing; refuse one (or its companions) others can read."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        if make_private_file(path):
            return
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return  # no such directory: SQLite says "unable to open database file"
    except OSError as exc:
        raise SettingsError(f"database file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SettingsError(f"database_url points at {path}, which is not a regular file")
    refuse_if_shared(path, "database file", st)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            refuse_if_shared(companion, "database file", companion.stat())


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


class MigrationError(Exception):
    """Alembic refused a migration (e.g. an unknown revision for `tsm db upgrade`)."""

    code = "migration_error"


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the product's single migration history (Alembic is imported only when
    a migration runs: it costs a second of every command's start)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (`tsm db upgrade`, `tsm init`)."""
    from alembic import command
    from alembic.util.exc import CommandError

    private_sqlite_file(make_url(url))
    try:
        command.upgrade(alembic_config(url), revision)
    except CommandError as exc:
        raise MigrationError(str(exc)) from None
