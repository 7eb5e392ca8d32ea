"""Every API route × every kind of credential: the authorisation matrix (docs/api.md, "Scopes"). A route
missing from MATRIX fails the test, so a new route cannot go unchecked."""

from __future__ import annotations

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice.inventory import KeyState, KeyUsage
from keyservice.views import NewKey
from tests.tsm_core.lab import KEY_MANAGEMENT
from tsm_core.apikeys import service as apikeys
from tsm_core.apikeys.service import SCOPES

KINDS = ("none", "sp", "vendor", "device", "component")
CHANNEL = "/api/v1/key-service/channels/<channel_id>"
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
    ("POST", "/api/v1/services/<service_id>/top-ups"): "services:write",
    ("GET", "/api/v1/operations/<operation_id>"): "operations:read",
    ("GET", "/api/v1/jobs"): "jobs:read",
    ("POST", "/api/v1/relay-sessions"): "relay-sessions:write",
    ("POST", "/api/v1/key-service/channels"): "key-service:channels",
    ("POST", f"{CHANNEL}/authenticate"): "key-service:channels",
    ("POST", f"{CHANNEL}/wrap"): "key-service:channels",
    ("POST", f"{CHANNEL}/unwrap"): "key-service:channels",
    ("POST", f"{CHANNEL}/put-key"): "key-service:channels",
    ("POST", f"{CHANNEL}/encrypted-dgis"): "key-service:channels",
    ("DELETE", CHANNEL): "key-service:channels",
    ("GET", "/api/v1/key-service/keys/<label>/kcv"): "key-service:keys",
    ("POST", "/api/v1/key-service/key-blocks"): "key-service:exchange",
    ("POST", "/api/v1/key-service/key-block-exports"): "key-service:exchange",
    ("POST", "/api/v1/webhooks"): "webhooks:write",
    ("GET", "/api/v1/webhooks"): "webhooks:read",
    ("DELETE", "/api/v1/webhooks/<webhook_id>"): "webhooks:write",
}
KEY_SERVICE = {f"{method} {rule}" for method, rule in MATRIX if "/key-service/" in rule}
WEBHOOKS = {f"{method} {rule}" for method, rule in MATRIX if "/webhooks" in rule}
ALLOWED = {  # what each kind gets on this world, where the service is already ordered (409: authorised, refused)
    "sp": {"GET /api/v1/secure-elements": 403, "GET /api/v1/secure-elements/<se_id>": 200,
           "POST /api/v1/secure-elements": 403, "GET /api/v1/apps": 200, "POST /api/v1/services": 409,
           "GET /api/v1/services": 200, "GET /api/v1/services/<service_id>": 200,
           "POST /api/v1/services/<service_id>/actions": 202, "GET /api/v1/operations/<operation_id>": 200,
           "GET /api/v1/jobs": 200, "POST /api/v1/services/<service_id>/top-ups": 409,
           "POST /api/v1/relay-sessions": 403},
    "vendor": {"GET /api/v1/secure-elements": 200, "GET /api/v1/secure-elements/<se_id>": 404,
               "POST /api/v1/secure-elements": 201, "GET /api/v1/apps": 403, "POST /api/v1/services": 403,
               "GET /api/v1/services": 403, "GET /api/v1/services/<service_id>": 403,
               "POST /api/v1/services/<service_id>/actions": 403, "GET /api/v1/operations/<operation_id>": 403,
               "GET /api/v1/jobs": 403, "POST /api/v1/services/<service_id>/top-ups": 403,
               "POST /api/v1/relay-sessions": 403},
    "device": {"GET /api/v1/secure-elements": 200, "GET /api/v1/secure-elements/<se_id>": 200,
               "POST /api/v1/secure-elements": 403, "GET /api/v1/apps": 200, "POST /api/v1/services": 409,
               "GET /api/v1/services": 200, "GET /api/v1/services/<service_id>": 200,
               "POST /api/v1/services/<service_id>/actions": 202, "GET /api/v1/operations/<operation_id>": 200,
               "GET /api/v1/jobs": 200, "POST /api/v1/services/<service_id>/top-ups": 409,
               "POST /api/v1/relay-sessions": 201},
}
for _kind in ("sp", "vendor", "device"):
    ALLOWED[_kind].update(dict.fromkeys(KEY_SERVICE, 403))
    ALLOWED[_kind].update(dict.fromkeys(WEBHOOKS, 403))
ALLOWED["sp"].update({"POST /api/v1/webhooks": 201, "GET /api/v1/webhooks": 200,
                      "DELETE /api/v1/webhooks/<webhook_id>": 204})
