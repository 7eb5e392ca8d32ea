"""Admin UI sign-in (docs/operations.md, "Admin UI"): password + TOTP through the key service, wrong code,
replayed code, lock-out, sign-out by POST with CSRF, idle time-out, a removed person signed out, cookie flags."""

from __future__ import annotations

import pytest

from keyservice.people import Role
from tests.web.ui import enroll, login


@pytest.fixture
def ui(world):  # type: ignore[no-untyped-def]
    return world


def test_officer_signs_in_and_lands_on_the_dashboard(ui):
    officer = enroll(ui.lab.keys, Role.OFFICER)
    client = ui.client
    answer = login(client, officer)
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Dashboard" in text and officer.name in text
