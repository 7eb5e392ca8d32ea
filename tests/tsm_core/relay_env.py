"""What the relay tests share: a migrated database per module and backend, a store over it with a settable
clock, and the reference client running in a thread (the phone)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.session import make_engine, session_factory, upgrade
from tsm_core.transport.relay_client import RelayClient
from tsm_core.transport.relay_store import RelayStore

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def database(backend: str, directory: Path) -> Iterator[str]:
    """A migrated database on `backend` (a PostgreSQL one dropped at the end)."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'relay.db'}"
        upgrade(url)
        yield url
        return
    from tests.conftest import _pg_admin

    name = f"tsm_relay_{secrets.token_hex(6)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_on(url: str, clock: Clock | None = None) -> RelayStore:
    engine = make_engine(url)
    return RelayStore(session_factory(engine)) if clock is None else RelayStore(session_factory(engine), clock)


class Phone:
    """The reference client in a thread; `join()` returns what `run()` returned or raised."""

    def __init__(self, url: str, session_id: str, transport, **options) -> None:  # type: ignore[no-untyped-def]
        self.client = RelayClient(url, session_id, transport, poll_interval=0.02, **options)
        self.stop = threading.Event()
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.client.run(self.stop)
        except Exception as exc:
            self.result = exc

    def join(self) -> int | BaseException | None:
        self.thread.join(timeout=20)
        if self.thread.is_alive():
            self.stop.set()
            self.thread.join(timeout=5)
            pytest.fail("relay client did not finish")
        return self.result
