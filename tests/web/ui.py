"""Helpers of the admin UI tests: one enrolled person per role (password and TOTP secret kept for the test),
and signing in through the real /login form (name, password, the current TOTP code; CSRF token from the page)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import pyotp

from keyservice.identity import Caller, CallerKind
from keyservice.people import Role
from keyservice.policy import Purpose, Request

ENROLLER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "people")
OWNERS = {Role.SP: "metro", Role.VENDOR: "acme"}
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Person:
    name: str
    role: Role
    password: str
    secret: str

    def code(self, at: float | None = None) -> str:
        totp = pyotp.TOTP(self.secret)
        return totp.now() if at is None else totp.at(at)


def enroll(keys, role: Role, name: str | None = None) -> Person:  # type: ignore[no-untyped-def]
    """Enroll a person of `role` (during the bootstrap: no approvals) with a random password."""
    name = name or f"{role.value}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(18)
    enrolled = keys.people.enroll(ENROLLER, name, role, password, owner=OWNERS.get(role))
    return Person(name, role, password, enrolled.secret)


def csrf_token(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:2000]
    return found.group(1) or found.group(2)


def login(client, person: Person, code: str | None = None, next_url: str = ""):  # type: ignore[no-untyped-def]
    """POST /login as `person`; the response (not followed)."""
    page = client.get("/login")
    form = {"csrf_token": csrf_token(page.get_data(as_text=True)), "name": person.name,
            "password": person.password, "code": code or person.code()}
    return client.post("/login" + (f"?next={next_url}" if next_url else ""), data=form)
