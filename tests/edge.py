"""Helpers for tests of the error edge: a real $TSM_HOME on a fresh token, and `tsm` run in-process.

The home's token lives in the run's shared SoftHSM2 token directory (tests/conftest.py), so the in-process
`tsm` command finds it; its tsm.toml says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner, Result

from tests.conftest import SOFTHSM_CONF, TOKEN_DIR, make_service, new_token

TSM_VARIABLES = ("TSM_HOME", "TSM_CONFIG", "TSM_DATABASE_URL", "TSM_PKCS11_MODULE", "TSM_TOKEN_LABEL",
                 "TSM_PIN_FILE", "TSM_TOKEN_DIR", "TSM_HSM_PROFILE", "TSM_LOG_LEVEL", "TSM_DATABASE_BUSY_TIMEOUT",
                 "TSM_RELAY_LISTEN", "TSM_RELAY_TIMEOUT")


def base_toml(label: str) -> str:
    """The lines of tsm.toml that point a home at the run's shared token directory."""
    return f'token_label = "{label}"\nsofthsm_conf = "{SOFTHSM_CONF}"\ntoken_dir = "{TOKEN_DIR}"\n'


def make_home(path: Path, db_url: str | None = None) -> Path:
    """An initialised home at `path` (test token, audit key, migrated database) whose tsm.toml names it."""
    from keyservice.runtime import close_all
    from softhsm import bootstrap
    from storage.config import load_settings, with_overrides

    token = new_token("edge")
    settings = load_settings({"TSM_HOME": str(path)})
    settings = with_overrides(settings, token_label=token.label, softhsm_conf=SOFTHSM_CONF, token_dir=TOKEN_DIR,
                              database_url=db_url or settings.database_url)
    bootstrap.save_pins(settings.pin_file, token.pins)
    make_service(settings, True)
    close_all()
    toml = base_toml(token.label) + (f'database_url = "{db_url}"\n' if db_url else "")
    (path / "tsm.toml").write_text(toml)
    os.chmod(path / "tsm.toml", 0o600)
    return path


def run_tsm(*args: str, env: dict[str, str] | None = None, home: Path | None = None) -> Result:
    """`tsm ARGS` in this process, with every TSM_* variable unset except those given."""
    from keyservice.runtime import close_all
    from tsm.cli import main

    environment: dict[str, str | None] = dict.fromkeys(TSM_VARIABLES)
    environment["SOFTHSM2_CONF"] = str(SOFTHSM_CONF)
    environment["TSM_OPERATOR"] = "alice"
    if home is not None:
        environment["TSM_HOME"] = str(home)
    environment.update(env or {})
    try:
        return CliRunner().invoke(main, list(args), env=environment)
    finally:
        close_all()


def error_line(result: Result) -> str:
    """The one `error[...]` line of a refused command (exit 2, nothing else on stderr, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error["), result.stderr
    return lines[0]


def ends_cleanly(result: Result) -> None:
    """Success, or exactly one `error[...]` line and exit 2; never an unexpected exception."""
    if result.exit_code == 0:
        return
    error_line(result)
