"""`tsm demo`: demo people for the admin UI (issue 12; docs/operations.md, "Demo mode"), only with TSM_DEMO=1.

Makes whoever of DEMO_PEOPLE does not exist yet (and the demo SP tenant its SP person acts for), each with a
random password, and prints each new person's name, role, password and TOTP secret ONCE; people who exist are
left alone (their secrets are not stored anywhere they could be printed again). `make run` calls it when
TSM_DEMO=1. Never use demo people on a production token.
"""

from __future__ import annotations

import os
import secrets
from typing import Final

import click

from keyservice.errors import InvalidInput
from keyservice.people import PersonState, Role
from keyservice.policy import Purpose, Request
from tsm.identity import console_officer
from tsm.service import tsm_context
from tsm_core.registry import service as registry

DEMO_SP: Final = "demo-transit"
DEMO_PEOPLE: Final = (("demo-officer", Role.OFFICER, None), ("demo-officer2", Role.OFFICER, None),
                      ("demo-auditor", Role.AUDITOR, None), ("demo-operator", Role.OPERATOR, None),
                      ("demo-sp", Role.SP, DEMO_SP))
"""(name, role, owner): two officers (dual control), an auditor, an operator, an SP's person."""
PASSWORD_BYTES: Final = 15
"""token_urlsafe(15): 20 characters, 120 random bits."""


@click.command("demo")
def demo_command() -> None:
    """With TSM_DEMO=1: enroll the demo people that do not exist yet; print their passwords and TOTP secrets
    once."""
    if os.environ.get("TSM_DEMO") != "1":
        raise InvalidInput("tsm demo makes demo people with printed passwords: it runs only with TSM_DEMO=1")
    tsm = tsm_context()
    people = tsm.keys.people
    known = {p.name for p in people.list_people() if p.state is PersonState.ACTIVE}
    if DEMO_SP not in {t.name for t in registry.list_tenants(tsm, "sp")}:
        registry.add_tenant(tsm, DEMO_SP, "sp")
    made = 0
    for name, role, owner in DEMO_PEOPLE:
        if name in known:
            click.echo(f"{name} ({role.value}) exists; its password was printed when it was made")
            continue
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        req = Request(console_officer(), Purpose.KEY_MANAGEMENT, f"person:{name}")
        enrolled = people.enroll(req, name, role, password, owner=owner)
        click.echo(f"{name} ({role.value}{', ' + owner if owner else ''}): password {password}  "
                   f"TOTP secret {enrolled.secret}")
        made += 1
    if made:
        click.echo("shown once: keep these now; sign in at /login with the password and the current TOTP code")
