"""Fixtures for the PC/SC tests: a private pcscd (started and stopped by PID) and a virtual card behind it.

pcscd hard-codes its socket /run/pcscd/pcscd.comm and vpcd its TCP ports, so only one pcscd can run on the
machine. Test runs of this checkout serialise on a lock file; if a pcscd is running anyway (started by
something else), the tests fail with a clear message instead of reusing or killing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardsim.vpcd import serve
from tests.tsm_core.cards import MiniCard
from tsm_core.transport.errors import NoCard, TransportError
from tsm_core.transport.pcsc import PcscTransport, list_readers

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
LOCK_FILE = Path("/tmp/tsm-pcscd-tests.lock")
LOCK_TIMEOUT = 300.0
READY_TIMEOUT = 10.0
READER = "Virtual PCD 00 00"
EMPTY_READER = "Virtual PCD 00 01"


def _pcscd_running() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def _exclusive_lock() -> Iterator[None]:
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


def _readers_or_empty() -> list[str]:
    try:
        return list_readers()
    except TransportError:
        return []


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory) -> Iterator[subprocess.Popen[bytes]]:
    """A pcscd of our own, in the foreground, killed by its PID at the end of the session."""
    binary = shutil.which("pcscd")
    if binary is None:
        pytest.skip("pcscd is not installed (Debian package pcscd)")
    with _exclusive_lock():
        if _pcscd_running():
            pytest.fail(
                f"a pcscd is already running (socket {PCSCD_SOCKET}); these tests start their own and never "
                "reuse or kill a foreign one: stop it (PID in /run/pcscd/pcscd.pid) and re-run"
            )
        log = (tmp_path_factory.mktemp("pcscd") / "pcscd.log").open("wb")
        process = subprocess.Popen([binary, "-f"], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: READER in _readers_or_empty(), READY_TIMEOUT, f"pcscd to list {READER!r}")
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


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


def _card_present(reader: str) -> bool:
    transport = PcscTransport(reader)
    try:
        transport.connect()
    except NoCard:
        return False
    finally:
        transport.close()
    return True


def wait_for_removal() -> None:
    """Block until READER reports no card, so the next test starts from an empty reader."""
    _wait(lambda: not _card_present(READER), READY_TIMEOUT, "pcscd to notice the card removal")


def wait_for_card() -> None:
    """Block until a card shows in READER (fails the test after READY_TIMEOUT)."""
    _wait(lambda: _card_present(READER), READY_TIMEOUT, "the virtual card to appear")


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
