"""A real `tsm serve` (gunicorn) for the tests that need the server: started on a free port for one home, ready
once a probe path answers, stopped by its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

TSM = str(Path(sys.executable).with_name("tsm"))
"""The `tsm` command of this environment."""
STARTUP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port of this machine that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(home: Path, probe: str = "/health", workers: int = 2, **settings: str) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of `tsm serve` for `home` with extra TSM_* `settings`; the test fails with the server's
    log when `probe` does not answer (any HTTP status counts as an answer) within STARTUP_SECONDS."""
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL", "TSM_DEMO")}
    env.update(TSM_HOME=str(home), **settings)
    port = free_port()
    log = home / "serve.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([TSM, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _answers(base + probe):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"tsm serve did not answer {probe}:\n{log.read_text()}")
            time.sleep(0.1)
        yield base, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - http on this machine, ours
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
