"""A separate process that signs or aborts ceremony steps and, when told to, kills itself with SIGKILL (kill -9)
at the N-th boundary where the step touches the HSM or the database (tests/ceremonies/test_crash.py).

The crash point exists only in this script: it wraps, inside this process, the token calls that make or destroy
an object (`Hsm.generate`, `Hsm.create`, `Hsm.destroy`) and listens to every database commit (SQLAlchemy
`after_commit`), counting from the moment the runtime starts the step (after the person is authenticated). The
product code has no crash hook.

Input (stdin, JSON): the room's settings, `crash_at` (a boundary number, or null to run to the end) and the
operations, each with the person's password and code and the clock time `t` (a fake clock: the parent's).
Output: one line per boundary passed (`boundary N what`), then `done` when every operation ran.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from ceremonies.runtime import Runtime
from ceremonies.service import CeremonyService
from keyservice.hsm import Hsm
from keyservice.people import Credentials
from keyservice.runtime import open_service
from storage.config import load_settings, with_overrides
from storage.session import make_engine, session_factory
from tsm.commands.ceremony import caller_of


class Crash:
    """Counts the boundaries of the armed step and kills the process at `at`."""

    def __init__(self, at: int | None) -> None:
        self.at, self.passed, self.armed = at, 0, False

    def boundary(self, what: str) -> None:
        if not self.armed:
            return
        self.passed += 1
        print(f"boundary {self.passed} {what}", flush=True)
        if self.passed == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        event.listen(Session, "after_commit", lambda _session: self.boundary("commit"))
        for name in ("generate", "create", "destroy"):
            original = getattr(Hsm, name)

            def wrapped(hsm: Hsm, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                result = _original(hsm, *args, **kwargs)
                self.boundary(f"hsm.{_name}")
                return result

            setattr(Hsm, name, wrapped)
        for name in ("sign", "abort"):
            step = getattr(Runtime, name)

            def armed(runtime: Runtime, *args: Any, _step: Any = step, **kwargs: Any) -> Any:
                self.armed = True
                try:
                    return _step(runtime, *args, **kwargs)
                finally:
                    self.armed = False

            setattr(Runtime, name, armed)


def main() -> None:
    job = json.load(sys.stdin)
    room = job["settings"]
    settings = with_overrides(load_settings({"TSM_HOME": room["home"]}), database_url=room["database_url"],
                              token_label=room["token_label"], softhsm_conf=Path(room["softhsm_conf"]),
                              token_dir=Path(room["token_dir"]))
    crash = Crash(job["crash_at"])
    crash.install()
    ks = open_service(settings)
    clock = {"t": 0.0}
    ks.clock = lambda: clock["t"]
    sessions = session_factory(make_engine(settings.database_url, settings.database_busy_timeout))
    service = CeremonyService(ks, sessions, caller_of, clock=lambda: datetime.fromtimestamp(clock["t"], UTC))
    for op in job["ops"]:
        clock["t"] = op["t"]
        creds = Credentials(op["password"], op["code"])
        if op["op"] == "sign":
            service.sign(op["cid"], op["step"], op["name"], creds, op.get("inputs", {}))
        else:
            service.abort(op["cid"], op["reason"], op["name"], creds)
    print("done", flush=True)


if __name__ == "__main__":
    main()
