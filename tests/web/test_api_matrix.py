"""Every API route × every kind of credential: the authorisation matrix (docs/api.md, "Scopes"). A route
missing from MATRIX fails the test, so a new route cannot go unchecked."""

from __future__ import annotations

import pytest

from tsm_core.apikeys.service import SCOPES

KINDS = ("none", "sp", "vendor", "device")
MATRIX = {
    # (method, rule): the scope it needs
    ("GET", "/api/v1/secure-elements"): "secure-elements:read",
    ("GET", "/api/v1/secure-elements/<se_id>"): "secure-elements:read",
    ("POST", "/api/v1/secure-elements"): "secure-elements:write",
    ("GET", "/api/v1/apps"): "apps:read",
    ("POST", "/api/v1/services"): "services:write",
    ("GET", "/api/v1/services"): "services:read",
    ("GET", "/api/v1/services/<service_id>"): "services:read",
    ("POST", "/api/v1/services/<service_id>/actions"): "services:write",
    ("GET", "/api/v1/operations/<operation_id>"): "operations:read",
    ("GET", "/api/v1/jobs"): "jobs:read",
}
ALLOWED = {  # what each kind gets on this world, where the service is already ordered (409: authorised, refused)
    "sp": {"GET /api/v1/secure-elements": 403, "GET /api/v1/secure-elements/<se_id>": 200,
           "POST /api/v1/secure-elements": 403, "GET /api/v1/apps": 200, "POST /api/v1/services": 409,
           "GET /api/v1/services": 200, "GET /api/v1/services/<service_id>": 200,
           "POST /api/v1/services/<service_id>/actions": 202, "GET /api/v1/operations/<operation_id>": 200,
           "GET /api/v1/jobs": 200},
    "vendor": {"GET /api/v1/secure-elements": 200, "GET /api/v1/secure-elements/<se_id>": 404,
               "POST /api/v1/secure-elements": 201, "GET /api/v1/apps": 403, "POST /api/v1/services": 403,
               "GET /api/v1/services": 403, "GET /api/v1/services/<service_id>": 403,
               "POST /api/v1/services/<service_id>/actions": 403, "GET /api/v1/operations/<operation_id>": 403,
               "GET /api/v1/jobs": 403},
    "device": {"GET /api/v1/secure-elements": 200, "GET /api/v1/secure-elements/<se_id>": 200,
               "POST /api/v1/secure-elements": 403, "GET /api/v1/apps": 200, "POST /api/v1/services": 409,
               "GET /api/v1/services": 200, "GET /api/v1/services/<service_id>": 200,
               "POST /api/v1/services/<service_id>/actions": 202, "GET /api/v1/operations/<operation_id>": 200,
               "GET /api/v1/jobs": 200},
}
BATCH = {"vendor": "acme", "profiles": {"p": {"scp": "03", "i": "70", "isd_aid": "A000000151000000"}},
         "secure_elements": [{"kdd": "0A0B0C0D", "profile": "p", "isd_key": ["vendor-isd"]}]}


def api_rules(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_is_in_the_matrix_with_the_scope_its_view_requires(world):
    assert api_rules(world.app) == set(MATRIX)
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            view = world.app.view_functions[rule.endpoint]
            method = next(iter(rule.methods - {"HEAD", "OPTIONS"}))
            assert view.required_scope == MATRIX[(method, rule.rule)]


def call(world, who: str, method: str, rule: str, ids: dict[str, str]):
    path = rule
    for name, value in ids.items():
        path = path.replace(f"<{name}>", value)
    body = {"POST /api/v1/secure-elements": BATCH, "POST /api/v1/services": {"se_id": world.se_id,
                                                                             "app_id": world.app_id},
            "POST /api/v1/services/<service_id>/actions": {"action": "unsubscribe"}}.get(f"{method} {rule}")
    headers = world.headers(who) if who != "none" else {}
    return world.client.open(path, method=method, json=body, headers=headers)


def test_the_authorisation_matrix(world):
    ordered = world.client.post("/api/v1/services", json={"se_id": world.se_id, "app_id": world.app_id},
                                headers=world.headers("sp")).get_json()
    ids = {"se_id": world.se_id, "service_id": ordered["service_id"], "operation_id": ordered["operation"]["id"]}
    for who in KINDS:
        for method, rule in sorted(MATRIX):
            response = call(world, who, method, rule, ids)
            if who == "none":
                assert response.status_code == 401, (method, rule)
                continue
            expected = ALLOWED[who][f"{method} {rule}"]
            assert response.status_code == expected, (who, method, rule, response.get_json())
            if expected >= 400:
                assert response.mimetype == "application/problem+json"
                code = response.get_json()["code"]
                if MATRIX[(method, rule)] not in SCOPES[who]:
                    assert code == "scope_missing", (who, method, rule)


@pytest.mark.parametrize("kind", ["sp", "vendor", "device"])
def test_a_key_narrowed_to_one_scope_gets_403_elsewhere(world, kind):
    from tsm_core.apikeys import service as apikeys

    owner = {"sp": "metro", "vendor": "acme", "device": world.se_id}[kind]
    only = sorted(SCOPES[kind])[0]
    key = apikeys.create(world.lab.tsm, kind, owner, (only,)).key
    for (method, rule), scope in MATRIX.items():
        if scope == only or "<" in rule or method == "POST":
            continue
        response = world.client.open(rule, method=method, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 403 and response.get_json()["code"] == "scope_missing", (method, rule)
