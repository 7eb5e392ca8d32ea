"""`tsm ceremony` end to end as separate processes on a fresh lab $TSM_HOME: ceremony 1 (a KMC generated in the
HSM, no split) by two officers enrolled with `tsm user add`, each call authenticated with `--as` (password and
TOTP code from `--credentials FILE` or stdin), then the evidence exported and verified; a wrong code refused in one
line (docs/cli.md, docs/ceremonies.md).

TOTP codes are accepted once per person and 30-s step, within one step either side of now: each person's calls
use the next unused step of that window (waiting for the clock when none is left)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

from tests.test_user_cli import PASSWORD, one_error, tsm

STEP = 30


class Person:
    """An enrolled person's TOTP secret and the last time step they used."""

    def __init__(self, secret: str) -> None:
        self.totp, self.last = pyotp.TOTP(secret), 0

    def code(self) -> str:
        """A code of the next unused step within the window (RFC 6238: ±1 step accepted)."""
        step = max(self.last + 1, int(time.time() // STEP) - 1)
        while step > int(time.time() // STEP) + 1:  # every step of the window used: wait for the next one
            time.sleep(1)
        self.last = step
        return self.totp.at(step * STEP)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ceremony-home")
    assert tsm(path, "init", "--test-token").returncode == 0
    (path / "pw").write_text(PASSWORD + "\n")
    return path


def enroll(home: Path, name: str) -> Person:
    proc = tsm(home, "user", "add", name, "--role", "officer", "--password-file", str(home / "pw"))
    assert proc.returncode == 0, proc.stderr
    uri = next(line for line in proc.stdout.splitlines() if line.startswith("otpauth://totp/"))
    return Person(parse_qs(urlparse(uri).query)["secret"][0])


def test_key_generation_ceremony_from_the_console(home: Path, tmp_path: Path):
    alice, bob = enroll(home, "alice"), enroll(home, "bob")
    creds = tmp_path / "creds"

    def by(name: str, who: Person, *args: str) -> str:
        """`tsm ceremony ARGS --as NAME`: alice's credentials from a file, bob's from stdin."""
        if name == "alice":
            creds.write_text(f"{PASSWORD}\n{who.code()}\n")
            proc = tsm(home, "ceremony", *args, "--as", name, "--credentials", str(creds))
        else:
            proc = tsm(home, "ceremony", *args, "--as", name, stdin=f"{PASSWORD}\n{who.code()}\n")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cid = by("alice", alice, "start", "key-generation", "--param", "label=kmc-cli", "--param", "usage=KMC")
    cid = cid.strip().splitlines()[-1]  # the ceremony id is printed last
    by("bob", bob, "join", cid, "--role", "officer")
    by("alice", alice, "sign", cid, "1")
    by("bob", bob, "approve", cid)
    shown = json.loads(tsm(home, "ceremony", "show", cid, "--json").stdout)
    assert shown["next_step"] == 2 and [a["approver"] for a in shown["approvals"]] == ["bob"]
    by("alice", alice, "sign", cid, "2")  # generated in the HSM with bob's approval
    kcv = json.loads(tsm(home, "ceremony", "show", cid, "--json").stdout)["outputs"]["label_kcv"]

    wrong = tsm(home, "ceremony", "sign", cid, "3", "--as", "bob",
                stdin=f"{PASSWORD}\n{bob.totp.at(time.time() - 3600)}\n")
    one_error(wrong, "authentication_failed")
    (tmp_path / "kcv").write_text(f"kcv={kcv}\n")
    by("bob", bob, "sign", cid, "3", "--input", str(tmp_path / "kcv"))
    by("alice", alice, "sign", cid, "4")  # activate: the lab's console officer alone

    view = json.loads(tsm(home, "ceremony", "show", cid, "--json").stdout)
    assert view["state"] == "completed" and view["next_step"] is None
    assert [(s["number"], s["signed_by"]) for s in view["steps"]] == [(1, "alice"), (2, "alice"), (3, "bob"),
                                                                     (4, "alice")]
    out = tmp_path / "evidence.json"
    assert tsm(home, "ceremony", "export", cid, "--out", str(out)).returncode == 0
    assert out.with_suffix(".html").exists() and PASSWORD not in out.read_text()
    verified = tsm(home, "ceremony", "verify", str(out))
    assert verified.returncode == 0 and cid in verified.stdout, verified.stderr
    data = json.loads(out.read_text())
    data["transcript"]["requester"] = "mallory"
    out.write_text(json.dumps(data))
    one_error(tsm(home, "ceremony", "verify", str(out)), "evidence_mismatch")
