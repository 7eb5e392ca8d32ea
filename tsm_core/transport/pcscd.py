"""A private pcscd, started and stopped by its PID (no systemd here), for tests, benchmarks and demos.

pcscd hard-codes its socket `/run/pcscd/pcscd.comm` and the vpcd driver its TCP ports (35963 for reader
"Virtual PCD 00 00", 35964 for "Virtual PCD 00 01"), so one pcscd runs per machine. `PrivatePcscd` refuses
to start when another pcscd already answers on that socket: it never reuses or kills a process it did not
start. It runs `pcscd -f` (foreground) as a child, waits until the vpcd reader is listed, and on `stop()`
terminates it, waits, and kills it only if it did not exit in time.

    with PrivatePcscd() as daemon:          # ForeignPcscd, PcscdNotInstalled, WaitTimeout
        ...                                 # readers are visible; serve a card with cardsim.vpcd.serve
        wait_for(lambda: card_present(VPCD_READER), READY_TIMEOUT, "the virtual card")
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

from tsm_core.transport.errors import CardRemoved, NoCard, TransportError
from tsm_core.transport.pcsc import PcscTransport, list_readers

PCSCD_SOCKET: Final = Path("/run/pcscd/pcscd.comm")
VPCD_READER: Final = "Virtual PCD 00 00"
"""The first reader of the vsmartcard vpcd driver (a card connects to 127.0.0.1:35963)."""
READY_TIMEOUT: Final = 10.0
"""Seconds to wait for pcscd to list the reader, or for a card to appear / go away."""
STOP_TIMEOUT: Final = 10.0
"""Seconds to wait after SIGTERM (then after SIGKILL) for pcscd to exit."""
POLL_INTERVAL: Final = 0.05


class PcscdError(TransportError):
    """The private pcscd could not be started."""

    code = "pcscd_error"


class PcscdNotInstalled(PcscdError):
    """No `pcscd` binary on PATH (Debian package pcscd)."""

    code = "pcscd_not_installed"


class ForeignPcscd(PcscdError):
    """A pcscd that we did not start already answers on the socket."""

    code = "pcscd_foreign"


class WaitTimeout(TransportError):
    """A condition (reader listed, card inserted or removed) did not come true in time."""

    code = "wait_timeout"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 50 ms until it is true; `WaitTimeout` naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def pcscd_running(socket_path: Path = PCSCD_SOCKET) -> bool:
    """Whether some pcscd accepts connections on its socket (a stale socket file does not count)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def readers_or_empty() -> list[str]:
    """The reader names, or none while pcscd is not (yet) answering."""
    try:
        return list_readers()
    except TransportError:
        return []


def card_present(reader: str | int) -> bool:
    """Whether `reader` holds a card that answers a connect (`NoReader` when the reader does not exist).

    A card that is still being powered, or going away, while we probe (`CardRemoved`: unpowered, reset,
    removed) is not present yet / any more.
    """
    transport = PcscTransport(reader)
    try:
        transport.connect()
    except (NoCard, CardRemoved):
        return False
    finally:
        transport.close()
    return True


class PrivatePcscd:
    """One `pcscd -f` child process of ours; a context manager (enter starts, exit stops)."""

    def __init__(self, reader: str = VPCD_READER, log: Path | None = None,
                 ready_timeout: float = READY_TIMEOUT) -> None:
        self._reader, self._log_path, self._ready_timeout = reader, log, ready_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The PID of our pcscd while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start pcscd and wait until it lists the reader; stops it again if that does not happen."""
        binary = shutil.which("pcscd")
        if binary is None:
            raise PcscdNotInstalled("pcscd is not installed (Debian package pcscd)")
        if pcscd_running():
            raise ForeignPcscd(
                f"a pcscd is already running (socket {PCSCD_SOCKET}); a private one is started here and a foreign "
                "one is never reused or killed: stop it (PID in /run/pcscd/pcscd.pid) and re-run"
            )
        self._log = self._log_path.open("wb") if self._log_path is not None else None
        output = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen([binary, "-f"], stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, self._ready_timeout, f"pcscd to list {self._reader!r}")
        except TransportError:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise PcscdError(f"pcscd exited with status {self._process.returncode} before listing {self._reader!r}")
        return self._reader in readers_or_empty()

    def stop(self) -> None:
        """Terminate our pcscd by PID, wait, kill it if it does not exit; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[Any], first: signal.Signals = signal.SIGTERM,
                 timeout: float = STOP_TIMEOUT) -> None:
    """Stop a child we started, by its PID: `first` signal, wait, then SIGKILL if it did not exit."""
    if process.poll() is not None:
        return
    process.send_signal(first)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
