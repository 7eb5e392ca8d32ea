"""`tsm demo` (docs/operations.md, "Demo mode"): only with TSM_DEMO=1; makes the five demo people once, printing
each one's password and TOTP secret once; a second run leaves them alone and prints no secret."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pyotp

from tests.serving import TSM

LINE = re.compile(r"^(\S+) \((\w+)(?:, (\S+))?\): password (\S+)  TOTP secret ([A-Z2-7]+)$", re.M)


def run(home: Path, *args: str, demo: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL", "TSM_DEMO")}
    env.update(TSM_HOME=str(home), TSM_OPERATOR="console", **({"TSM_DEMO": "1"} if demo else {}))
    return subprocess.run([TSM, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def demo_people(home: Path) -> dict[str, tuple[str, str]]:
    """`tsm demo` in `home`: name -> (password, TOTP secret) of the people it made."""
    proc = run(home, "demo")
    assert proc.returncode == 0, proc.stderr
    return {m[1]: (m[4], m[5]) for m in LINE.finditer(proc.stdout)}


def test_demo_people_are_made_once_and_only_in_demo_mode(tmp_path):
    assert run(tmp_path, "init", "--test-token").returncode == 0
    refused = run(tmp_path, "demo", demo=False)
    assert refused.returncode == 2 and refused.stderr.startswith("error[invalid_input]") and "TSM_DEMO=1" in \
        refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    made = demo_people(tmp_path)
    assert set(made) == {"demo-officer", "demo-officer2", "demo-auditor", "demo-operator", "demo-sp"}
    assert len({password for password, _ in made.values()}) == 5
    assert all(len(pyotp.TOTP(secret).now()) == 6 for _, secret in made.values())
    again = run(tmp_path, "demo")
    assert again.returncode == 0 and not LINE.search(again.stdout) and "TOTP secret" not in again.stdout
    assert again.stdout.count("exists") == 5
    listed = run(tmp_path, "user", "list").stdout
    assert "demo-sp" in listed and all(password not in listed for password, _ in made.values())
