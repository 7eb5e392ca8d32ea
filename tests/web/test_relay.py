"""The relay endpoint (web/relay.py) through Flask's test client: docs/relay.md's HTTP binding, status and
problem code of each error, and its registration under /relay in the web app's factory."""

from __future__ import annotations

import threading

import pytest

from storage.config import load_settings
from tests.tsm_core.test_relay import Clock
from tsm_core.transport import relay
from web.app import create_app
from web.problems import MEDIA_TYPE
from web.relay import MAX_ANSWERS_BYTES, relay_app

SE_ID = "se-0001"
SELECT = bytes.fromhex("00A4040000")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(clock: Clock) -> relay.RelayHub:
    return relay.RelayHub(clock)


@pytest.fixture
def client(hub):  # type: ignore[no-untyped-def]
    return relay_app(hub, poll_wait=0).test_client()


def _urls(session_id: str) -> tuple[str, str]:
    base = f"/relay/sessions/{session_id}"
    return f"{base}/batch", f"{base}/answers"


def _answers(document: dict, responses: list[str], **changes: object) -> dict:
    return {"version": 1, "session": document["session"], "se_id": document["se_id"],
            "batch_id": document["batch_id"], "status": "complete", "atr": "3B00", "responses": responses, **changes}


def _problem(reply, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
    """The detail of the problem document `reply` must be."""
    assert reply.status_code == status, reply.get_data(as_text=True)
    assert reply.mimetype == MEDIA_TYPE
    body = reply.get_json(force=True)
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:tsm-hsm:problem:{code}")
    assert body["detail"]
    return str(body["detail"])


def _pending(hub: relay.RelayHub, client) -> tuple[relay.RelaySession, dict]:  # type: ignore[no-untyped-def]
    """A session with one batch fetched by the phone (in flight)."""
    session = hub.open_session(SE_ID)
    hub.submit(session.session_id, SE_ID, [SELECT], stop_on_error=True)
    fetched = client.get(_urls(session.session_id)[0])
    assert fetched.status_code == 200
    return session, fetched.get_json()


def test_a_batch_then_its_answers(hub, client):
    session = hub.open_session(SE_ID)
    batch_url, answers_url = _urls(session.session_id)
    idle = client.get(batch_url)
    assert (idle.status_code, idle.get_data(), idle.headers["Cache-Control"]) == (204, b"", "no-store")
    batch_id = hub.submit(session.session_id, SE_ID, [SELECT], stop_on_error=True)
    fetched = client.get(batch_url)
    assert fetched.status_code == 200 and fetched.headers["Cache-Control"] == "no-store"
    document = fetched.get_json()
    assert (document["batch_id"], document["se_id"], document["commands"]) == (batch_id, SE_ID, ["00A4040000"])
    assert client.get(batch_url).status_code == 204  # delivered at most once
    posted = client.post(answers_url, json=_answers(document, ["9000"]))
    assert (posted.status_code, posted.get_data()) == (204, b"")
    assert hub.wait(session.session_id, batch_id, timeout=1).responses == (b"\x90\x00",)
    assert hub.atr(session.session_id) == bytes.fromhex("3B00")


def test_a_held_poll_gets_a_batch_submitted_meanwhile(hub):
    session = hub.open_session(SE_ID)
    client = relay_app(hub, poll_wait=30).test_client()
    submitter = threading.Thread(target=hub.submit, args=(session.session_id, SE_ID, [SELECT]),
                                 kwargs={"stop_on_error": False})
    submitter.start()
    fetched = client.get(_urls(session.session_id)[0])
    submitter.join()
    assert fetched.status_code == 200 and fetched.get_json()["stop_on_error"] is False


def test_unknown_session(client):
    batch_url, answers_url = _urls("q3hV0dJc0sQ5s1bF2m9xk7Yp")
    _problem(client.get(batch_url), 404, "relay_session_not_found")
    _problem(client.post(answers_url, json={}), 404, "relay_session_not_found")


def test_expired_session(hub, client, clock):
    session = hub.open_session(SE_ID, ttl=60)
    clock.now += 61
    batch_url, answers_url = _urls(session.session_id)
    _problem(client.get(batch_url), 410, "relay_session_expired")
    _problem(client.post(answers_url, json={}), 410, "relay_session_expired")


def test_closed_session(hub, client):
    session, document = _pending(hub, client)
    hub.close_session(session.session_id)
    assert not hub.wait_told_closed(session.session_id, 0)  # the phone has not heard yet
    batch_url, answers_url = _urls(session.session_id)
    _problem(client.post(answers_url, json=_answers(document, ["9000"])), 410, "relay_session_closed")
    assert hub.wait_told_closed(session.session_id, 0)
    _problem(client.get(batch_url), 410, "relay_session_closed")


def test_foreign_answers(hub, client):
    session, document = _pending(hub, client)
    reply = client.post(_urls(session.session_id)[1], json=_answers(document, ["9000"], se_id="se-9999"))
    _problem(reply, 403, "relay_session_foreign")


@pytest.mark.parametrize("changes", [{"version": 2}, {"batch_id": 99}, {"responses": ["90"]},
                                     {"status": "stopped", "responses": []}, {"session": "another"}])
def test_malformed_answers(hub, client, changes):
    session, document = _pending(hub, client)
    _problem(client.post(_urls(session.session_id)[1], json={**_answers(document, ["9000"]), **changes}), 400,
             "relay_protocol")


@pytest.mark.parametrize(("body", "content_type", "says"), [
    (b'{"version": 1}', "text/plain", "application/json"),  # what a cross-site form could send
    (b'{"version": 1}', "application/x-www-form-urlencoded", "application/json"),
    (b"{not json", "application/json", "JSON object"),
    (b"[]", "application/json", "JSON object"),
])
def test_answers_must_be_a_json_document(hub, client, body, content_type, says):
    session, _ = _pending(hub, client)
    reply = client.post(_urls(session.session_id)[1], data=body, content_type=content_type)
    assert says in _problem(reply, 400, "relay_protocol")


def test_answers_without_a_batch_in_flight(hub, client):
    session = hub.open_session(SE_ID)
    answers = {"version": 1, "session": session.session_id, "se_id": SE_ID, "batch_id": 1, "status": "complete",
               "atr": "", "responses": []}
    _problem(client.post(_urls(session.session_id)[1], json=answers), 400, "relay_protocol")


def test_oversized_answers(hub, client):
    session, document = _pending(hub, client)
    huge = _answers(document, ["90" * MAX_ANSWERS_BYTES])
    _problem(client.post(_urls(session.session_id)[1], json=huge), 413, "request_entity_too_large")


def test_wrong_methods_and_paths(hub, client):
    session = hub.open_session(SE_ID)
    batch_url, answers_url = _urls(session.session_id)
    _problem(client.post(batch_url, json={}), 405, "method_not_allowed")
    _problem(client.get(answers_url), 405, "method_not_allowed")
    _problem(client.get(f"/relay/sessions/{session.session_id}"), 404, "not_found")


def test_the_web_app_serves_the_relay_over_its_hub(tmp_path):
    app = create_app({"TSM_SETTINGS": load_settings({"TSM_HOME": str(tmp_path / "home")})})
    hub = app.config["TSM_RELAY_HUB"]
    session = hub.open_session(SE_ID)
    client = app.test_client()
    hub.submit(session.session_id, SE_ID, [SELECT], stop_on_error=True)
    assert client.get(_urls(session.session_id)[0]).get_json()["commands"] == ["00A4040000"]
    _problem(client.get(_urls("q3hV0dJc0sQ5s1bF2m9xk7Yp")[0]), 404, "relay_session_not_found")
