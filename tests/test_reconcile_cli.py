"""`tsm keys approve-reconcile` and `tsm keys reconcile --yes --approval FILE` on a sealed production home, as
separate processes (docs/cli.md, docs/people.md "Sealed chain")."""

from __future__ import annotations

import json
import re
import sqlite3

import pyotp

from tests.test_user_cli import PASSWORD, one_error, tsm


def test_a_sealed_production_home_is_reconciled_with_two_approvals(tmp_path):
    assert tsm(tmp_path, "init").returncode == 0  # a production token
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    secrets = {}
    for name in ("bob", "carol"):
        proc = tsm(tmp_path, "user", "add", name, "--role", "officer", "--password-file", str(tmp_path / "pw"))
        assert proc.returncode == 0, proc.stderr
        secrets[name] = re.search(r"^secret ([A-Z2-7]+)$", proc.stdout, re.M).group(1)
    with sqlite3.connect(tmp_path / "tsm.db") as db:  # the attacker drops the newest record (carol's enrolment)
        seq = db.execute("SELECT seq FROM ks_audit_head").fetchone()[0]
        kept = db.execute("SELECT record_hash FROM ks_audit WHERE seq = ?", (seq - 1,)).fetchone()[0]
        db.execute("DELETE FROM ks_audit WHERE seq = ?", (seq,))
        db.execute("UPDATE ks_audit_head SET seq = ?, record_hash = ?", (seq - 1, kept))
    assert tsm(tmp_path, "audit", "verify").returncode != 0  # and the service seals

    refused = one_error(tsm(tmp_path, "keys", "reconcile", "--yes"), "approval_required")
    assert "tsm keys approve-reconcile" in refused
    files = []
    for name in ("bob", "carol"):
        creds = tmp_path / f"{name}.creds"
        creds.write_text(f"{PASSWORD}\n{pyotp.TOTP(secrets[name]).now()}\n")
        proc = tsm(tmp_path, "keys", "approve-reconcile", "--as", name, "--credentials", str(creds),
                   "--requester", "console")
        assert proc.returncode == 0 and proc.stdout.startswith("tsm-approval.v1."), proc.stderr
        files.append(tmp_path / f"{name}.approval")
        files[-1].write_text(proc.stdout)
    again = tsm(tmp_path, "keys", "approve-reconcile", "--as", "bob", "--credentials", str(tmp_path / "bob.creds"),
                "--requester", "console")
    one_error(again, "totp_replayed")  # the same code, inside the seal

    done = tsm(tmp_path, "keys", "reconcile", "--yes", "--approval", str(files[0]), "--approval", str(files[1]))
    assert done.returncode == 0 and "reconciled" in done.stdout, done.stderr
    assert tsm(tmp_path, "audit", "verify").returncode == 0
    with sqlite3.connect(tmp_path / "tsm.db") as db:
        detail = json.loads(db.execute("SELECT detail FROM ks_audit ORDER BY seq DESC LIMIT 1").fetchone()[0])
    assert detail["clearance"] == "approved by bob, carol" and detail["persons"] == ["bob", "carol"]