ALLOWED["component"] = {**dict.fromkeys(ALLOWED["vendor"], 403), **dict.fromkeys(WEBHOOKS, 403), **{
    # a fresh channel awaiting the card's answer for each call; the component's key grants SE_MANAGEMENT only
    "POST /api/v1/key-service/channels": 201, f"POST {CHANNEL}/authenticate": 409, f"POST {CHANNEL}/wrap": 409,
    f"POST {CHANNEL}/unwrap": 409, f"POST {CHANNEL}/put-key": 409, f"POST {CHANNEL}/encrypted-dgis": 409,
    f"DELETE {CHANNEL}": 204, "GET /api/v1/key-service/keys/<label>/kcv": 200,
    "POST /api/v1/key-service/key-blocks": 403, "POST /api/v1/key-service/key-block-exports": 403}}
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


def _bodies(world) -> dict[str, object]:
    open_channel = {"se_id": world.se_id, "purpose": "SE_MANAGEMENT"}
    return {"POST /api/v1/secure-elements": BATCH, "POST /api/v1/services": {"se_id": world.se_id,
                                                                             "app_id": world.app_id},
            "POST /api/v1/services/<service_id>/actions": {"action": "unsubscribe"},
            "POST /api/v1/services/<service_id>/top-ups": {"amount": 100},  # not active: 409 when authorised
            "POST /api/v1/relay-sessions": {},
            "POST /api/v1/key-service/channels": open_channel,
            f"POST {CHANNEL}/authenticate": {"card_response": "00" * 29},
            f"POST {CHANNEL}/wrap": {"command": "80CA00E000"},
            f"POST {CHANNEL}/unwrap": {"response": "9000"},
            f"POST {CHANNEL}/put-key": {"keys": ["vendor-isd"], "new_kvn": 2},
            f"POST {CHANNEL}/encrypted-dgis": {"dgi": "8001", "value": "00" * 16},
            "POST /api/v1/key-service/key-blocks": {"kbpk": "vendor-ssd", "key_block": "D0000" + "0" * 20, "label": "x",
                                                    "owner": "o", "expected_kcv": "000000"},
            "POST /api/v1/key-service/key-block-exports": {"label": "vendor-isd", "kbpk": "vendor-ssd", "usage": "K0"},
            "POST /api/v1/webhooks": {"url": "https://sp.example/hooks"}}


def call(world, who: str, method: str, rule: str, ids: dict[str, str]):
    headers = world.headers(who) if who != "none" else {}
    if "<channel_id>" in rule and who == "component":  # a fresh channel: one call may not spoil the next
        ids = {**ids, "channel_id": world.client.post("/api/v1/key-service/channels", json=_bodies(world)[
            "POST /api/v1/key-service/channels"], headers=headers).get_json()["id"]}
    path = rule
    for name, value in ids.items():
        path = path.replace(f"<{name}>", value)
    if rule.endswith("/kcv"):
        path += "?purpose=SE_MANAGEMENT"
    return world.client.open(path, method=method, json=_bodies(world).get(f"{method} {rule}"), headers=headers)


def _data_key(world) -> None:
    """The issuer's data key, which seals webhook secrets."""
    keys = world.lab.keys.keys
    keys.generate(KEY_MANAGEMENT, NewKey("issuer-data", KeyAlgorithm.AES, 32, KeyUsage.DATA_KEY, "issuer"))
    keys.change_state(KEY_MANAGEMENT, "issuer-data", KeyState.ACTIVE)


def test_the_authorisation_matrix(world):
    _data_key(world)
    world.keys["component"] = apikeys.create(world.lab.tsm, "component", "perso", (), ("SE_MANAGEMENT",)).key
    ordered = world.client.post("/api/v1/services", json={"se_id": world.se_id, "app_id": world.app_id},
                                headers=world.headers("sp")).get_json()
    hook = world.client.post("/api/v1/webhooks", json={"url": "https://sp.example/first"},
                             headers=world.headers("sp")).get_json()
    ids = {"se_id": world.se_id, "service_id": ordered["service_id"], "operation_id": ordered["operation"]["id"],
           "channel_id": "0" * 32, "label": "vendor-isd", "webhook_id": hook["id"]}
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


@pytest.mark.parametrize("kind", ["sp", "vendor", "device", "component"])
def test_a_key_narrowed_to_one_scope_gets_403_elsewhere(world, kind):
    owner = {"sp": "metro", "vendor": "acme", "device": world.se_id, "component": "perso"}[kind]
    only = sorted(SCOPES[kind])[0]
    key = apikeys.create(world.lab.tsm, kind, owner, (only,), ("SE_PERSO",) if kind == "component" else ()).key
    for (method, rule), scope in MATRIX.items():
        if scope == only or "<" in rule or method == "POST":
            continue
        response = world.client.open(rule, method=method, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 403 and response.get_json()["code"] == "scope_missing", (method, rule)
