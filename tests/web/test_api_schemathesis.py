"""schemathesis against /api/openapi.json on a real gunicorn (`tsm serve`), started by the test on a fresh
home and stopped by its process group's id: no 500s, every response matches the document's schema. The home
has an SE vendor and an SP; each kind's API key (SP, vendor, TSM component) comes from `tsm apikey create` (its
last line)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_cli import TSM, _free_port, tsm

ST = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
MAX_EXAMPLES = "8"


@pytest.fixture(scope="module")
def served(tmp_path_factory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("api-home")
    tsm(home, "init", "--test-token")
    tsm(home, "vendor", "add", "acme")
    tsm(home, "sp", "add", "metro")
    keys = {kind: tsm(home, "apikey", "create", f"--{kind}", name, *extra).stdout.strip().splitlines()[-1]
            for kind, name, extra in (("sp", "metro", ()), ("vendor", "acme", ()),
                                      ("component", "perso", ("--purpose", "SE_MANAGEMENT")))}
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL")}
    env.update(TSM_HOME=str(home), TSM_API_RATE_LIMIT="100000 per minute")
    log = home / "serve.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([TSM, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"{base}/api/openapi.json", timeout=2):  # noqa: S310 - http, ours
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        else:
            pytest.fail(log.read_text())
        yield base, keys, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("kind", ["sp", "vendor", "component"])
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(served, kind):
    base, keys, log = served
    run = subprocess.run([ST, "run", f"{base}/api/openapi.json", "--checks", CHECKS, "--max-examples", MAX_EXAMPLES,
                          "--seed", "12", "-H", f"Authorization: Bearer {keys[kind]}", "--request-timeout", "30"],
                         capture_output=True, text=True, timeout=540, check=False, cwd=log.parent)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:] + log.read_text()[-3000:]
    assert "Tested: 25" in run.stdout, run.stdout[-3000:]
    assert keys[kind] not in log.read_text()
