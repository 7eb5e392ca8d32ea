"""Fixtures for the PC/SC tests: a private pcscd (started and stopped by PID) and a virtual card behind it.

pcscd hard-codes its socket /run/pcscd/pcscd.comm and vpcd its TCP ports, so only one pcscd can run on the
machine. Test runs of this checkout serialise on a lock file; if a pcscd is running anyway (started by
something else), the tests fail with a clear message instead of reusing or killing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardsim.vpcd import serve
from tests.tsm_core.cards import MiniCard
from tsm_core.transport import pcscd as pcscd_mod
from tsm_core.transport.pcscd import PcscdError, PcscdNotInstalled, PrivatePcscd, WaitTimeout

LOCK_FILE = Path("/tmp/tsm-pcscd-tests.lock")
LOCK_TIMEOUT = 300.0
READY_TIMEOUT = pcscd_mod.READY_TIMEOUT
READER = pcscd_mod.VPCD_READER
EMPTY_READER = "Virtual PCD 00 01"


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        pcscd_mod.wait_for(condition, timeout, what)
    except WaitTimeout as exc:
        pytest.fail(str(exc))


@contextlib.contextmanager
def exclusive_lock() -> Iterator[None]:
    """Serialise the pcscd users of this machine's test runs (and the transport bench) on LOCK_FILE."""
    with LOCK_FILE.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run held {LOCK_FILE} for {LOCK_TIMEOUT:.0f} s")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory) -> Iterator[PrivatePcscd]:
    """A pcscd of our own, in the foreground, stopped by its PID at the end of the session."""
    daemon = PrivatePcscd(READER, log=tmp_path_factory.mktemp("pcscd") / "pcscd.log", ready_timeout=READY_TIMEOUT)
    with exclusive_lock():
        try:
            daemon.start()
        except PcscdNotInstalled as exc:
            pytest.skip(str(exc))
        except (PcscdError, WaitTimeout) as exc:  # a foreign pcscd, or ours never listed the reader
            pytest.fail(str(exc))
        try:
            yield daemon
        finally:
            daemon.stop()


@dataclass
class ServedCard:
    """A test card served through vpcd by a thread; `remove()` stops the thread (card pulled out)."""

    card: MiniCard
    stop: threading.Event
    thread: threading.Thread
    changes: list[int]

    def remove(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        if self.thread.is_alive():
            pytest.fail("vpcd serve thread did not stop")
        wait_for_removal()


def wait_for_removal() -> None:
    """Block until READER reports no card, so the next test starts from an empty reader."""
    _wait(lambda: not pcscd_mod.card_present(READER), READY_TIMEOUT, "pcscd to notice the card removal")


def wait_for_card() -> None:
    """Block until a card shows in READER (fails the test after READY_TIMEOUT)."""
    _wait(lambda: pcscd_mod.card_present(READER), READY_TIMEOUT, "the virtual card to appear")


@pytest.fixture
def served_card(pcscd) -> Iterator[ServedCard]:
    """A fresh `MiniCard` inserted in "Virtual PCD 00 00" for one test."""
    card, stop, changes = MiniCard(), threading.Event(), []
    thread = threading.Thread(
        target=serve,
        args=(card,),
        kwargs={"stop": stop, "on_change": lambda: changes.append(len(card.apdus))},
        name="vpcd-serve",
        daemon=True,
    )
    thread.start()
    served = ServedCard(card, stop, thread, changes)
    try:
        wait_for_card()
        yield served
    finally:
        if thread.is_alive():
            served.remove()


GP_TEST_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
"""The GlobalPlatform test key (ENC = MAC = DEK) of the simulator's profiles."""


@pytest.fixture
def service(settings_factory, tmp_path):  # type: ignore[no-untyped-def]
    """A key service on a fresh SQLite inventory and token, with the test key as `gp` (AES) and `gp-des`."""
    from globalplatform.keys import KeyAlgorithm
    from keyservice.identity import Caller, CallerKind
    from keyservice.inventory import KeyUsage
    from keyservice.policy import Purpose, Request
    from keyservice.views import NewKey
    from tests.conftest import make_service

    svc = make_service(*settings_factory(f"sqlite:///{tmp_path / 'tsm.db'}"))
    req = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
    for label, algorithm in (("gp", KeyAlgorithm.AES), ("gp-des", KeyAlgorithm.DES3)):
        svc.keys.import_test(req, NewKey(label, algorithm, 16, KeyUsage.ISD_KEYSET, "lab"), GP_TEST_KEY)
    return svc


@pytest.fixture
def lab(settings_factory, db_url):  # type: ignore[no-untyped-def]
    """A TSM lab (tests/tsm_core/lab.py) on a fresh token, on SQLite and on PostgreSQL."""
    from tests.tsm_core.lab import make_lab

    made = make_lab(*settings_factory(db_url))
    yield made
    made.tsm.sessions.kw["bind"].dispose()


@pytest.fixture
def sqlite_lab(settings_factory, tmp_path):  # type: ignore[no-untyped-def]
    """A TSM lab on SQLite only (flows whose database behaviour the `lab` tests already cover on both)."""
    from tests.tsm_core.lab import make_lab

    made = make_lab(*settings_factory(f"sqlite:///{tmp_path / 'tsm.db'}"))
    yield made
    made.tsm.sessions.kw["bind"].dispose()
