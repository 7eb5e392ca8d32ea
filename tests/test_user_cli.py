"""`tsm user add/list`, `tsm bootstrap close --as NAME`, and the refusal of a privileged command without approvals
on a production token, as separate processes on a fresh production $TSM_HOME (docs/cli.md, docs/people.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pyotp
import pytest

from tests.serving import TSM

PASSWORD = "correct horse battery"


def tsm(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL")}
    env.update(TSM_HOME=str(home), TSM_OPERATOR="console")
    return subprocess.run([TSM, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)


def one_error(proc: subprocess.CompletedProcess[str], code: str) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(f"error[{code}]"), proc.stderr
    return proc.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("people-home")
    assert tsm(path, "init").returncode == 0  # a production token
    (path / "pw").write_text(PASSWORD + "\n")
    return path


def test_enrol_close_the_bootstrap_and_refuse_unapproved_key_generation(home):
    secrets = {}
    for name in ("alice", "bob"):
        proc = tsm(home, "user", "add", name, "--role", "officer", "--password-file", str(home / "pw"))
        assert proc.returncode == 0, proc.stderr
        uri = next(line for line in proc.stdout.splitlines() if line.startswith("otpauth://totp/"))
        secrets[name] = re.search(r"^secret ([A-Z2-7]+)$", proc.stdout, re.M).group(1)
        assert f"secret={secrets[name]}" in uri
        assert any(block in proc.stdout for block in "█▀▄")  # the QR code in the terminal
    listed = json.loads(tsm(home, "user", "list", "--json").stdout)
    assert [(p["name"], p["role"], p["state"], p["locked"]) for p in listed] == [
        ("alice", "officer", "active", False), ("bob", "officer", "active", False)]
    assert PASSWORD not in json.dumps(listed) and secrets["alice"] not in json.dumps(listed)

    generated = tsm(home, "keys", "generate", "--label", "kmc", "--type", "aes", "--usage", "KMC")
    assert "tsm ceremony start key-generation" in one_error(generated, "approval_required")

    wrong = tsm(home, "bootstrap", "close", "--as", "alice", stdin="not the password\n000000\n")
    one_error(wrong, "authentication_failed")
    creds = home / "alice.creds"
    creds.write_text(f"{PASSWORD}\n{pyotp.TOTP(secrets['alice']).now()}\n")
    closed = tsm(home, "bootstrap", "close", "--as", "alice", "--credentials", str(creds))
    assert closed.returncode == 0 and "bootstrap closed by alice" in closed.stdout, closed.stderr
    again = tsm(home, "user", "add", "carol", "--role", "auditor", "--password-file", str(home / "pw"))
    assert "quorum-and-people" in one_error(again, "approval_required")
    quorum = json.loads(tsm(home, "quorum", "show", "--json").stdout)
    assert {q["scope"]: (q["m"], q["n"]) for q in quorum}["key-generate"] == (2, 2)
