"""schemathesis against /api/openapi.json on a real gunicorn (`tsm serve`), started by the test on a fresh
home and stopped by its process group's id: no 500s, every response matches the document's schema. The home
has an SE vendor and an SP; each kind's API key (SP, vendor, TSM component) comes from `tsm apikey create` (its
last line)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving import served
from tests.test_cli import tsm

ST = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
MAX_EXAMPLES = "8"


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("api-home")
    tsm(home, "init", "--test-token")
    tsm(home, "vendor", "add", "acme")
    tsm(home, "sp", "add", "metro")
    keys = {kind: tsm(home, "apikey", "create", f"--{kind}", name, *extra).stdout.strip().splitlines()[-1]
            for kind, name, extra in (("sp", "metro", ()), ("vendor", "acme", ()),
                                      ("component", "perso", ("--purpose", "SE_MANAGEMENT")))}
    with served(home, "/api/openapi.json", TSM_API_RATE_LIMIT="100000 per minute") as (base, log):
        yield base, keys, log


@pytest.mark.parametrize("kind", ["sp", "vendor", "component"])
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(server, kind):
    base, keys, log = server
    run = subprocess.run([ST, "run", f"{base}/api/openapi.json", "--checks", CHECKS, "--max-examples", MAX_EXAMPLES,
                          "--seed", "12", "-H", f"Authorization: Bearer {keys[kind]}", "--request-timeout", "30"],
                         capture_output=True, text=True, timeout=540, check=False, cwd=log.parent)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:] + log.read_text()[-3000:]
    assert "Tested: 25" in run.stdout, run.stdout[-3000:]
    assert keys[kind] not in log.read_text()
