"""Helpers for the people and approval tests: a clock the tests move (STYLE.md: fake only clocks), enrolment of
people with known passwords, their current TOTP codes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyotp

from keyservice.identity import Caller, CallerKind
from keyservice.people import Credentials, Role
from keyservice.policy import Purpose, Request

PASSWORD = "correct horse battery"
START = 1_900_000_000.0


@dataclass
class Clock:
    """Seconds since the epoch, moved by the test."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 30.0) -> None:
        self.now += seconds


@dataclass
class Team:
    """A key service with a moved clock and the TOTP secrets of the people it enrolled."""

    service: object
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)

    def enroll(self, name: str, role: Role = Role.OFFICER, **kwargs: object) -> None:
        enrollment = self.service.people.enroll(officer("console"), name, role, PASSWORD, **kwargs)
        self.secrets[name] = enrollment.secret

    def code(self, name: str, at: float | None = None) -> str:
        return pyotp.TOTP(self.secrets[name]).at(self.clock.now if at is None else at)

    def creds(self, name: str, password: str = PASSWORD) -> Credentials:
        return Credentials(password, self.code(name))

    def login(self, name: str):
        """Authenticate `name` now, then move on one TOTP step (a code is accepted once)."""
        who = self.service.people.authenticate(name, self.creds(name))
        self.clock.tick()
        return who

    def approve(self, spec, name: str, requester: str):
        approval = self.service.approvals.approve(spec.digest, name, self.creds(name), requester=requester)
        self.clock.tick()
        return approval


def officer(name: str) -> Request:
    return Request(Caller(name, CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")


def team(service) -> Team:
    clock = Clock()
    service.clock = clock
    return Team(service, clock)
