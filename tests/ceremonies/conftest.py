"""A ceremony room: a key service on a fresh SoftHSM2 token (lab or production), people enrolled during the
bootstrap, a fake clock (STYLE.md: fake only clocks) that moves 30 s on every authentication so no TOTP code is
used twice, and the ceremony service over it.

Rooms are module-scoped: enrolling ten people costs ten argon2id hashes, so each test module enrolls them once and
its tests run their own ceremonies (their own labels) in the same room; a test that changes people or the bootstrap
(ceremony 6) makes its own room."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyotp
import pytest

from ceremonies.service import CeremonyService
from keyservice.identity import Caller, CallerKind
from keyservice.people import Credentials, Role
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService
from tests.conftest import core_of, fresh_settings, make_service, throwaway_pg

PASSWORD = "correct horse battery staple"
ROOT = Request(Caller("root", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "bootstrap")


def caller_of(name: str, role: str) -> Caller:
    return Caller(name, CallerKind.OFFICER if role == "officer" else CallerKind.VENDOR if role == "vendor"
                  else CallerKind.SERVICE)


PEOPLE = (("alice", "officer"), ("bob", "officer"), ("carol", "officer"), ("dave", "officer"),
          ("cus1", "custodian"), ("cus2", "custodian"), ("cus3", "custodian"), ("eve", "auditor"),
          ("otto", "operator"), ("vera", "vendor"))


@dataclass
class Room:
    ks: KeyService
    service: CeremonyService
    t: float = 1_900_000_000.0
    secrets: dict[str, str] = field(default_factory=dict)
    settings: Any = None
    """The room's settings (token, database), for another process to open the same room."""

    def now(self) -> float:
        return self.t

    def enroll(self, name: str, role: str) -> None:
        self.secrets[name] = self.ks.people.enroll(ROOT, name, Role(role), PASSWORD).secret

    def creds(self, name: str, *, password: str = PASSWORD, code: str | None = None) -> Credentials:
        """Credentials for the next time step (each code is accepted once)."""
        self.t += 30
        return Credentials(password, code or pyotp.TOTP(self.secrets[name]).at(self.t))

    def start(self, kind: str, params: dict[str, str], who: str = "alice") -> str:
        return self.service.start(kind, params, who, self.creds(who)).id

    def join(self, cid: str, who: str, role: str) -> None:
        self.service.join(cid, role, who, self.creds(who))

    def sign(self, cid: str, who: str, **inputs: str) -> dict[str, str]:
        step = self.service.show(cid).next_step
        assert step is not None
        return self.service.sign(cid, step, who, self.creds(who), inputs).shown

    def approve(self, cid: str, *who: str) -> None:
        for name in who:
            self.service.approve(cid, name, self.creds(name))

    def token_labels(self) -> set[str]:
        return {o.label for o in core_of(self.ks).hsm.objects()}


def make_room(settings, *, test_token: bool, planner=None) -> Room:  # type: ignore[no-untyped-def]
    ks = make_service(settings, test_token)
    room = Room(ks, None, settings=settings)  # type: ignore[arg-type]
    ks.clock = room.now
    room.service = CeremonyService(ks, core_of(ks).sessions, caller_of,
                                   clock=lambda: datetime.fromtimestamp(room.t, UTC), planner=planner)
    for name, role in PEOPLE:
        room.enroll(name, role)
    return room


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Room:  # type: ignore[no-untyped-def]
    """A production token (quorum 2) on SQLite, shared by the module's tests."""
    home = tmp_path_factory.mktemp("prod")
    return make_room(fresh_settings(home, f"sqlite:///{home / 'prod.db'}"), test_token=False)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def lab(request, tmp_path_factory) -> Iterator[Room]:  # type: ignore[no-untyped-def]
    """A lab token (quorum 1, the console officer may act alone), on SQLite and PostgreSQL, shared by the
    module's tests."""
    home = tmp_path_factory.mktemp("lab")
    if request.param == "sqlite":
        yield make_room(fresh_settings(home, f"sqlite:///{home / 'lab.db'}"), test_token=True)
        return
    for url in throwaway_pg():
        yield make_room(fresh_settings(home, url), test_token=True)
