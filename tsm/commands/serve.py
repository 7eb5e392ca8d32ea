"""`tsm serve`: run the web app under gunicorn."""

from __future__ import annotations

import os
import shutil
import sys

import click

from keyservice.errors import ConfigurationError
from tsm.params import HostPort

ACCESS_LOGGER = "web.access_log.RedactingLogger"
"""gunicorn's logger class: the access log without relay session ids (web/access_log.py)."""


@click.command("serve")
@click.option("--bind", type=HostPort(), default="127.0.0.1:8000", show_default=True,
              help="Address to listen on, HOST:PORT.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Gunicorn worker processes.")
def serve(bind: tuple[str, int], workers: int) -> None:
    """Start the service (gunicorn). The self-test runs first; a failure refuses to start.

    Ready when `GET /health` answers (docs/operations.md).
    """
    from keyservice.runtime import open_service
    from storage.config import load_settings

    open_service(load_settings()).run_selftest()
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise ConfigurationError("gunicorn is not installed in this environment")
    address = f"{bind[0]}:{bind[1]}"
    click.echo(f"serving on http://{address} ({workers} workers)")
    argv = [gunicorn, "--bind", address, "--workers", str(workers), "--access-logfile", "-",
            "--logger-class", ACCESS_LOGGER, "web.wsgi:create()"]
    os.execv(gunicorn, argv)  # noqa: S606 - this process becomes gunicorn, fixed argv
