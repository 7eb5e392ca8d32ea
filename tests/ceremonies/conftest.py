"""A ceremony room: a key service on a fresh SoftHSM2 token (lab or production), people enrolled during the
bootstrap, a fake clock (STYLE.md: fake only clocks) that moves 30 s on every authentication so no TOTP code is
used twice, and the ceremony service over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyotp
import pytest

from ceremonies.service import CeremonyService
from keyservice.identity import Caller, CallerKind
from keyservice.people import Credentials, Role
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService
from tests.conftest import core_of, make_service

PASSWORD = "correct horse battery staple"
ROOT = Request(Caller("root", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "bootstrap")


def caller_of(name: str, role: str) -> Caller:
    return Caller(name, CallerKind.OFFICER if role == "officer" else CallerKind.VENDOR if role == "vendor"
                  else CallerKind.SERVICE)


@dataclass
class Room:
    ks: KeyService
    service: CeremonyService
    t: float = 1_900_000_000.0
    secrets: dict[str, str] = field(default_factory=dict)

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


def make_room(settings_factory, db: str, *, test_token: bool, planner=None) -> Room:  # type: ignore[no-untyped-def]
    settings, _ = settings_factory(db)
    ks = make_service(settings, test_token)
    room = Room(ks, None)  # type: ignore[arg-type]
    ks.clock = room.now
    room.service = CeremonyService(ks, core_of(ks).sessions, caller_of,
                                   clock=lambda: datetime.fromtimestamp(room.t, UTC), planner=planner)
    for name, role in (("alice", "officer"), ("bob", "officer"), ("carol", "officer"), ("dave", "officer"),
                       ("cus1", "custodian"), ("cus2", "custodian"), ("cus3", "custodian"), ("eve", "auditor"),
                       ("otto", "operator"), ("vera", "vendor")):
        room.enroll(name, role)
    return room


@pytest.fixture
def production(settings_factory, tmp_path) -> Room:  # type: ignore[no-untyped-def]
    """A production token (quorum 2) on SQLite."""
    return make_room(settings_factory, f"sqlite:///{tmp_path / 'prod.db'}", test_token=False)


@pytest.fixture
def lab(settings_factory, db_url) -> Room:  # type: ignore[no-untyped-def]
    """A lab token (quorum 1, the console officer may act alone), on SQLite and PostgreSQL."""
    return make_room(settings_factory, db_url, test_token=True)
