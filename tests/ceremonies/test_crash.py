"""Crash safety of the ceremonies (issue 11): a separate process signs a step, or aborts, and is killed with
SIGKILL at each boundary where it touches the HSM or the database (tests/ceremonies/crash_worker.py, whose crash
point only that script arms); then a fresh process resumes each ceremony (signs the step again) or aborts it, and
the token is checked against the inventory: no usable half-made key, no orphan object, no interrupted intent, no
sealed component left after an abort (docs/ceremonies.md, "Crash safety")."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyotp
import pytest

from keyservice.errors import KeyNotFound
from tests.ceremonies.conftest import PASSWORD, Room, make_room
from tests.conftest import fresh_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def room(tmp_path_factory) -> Room:  # type: ignore[no-untyped-def]
    """A lab token (the console officer alone clears privileged steps) on SQLite."""
    home = tmp_path_factory.mktemp("crash")
    return make_room(fresh_settings(home, f"sqlite:///{home / 'crash.db'}"), test_token=True)


def op(room: Room, kind: str, cid: str, who: str, **extra: Any) -> dict[str, Any]:
    """One operation for the worker, with `who`'s credentials at the next time step of the fake clock."""
    room.t += 30
    return {"op": kind, "cid": cid, "name": who, "password": PASSWORD,
            "code": pyotp.TOTP(room.secrets[who]).at(room.t), "t": room.t, **extra}


def worker(room: Room, ops: list[dict[str, Any]], crash_at: int | None) -> tuple[int, list[str]]:
    """Run the worker process; its exit status and the boundaries it passed."""
    s = room.settings
    job = {"settings": {"home": str(s.home), "database_url": s.database_url, "token_label": s.token_label,
                        "softhsm_conf": str(s.softhsm_conf), "token_dir": str(s.token_dir)},
           "crash_at": crash_at, "ops": ops}
    done = subprocess.run([sys.executable, "-m", "tests.ceremonies.crash_worker"], input=json.dumps(job),
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode, [line.split(" ", 2)[2] for line in done.stdout.splitlines() if line.startswith("boundary")]


def state(room: Room, label: str) -> str:
    try:
        return room.ks.keys.show(label).state
    except KeyNotFound:
        return "none"


def sweep(room: Room, prepare: Any, kind: str, step: int) -> list[tuple[str, str, str]]:
    """Kill the worker at every boundary of (`kind`, `step`) of a ceremony `prepare(label)` made ready; returns
    (ceremony, label, where it was killed) for each, after checking nothing made is usable."""
    probe = prepare(f"crash-{kind}-0")
    _, boundaries = worker(room, [op(room, kind, probe, "alice", step=step, reason="probe")], None)
    assert len(boundaries) >= 4, boundaries  # the key's intent, object, record; the step's sign-off
    killed = []
    for at in range(1, len(boundaries) + 1):
        label = f"crash-{kind}-{at}"
        cid = prepare(label)
        status, passed = worker(room, [op(room, kind, cid, "alice", step=step, reason="probe")], at)
        assert status == -signal.SIGKILL and len(passed) == at
        assert state(room, label) in ("none", "pre-activation", "destroyed")  # nothing half-made is usable
        killed.append((cid, label, boundaries[at - 1]))
    return killed


def test_kill_9_at_every_boundary_of_forming_a_key_then_resume_or_abort(room: Room):
    def prepare(label: str) -> str:  # key generation split in two components, both held: step 4 forms the key
        cid = room.start("key-generation", {"label": label, "components": "2"})
        room.join(cid, "cus1", "custodian")
        room.join(cid, "cus2", "custodian")
        room.sign(cid, "alice")
        room.sign(cid, "cus1")
        room.sign(cid, "cus2")
        return cid

    killed = sweep(room, prepare, "sign", 4)
    ops = [op(room, "sign", cid, "alice", step=4) if n % 2 == 0 else op(room, "abort", cid, "bob", reason="crashed")
           for n, (cid, _, _) in enumerate(killed) if n % 2 or room.service.show(cid).next_step == 4]
    assert worker(room, ops, None)[0] == 0  # a fresh process resumes half of them and aborts the others
    on_token = room.token_labels()
    for n, (cid, label, where) in enumerate(killed):
        view = room.service.show(cid)
        assert room.ks.components.held(cid) == [], where
        if n % 2 == 0:
            assert view.next_step == 5 and view.steps[3].signed_by == "alice", where
            assert state(room, label) == "pre-activation" and label in on_token, where
        else:
            assert view.state == "aborted", where
            assert state(room, label) in ("none", "destroyed") and label not in on_token, where
    assert room.ks.keys.check().consistent


def test_kill_9_at_every_boundary_of_an_abort_then_abort_again(room: Room):
    def prepare(label: str) -> str:  # key generation, the key made (pre-activation): an abort destroys it
        cid = room.start("key-generation", {"label": label})
        room.sign(cid, "alice")
        room.sign(cid, "alice")
        return cid

    killed = sweep(room, prepare, "abort", 0)
    ops = [op(room, "abort", cid, "bob", reason="crashed") for cid, _, _ in killed
           if room.service.show(cid).state == "open"]
    assert worker(room, ops, None)[0] == 0
    on_token = room.token_labels()
    for cid, label, where in killed:
        assert room.service.show(cid).state == "aborted", where
        assert state(room, label) == "destroyed" and label not in on_token, where
    assert room.ks.keys.check().consistent
