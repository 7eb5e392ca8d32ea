"""Admin UI sign-in (docs/operations.md, "Admin UI"): password + TOTP through the key service, wrong code,
replayed code, lock-out, sign-out by POST with CSRF, idle time-out, a removed person signed out, cookie flags."""

from __future__ import annotations

import time

import pytest

from keyservice.people import Role
from tests.web.ui import ENROLLER, csrf_token, enroll, login


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


def _text(answer) -> str:  # type: ignore[no-untyped-def]
    return answer.get_data(as_text=True)


def test_a_wrong_code_a_replayed_code_and_the_lock_out_each_say_so(ui):
    officer = enroll(ui.lab.keys, Role.OFFICER)
    client = ui.client
    wrong = "000000" if officer.code() != "000000" else "111111"
    answer = login(client, officer, code=wrong)
    assert answer.status_code == 401 and "Name, password or code is wrong." in _text(answer)
    assert client.get("/admin/").status_code == 302
    assert login(client, officer).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(_text(client.get("/admin/")))})
    answer = login(client, officer)  # the same code again
    assert answer.status_code == 401 and "already used" in _text(answer)
    for _ in range(5):
        login(client, officer, code=wrong)
    answer = login(client, officer, code=officer.code(time.time() + 30))
    assert answer.status_code == 423 and "Account locked, try again later." in _text(answer)
    assert officer.password not in _text(answer)


def test_sign_out_is_a_post_with_the_csrf_token(ui):
    officer = enroll(ui.lab.keys, Role.OFFICER)
    client = ui.client
    login(client, officer)
    assert client.get("/logout").status_code == 405
    refused = client.post("/logout")
    assert refused.status_code == 400 and "CSRF" in _text(refused) and refused.mimetype == "text/html"
    assert client.get("/admin/").status_code == 200
    answer = client.post("/logout", data={"csrf_token": csrf_token(_text(client.get("/admin/")))})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert "You are signed out." in _text(client.get("/login"))
    assert client.get("/admin/").status_code == 302


def test_the_login_form_needs_its_csrf_token(ui):
    officer = enroll(ui.lab.keys, Role.OFFICER)
    answer = ui.client.post("/login", data={"name": officer.name, "password": officer.password,
                                            "code": officer.code()})
    assert answer.status_code == 400


def test_an_idle_session_times_out(ui):
    at = [time.time()]
    ui.app.config["TSM_CLOCK"] = lambda: at[0]
    officer = enroll(ui.lab.keys, Role.OFFICER)
    client = ui.client
    login(client, officer)
    at[0] += 14 * 60
    assert client.get("/admin/").status_code == 200
    at[0] += 14 * 60  # 14 minutes after the last request: still in
    assert client.get("/admin/keys/").status_code == 200
    at[0] += 15 * 60 + 1
    answer = client.get("/admin/keys/")
    assert answer.status_code == 302 and answer.headers["Location"] == "/login?next=/admin/keys/"
    assert "Your session timed out" in _text(client.get("/login"))
    assert client.get("/admin/").status_code == 302


def test_a_removed_person_is_signed_out_at_the_next_request(ui):
    officer, operator = enroll(ui.lab.keys, Role.OFFICER), enroll(ui.lab.keys, Role.OPERATOR)
    client = ui.client
    login(client, operator)
    assert client.get("/admin/").status_code == 200
    ui.lab.keys.people.remove(ENROLLER, operator.name)
    answer = client.get("/admin/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    assert officer.name


def test_after_sign_in_only_a_local_next_is_followed(ui):
    first, second = enroll(ui.lab.keys, Role.OFFICER), enroll(ui.lab.keys, Role.OFFICER)
    answer = login(ui.client, first, next_url="/admin/keys/")
    assert answer.headers["Location"] == "/admin/keys/"
    answer = login(ui.client, second, next_url="//evil.example/")
    assert answer.headers["Location"] == "/admin/"


def test_the_session_cookie_is_secure_httponly_and_samesite(ui):
    officer = enroll(ui.lab.keys, Role.OFFICER)
    answer = login(ui.client, officer)
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = ui.client.get("/login")
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "<script" not in _text(page) and "style=" not in _text(page)


def test_posts_to_login_are_rate_limited(settings_factory, tmp_path):
    from dataclasses import replace

    from tests.tsm_core.lab import make_lab
    from web.app import create_app

    settings, test_token = settings_factory(f"sqlite:///{tmp_path / 'tsm.db'}")
    lab = make_lab(replace(settings, login_rate_limit="3 per minute"), test_token)
    client = create_app({"TSM_SETTINGS": lab.settings, "TESTING": True}).test_client()
    officer = enroll(lab.keys, Role.OFFICER)
    codes = [login(client, officer, code="000000").status_code for _ in range(4)]
    assert codes[:3] != [429] * 3 and codes[3] == 429
    assert client.get("/login").status_code == 200
