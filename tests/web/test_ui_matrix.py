"""The admin UI's role matrix (docs/operations.md, "Admin UI"), walked route by route for every role and for an
anonymous visitor: 200 (or the redirect a POST answers) where the matrix allows, 403 where it does not, the
sign-in page for the anonymous; every UI route is in the table; the navigation links only to allowed pages."""

from __future__ import annotations

import re

import pytest

from ceremonies.service import CeremonyService
from keyservice.people import Credentials, Role
from tests.web.ui import csrf_token, enroll, login
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.transport.local import LocalTransport
from web.admin.ceremonies import caller_of

OF, C, A, P, V, S, M = (Role.OFFICER, Role.CUSTODIAN, Role.AUDITOR, Role.OPERATOR, Role.VENDOR, Role.SP, Role.ADMIN)
SES = {OF, A, P, V}
MATRIX = [
    ("GET", "/admin/", {OF, C, A, P, M}),
    ("GET", "/admin/keys/", {OF, C, A}),
    ("GET", "/admin/ceremonies/", {OF, C, A}),
    ("GET", "/admin/ceremonies/start/key-generation", {OF}),
    ("POST", "/admin/ceremonies/start/key-generation", {OF}),
    ("GET", "/admin/ceremonies/{ceremony}", {OF, C, A}),
    ("POST", "/admin/ceremonies/{ceremony}/join", {OF, C}),
    ("POST", "/admin/ceremonies/{ceremony}/sign/1", {OF, C}),
    ("POST", "/admin/ceremonies/{ceremony}/approve", {OF}),
    ("POST", "/admin/ceremonies/{ceremony}/abort", {OF}),
    ("GET", "/admin/ceremonies/{ceremony}/evidence.json", {OF, A}),
    ("GET", "/admin/ceremonies/{ceremony}/evidence.html", {OF, A}),
    ("GET", "/admin/audit/", {OF, A}),
    ("GET", "/admin/audit/export.csv", {OF, A}),
    ("GET", "/admin/audit/export.json", {OF, A}),
    ("POST", "/admin/audit/verify", {OF, A}),
    ("GET", "/admin/people/", {OF, A, M}),
    ("POST", "/admin/people/", {OF}),
    ("GET", "/admin/secure-elements/", SES),
    ("GET", "/admin/secure-elements/{se}", SES),
    ("POST", "/admin/secure-elements/services/{service}/lost", {P}),
    ("POST", "/admin/secure-elements/services/{service}/unlock", {P}),
    ("POST", "/admin/secure-elements/services/{service}/delete", {P}),
    ("GET", "/admin/jobs/", {OF, A, P, S}),
    ("GET", "/admin/jobs/{job}", {OF, A, P, S}),
    ("GET", "/admin/metering/", {OF, A, M, S}),
    ("GET", "/admin/metering/export.csv?sp=metro", {OF, A, M, S}),
]
"""(method, path, roles allowed): the table of docs/operations.md."""
NOT_FOUND = {("/admin/secure-elements/{se}", V)}
"""Allowed, but outside the person's tenancy: the SE was discovered by the issuer, not announced by vendor acme."""
NAV = {"/admin/", "/admin/keys/", "/admin/ceremonies/", "/admin/audit/", "/admin/people/", "/admin/secure-elements/",
       "/admin/jobs/", "/admin/metering/"}
"""The pages the navigation may link to."""
UI_BLUEPRINTS = ("dashboard", "keys", "audit", "people", "secure_elements", "jobs", "metering", "ceremonies")
LINK = re.compile(r'<nav aria-label="main">(.*?)</nav>', re.S)


@pytest.fixture
def ui(world):  # type: ignore[no-untyped-def]
    with LocalTransport(world.card) as transport:
        service = lifecycle.open_service(world.lab.tsm, world.se_id, world.app_id, transport)
    world.service_id = service.id
    world.job_id = jobs.list_jobs(world.lab.tsm, world.se_id)[0].id
    officer = enroll(world.lab.keys, Role.OFFICER)
    world.ceremony_id = CeremonyService(world.lab.keys, world.lab.tsm.sessions, caller_of).start(
        "key-generation", {"label": "kmc-matrix"}, officer.name, Credentials(officer.password, officer.code())).id
    return world


def _expected(method: str, path: str, allowed: set[Role], role: Role | None) -> int:
    if role is None:
        return 302
    if role not in allowed:
        return 403
    if (path, role) in NOT_FOUND:
        return 404
    return 302 if method == "POST" else 200


def test_every_route_answers_each_role_as_the_matrix_says(ui):
    clients = {None: ui.client}
    for role in Role:
        client = ui.client
        assert login(client, enroll(ui.lab.keys, role)).status_code == 302
        clients[role] = client
    tokens = {role: csrf_token(client.get("/login").get_data(as_text=True)) for role, client in clients.items()}
    seen = []
    for method, template, allowed in MATRIX:
        path = template.format(se=ui.se_id, service=ui.service_id, job=ui.job_id, ceremony=ui.ceremony_id)
        for role, client in clients.items():
            answer = client.get(path) if method == "GET" else client.post(path, data={"csrf_token": tokens[role]})
            expected = _expected(method, template, allowed, role)
            seen.append((method, template, role, answer.status_code, expected))
            if expected == 302 and role is None:
                assert answer.headers["Location"].startswith("/login?next="), (path, answer.headers["Location"])
            if answer.status_code == 403:
                assert "Forbidden" in answer.get_data(as_text=True) and answer.mimetype == "text/html"
    wrong = [row for row in seen if row[3] != row[4]]
    assert not wrong, wrong


def test_every_ui_route_is_in_the_matrix(ui):
    urls = ui.app.url_map.bind("localhost")
    listed = {(urls.match(path.split("?")[0], method)[0], method) for method, path, _ in MATRIX}
    routes = {(rule.endpoint, method) for rule in ui.app.url_map.iter_rules()
              if rule.endpoint.split(".")[0] in UI_BLUEPRINTS for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == listed, routes ^ listed


def test_the_navigation_links_exactly_the_pages_a_role_may_open(ui):
    for role in Role:
        client = ui.client
        login(client, enroll(ui.lab.keys, role))
        allowed = {path for method, path, roles in MATRIX if method == "GET" and role in roles and path in NAV}
        page = client.get("/admin/" if role in MATRIX[0][2] else next(iter(sorted(allowed))))
        assert page.status_code == 200
        nav = LINK.search(page.get_data(as_text=True))
        assert nav is not None
        links = set(re.findall(r'href="([^"]+)"', nav.group(1)))
        assert links == allowed, (role, links, allowed)
        for path in set(NAV) - allowed:
            assert client.get(path).status_code == 403, (role, path)
