"""The phone app's side of API v1 (docs/api.md, "Phone apps"): a device key lists the apps its SE may take,
orders one (202, WAITING_DEVICE), opens a relay session for the operation, and a simulated phone (the reference
relay client with the device's key, over real HTTP to the Flask app, forwarding to an in-process card) lets
the TSM side (driven by this test process: `phone.run_session`) complete it; another device sees and touches
nothing of it; report lost and top-up wait for the device and run over its next relay session."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from werkzeug.serving import make_server

from tests.tsm_core.lab import TRANSIT_INSTANCE, card_entries
from tests.tsm_core.relay_env import Phone
from tests.tsm_core.test_lifecycle import PURSE_PERSO, card_balance
from tests.web.test_api import check_schema, problem
from tsm_core.apikeys import service as apikeys
from tsm_core.lifecycle import phone
from tsm_core.lifecycle import service as lifecycle
from tsm_core.registry.models import SecureElement
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.relay_store import RelayStore
from web.relay_server import QuietHandler

LOCKED = 0x80
PURSE_INSTANCE = "F00000000101010103"


@pytest.fixture
def relay_url(world) -> Iterator[str]:
    """The world's app served over HTTP (the phone speaks to it for real); the relay's base URL."""
    server = make_server("127.0.0.1", 0, world.app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}/relay"
    server.shutdown()
    thread.join()


def store(world) -> RelayStore:
    return world.app.config["TSM_RELAY_STORE"]


def open_session(world, who: str = "device", **body: str):  # type: ignore[no-untyped-def]
    return world.client.post("/api/v1/relay-sessions", json=body, headers=world.headers(who))


def run_over_phone(world, relay_url: str, session_id: str, card, key: str):  # type: ignore[no-untyped-def]
    """The phone serves the session with its key while the TSM side runs what it is for."""
    handset = Phone(relay_url, session_id, LocalTransport(card), api_key=key)
    ran = phone.run_session(world.lab.tsm, store(world), session_id, answer_timeout=10)
    assert isinstance(handset.join(), int)
    return ran


def other_device(world) -> str:
    _, se_id = world.lab.new_se()
    world.keys["other_device"] = apikeys.create(world.lab.tsm, "device", se_id).key
    return se_id


def test_a_device_lists_the_apps_its_se_may_take(world):
    pending = world.lab.app("metro", "transit", instance_aid="F00000000101010102", approve=False)
    listed = world.client.get("/api/v1/apps", headers=world.headers("device"))
    check_schema(world, listed, "/api/v1/apps", "get")
    assert [a["id"] for a in listed.get_json()["items"]] == [world.app_id]  # approved ones only
    with world.lab.tsm.transaction() as db:  # the card reported too little free memory for the load file
        db.execute(update(SecureElement).where(SecureElement.id == world.se_id).values(free_nv=100))
    assert world.client.get("/api/v1/apps", headers=world.headers("device")).get_json()["items"] == []
    sp_sees = world.client.get("/api/v1/apps", headers=world.headers("sp")).get_json()["items"]
    assert {a["id"] for a in sp_sees} == {world.app_id, pending}


def test_an_app_already_on_the_card_is_not_offered_again(world):
    with LocalTransport(world.card) as transport:
        lifecycle.open_service(world.lab.tsm, world.se_id, world.app_id, transport)
    assert world.client.get("/api/v1/apps", headers=world.headers("device")).get_json()["items"] == []


def test_a_phone_orders_a_service_and_completes_it_over_its_relay_session(world, relay_url):
    ordered = world.client.post("/api/v1/services", json={"se_id": world.se_id, "app_id": world.app_id},
                                headers=world.headers("device"))
    assert ordered.status_code == 202, ordered.get_json()
    operation, service_id = ordered.get_json()["operation"], ordered.get_json()["service_id"]
    assert operation["state"] == "WAITING_DEVICE"
    opened = open_session(world, operation_id=operation["id"])
    assert opened.status_code == 201, opened.get_json()
    check_schema(world, opened, "/api/v1/relay-sessions", "post")
    session = opened.get_json()
    assert (session["se_id"], session["operation_id"]) == (world.se_id, operation["id"])
    assert session["url"].endswith(f"/relay/sessions/{session['id']}/exchange")

    other_device(world)
    for path in (f"/api/v1/secure-elements/{world.se_id}", f"/api/v1/services/{service_id}",
                 f"/api/v1/operations/{operation['id']}"):
        problem(world.client.get(path, headers=world.headers("other_device")), 404, "not_found")
    problem(open_session(world, "other_device", operation_id=operation["id"]), 404, "not_found")
    exchange = f"/relay/sessions/{session['id']}/exchange"
    poll = {"seq": 1, "status": "POLLING", "responses": []}
    problem(world.client.post(exchange, json=poll), 401, "unauthenticated")
    problem(world.client.post(exchange, json=poll, headers=world.headers("other_device")), 404,
            "relay_session_not_found")
    problem(world.client.post(exchange, json=poll, headers=world.headers("sp")), 404, "relay_session_not_found")

    ran = run_over_phone(world, relay_url, session["id"], world.card, world.keys["device"])
    assert [(v.id, v.state) for v in ran] == [(operation["id"], "done")]
    done = world.client.get(ordered.headers["Location"], headers=world.headers("device"))
    assert done.get_json()["state"] == "SUCCEEDED" and done.get_json()["progress"] == 100
    assert world.client.get(f"/api/v1/services/{service_id}", headers=world.headers("device")
                            ).get_json()["state"] == "active"
    problem(open_session(world, operation_id=operation["id"]), 409, "conflict")  # nothing left to run

    lost = world.client.post(f"/api/v1/services/{service_id}/actions", json={"action": "lock"},
                             headers=world.headers("device"))
    assert lost.status_code == 202 and lost.get_json()["operation"]["state"] == "WAITING_DEVICE"
    problem(world.client.post(f"/api/v1/services/{service_id}/actions", json={"action": "unlock"},
                              headers=world.headers("other_device")), 404, "not_found")
    again = open_session(world).get_json()  # no operation named: what waits for the device runs
    assert again["operation_id"] is None
    [lock] = run_over_phone(world, relay_url, again["id"], world.card, world.keys["device"])
    assert lock.kind == "lock-app" and lock.state == "done"
    shown = world.client.get(f"/api/v1/services/{service_id}", headers=world.headers("device")).get_json()
    assert shown["state"] == "locked_lost" and shown["card_locked"] is True
    entries = card_entries(world.lab.card_content(world.se_id, world.card))
    assert any(aid == TRANSIT_INSTANCE and life_cycle & LOCKED for aid, _, life_cycle, _ in entries)


def test_relay_sessions_are_for_devices_only(world):
    problem(open_session(world, "sp"), 403, "scope_missing")
    narrowed = apikeys.create(world.lab.tsm, "device", world.se_id, ("apps:read",)).key
    problem(world.client.post("/api/v1/relay-sessions", json={}, headers={"Authorization": f"Bearer {narrowed}"}),
            403, "scope_missing")
    problem(world.client.post("/api/v1/relay-sessions", json={}), 401, "unauthenticated")
    problem(open_session(world, operation_id="job-nope"), 404, "not_found")


def test_a_top_up_waits_for_the_phone_and_credits_the_purse_over_its_relay_session(world, relay_url):
    purse = world.lab.app("metro", "transit", perso=PURSE_PERSO, instance_aid=PURSE_INSTANCE)
    with LocalTransport(world.card) as transport:
        service_id = lifecycle.open_service(world.lab.tsm, world.se_id, purse, transport).id
    ordered = world.client.post(f"/api/v1/services/{service_id}/top-ups", json={"amount": 1500},
                                headers=world.headers("device", **{"Idempotency-Key": "top-1"}))
    assert ordered.status_code == 202, ordered.get_json()
    check_schema(world, ordered, "/api/v1/services/{service_id}/top-ups", "post")
    body = ordered.get_json()
    assert body["operation"]["state"] == "WAITING_DEVICE" and body["top_up"]["state"] == "ordered"
    problem(world.client.post(f"/api/v1/services/{service_id}/top-ups", json={"amount": 0},
                              headers=world.headers("device")), 422, "validation_failed")
    session = open_session(world, operation_id=body["operation"]["id"]).get_json()
    run_over_phone(world, relay_url, session["id"], world.card, world.keys["device"])
    done = world.client.get(ordered.headers["Location"], headers=world.headers("device")).get_json()
    assert done["state"] == "SUCCEEDED"
    assert card_balance(world.card, PURSE_INSTANCE) == (1500, 1)
