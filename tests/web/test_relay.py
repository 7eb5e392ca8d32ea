"""The relay endpoint (web/relay.py) through Flask's test client: docs/relay.md's HTTP binding and exchange
rules (sequence numbers, the cached answer of a repeated request, reports that must fit their batch), the status
and problem code of each error, and its registration under /relay in the web app's factory."""

from __future__ import annotations

import threading

import pytest

from storage.config import load_settings, with_overrides
from tests.tsm_core.relay_env import Clock, database, store_on
from tsm_core.transport.relay_store import RelayStore
from tsm_core.transport.relay_wire import GOES_ON, WIRE_VERSION, Command
from web.app import create_app
from web.problems import MEDIA_TYPE
from web.relay import MAX_REQUEST_BYTES, relay_app

SE_ID = "se-0001"
GET_STATUS = bytes.fromhex("80F28002024F00")
AID = bytes.fromhex("A000000151000000")


@pytest.fixture(scope="module")
def db(tmp_path_factory):  # type: ignore[no-untyped-def]
    yield from database("sqlite", tmp_path_factory.mktemp("web-relay"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db, clock) -> RelayStore:  # type: ignore[no-untyped-def]
    return store_on(db, clock)


@pytest.fixture
def client(store):  # type: ignore[no-untyped-def]
    return relay_app(store, long_poll=0).test_client()


def _url(session_id: str) -> str:
    return f"/relay/sessions/{session_id}/exchange"


def _request(seq: int, status: str = "POLLING", responses: list[str] | None = None, **changes: object) -> dict:
    return {"version": WIRE_VERSION, "seq": seq, "status": status, "responses": responses or [], "atr": "3B00",
            **changes}


def _problem(reply, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
    """The detail of the problem document `reply` must be."""
    assert reply.status_code == status, reply.get_data(as_text=True)
    assert reply.mimetype == MEDIA_TYPE
    body = reply.get_json(force=True)
    assert (body["status"], body["code"], body["type"]) == (status, code, f"urn:tsm-hsm:problem:{code}")
    assert body["detail"]
    return str(body["detail"])


def _delivered(store: RelayStore, client) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    """A session whose batch (SELECT AID, GET STATUS) went out in the answer to seq 1."""
    session = store.open_session(SE_ID)
    batch = store.submit(session.session_id, SE_ID, AID, [Command(GET_STATUS)])
    assert client.post(_url(session.session_id), json=_request(1)).get_json()["action"] == "EXECUTE"
    return session.session_id, batch


def test_a_batch_then_its_report(store, client):
    session = store.open_session(SE_ID)
    url = _url(session.session_id)
    idle = client.post(url, json=_request(1))
    assert (idle.status_code, idle.headers["Cache-Control"]) == (200, "no-store")
    assert idle.get_json() == {"version": 2, "seq": 1, "action": "WAIT", "expires_at": "2023-11-14T22:18:20Z"}
    batch = store.submit(session.session_id, SE_ID, AID, [Command(GET_STATUS)])
    answer = client.post(url, json=_request(2)).get_json()
    assert answer["target"] == {"se": SE_ID, "aid": AID.hex().upper()}
    assert answer["commands"] == [{"apdu": GET_STATUS.hex().upper(), "expect": list(GOES_ON)}]
    assert client.post(url, json=_request(2)).get_json() == answer  # a repeated seq: the cached answer
    reported = client.post(url, json=_request(3, "PROCESSED", ["6F009000", "E3009000"]))
    assert reported.get_json()["action"] == "WAIT"
    report = store.wait(session.session_id, batch, timeout=1)
    assert (report.status, report.responses) == ("PROCESSED", (bytes.fromhex("6F009000"), bytes.fromhex("E3009000")))
    assert store.atr(session.session_id) == bytes.fromhex("3B00")


def test_a_held_request_gets_a_batch_queued_meanwhile(store):
    session = store.open_session(SE_ID)
    client = relay_app(store, long_poll=30).test_client()
    submitter = threading.Timer(0.2, store.submit, args=(session.session_id, SE_ID, None, [Command(GET_STATUS, ())]))
    submitter.start()
    answer = client.post(_url(session.session_id), json=_request(1)).get_json()
    submitter.join()
    assert answer["action"] == "EXECUTE" and answer["target"]["aid"] is None and answer["commands"][0]["expect"] == []


def test_a_stopped_batch_reports_fewer_responses(store, client):
    session_id, batch = _delivered(store, client)
    client.post(_url(session_id), json=_request(2, "PROCESSED", ["6A82"]))  # the applet is not there
    assert store.wait(session_id, batch, timeout=1).responses == (bytes.fromhex("6A82"),)


def test_a_failure_status_with_the_responses_so_far(store, client):
    session_id, batch = _delivered(store, client)
    client.post(_url(session_id), json=_request(2, "UNGRANTED_ACCESS", [], detail="ARA-M says no\x00"))
    report = store.wait(session_id, batch, timeout=1)
    assert (report.status, report.detail) == ("UNGRANTED_ACCESS", "ARA-M says no?")


@pytest.mark.parametrize(("seq", "status", "responses", "says"), [
    (3, "PROCESSED", ["9000", "9000"], "out of order"),
    (2, "POLLING", [], "must report on the batch"),
    (2, "PROCESSED", ["9000", "9000", "9000"], "3 responses for a batch of 2"),
    (2, "PROCESSED", ["9000"], "the last one expected"),
    (2, "PROCESSED", [], "at least one response"),
])
def test_reports_that_do_not_fit(store, client, seq, status, responses, says):
    session_id, _ = _delivered(store, client)
    assert says in _problem(client.post(_url(session_id), json=_request(seq, status, responses)), 400,
                            "relay_protocol")


def test_a_report_without_a_batch(store, client):
    session = store.open_session(SE_ID)
    client.post(_url(session.session_id), json=_request(1))
    reply = client.post(_url(session.session_id), json=_request(2, "PROCESSED", ["9000"]))
    assert "carried none" in _problem(reply, 400, "relay_protocol")


def test_unknown_session(client):
    _problem(client.post(_url("q3hV0dJc0sQ5s1bF2m9xk7Yp"), json=_request(1)), 404, "relay_session_not_found")


def test_expired_session(store, client, clock):
    session = store.open_session(SE_ID, ttl=60)
    clock.now += 61
    _problem(client.post(_url(session.session_id), json=_request(1)), 410, "relay_session_expired")


def test_closed_session(store, client):
    session_id, _ = _delivered(store, client)
    store.close_session(session_id)
    assert not store.wait_told_closed(session_id, 0)  # the phone has not heard yet
    _problem(client.post(_url(session_id), json=_request(2, "PROCESSED", ["9000", "9000"])), 410,
             "relay_session_closed")
    assert store.wait_told_closed(session_id, 0)


@pytest.mark.parametrize("changes", [{"version": 1}, {"seq": 0}, {"seq": True}, {"status": "DONE"},
                                     {"responses": ["90"]}, {"responses": ["XYZ0"]}, {"responses": "9000"},
                                     {"atr": "3B0"}, {"detail": 7}])
def test_malformed_requests(store, client, changes):
    session = store.open_session(SE_ID)
    _problem(client.post(_url(session.session_id), json={**_request(1), **changes}), 400, "relay_protocol")


def test_a_polling_request_carries_no_responses(store, client):
    session = store.open_session(SE_ID)
    _problem(client.post(_url(session.session_id), json=_request(1, responses=["9000"])), 400, "relay_protocol")


@pytest.mark.parametrize(("body", "content_type", "says"), [
    (b'{"version": 2}', "text/plain", "application/json"),  # what a cross-site form could send
    (b'{"version": 2}', "application/x-www-form-urlencoded", "application/json"),
    (b"{not json", "application/json", "JSON object"),
    (b"[]", "application/json", "JSON object"),
])
def test_requests_must_be_a_json_document(store, client, body, content_type, says):
    session = store.open_session(SE_ID)
    reply = client.post(_url(session.session_id), data=body, content_type=content_type)
    assert says in _problem(reply, 400, "relay_protocol")


def test_oversized_request(store, client):
    session = store.open_session(SE_ID)
    huge = _request(1, "PROCESSED", ["90" * MAX_REQUEST_BYTES])
    _problem(client.post(_url(session.session_id), json=huge), 413, "request_entity_too_large")


def test_wrong_methods_and_paths(store, client):
    session = store.open_session(SE_ID)
    _problem(client.get(_url(session.session_id)), 405, "method_not_allowed")
    _problem(client.get(f"/relay/sessions/{session.session_id}"), 404, "not_found")


def test_the_web_app_serves_the_relay_over_the_database(db, tmp_path):
    settings = with_overrides(load_settings({"TSM_HOME": str(tmp_path / "home")}), database_url=db)
    app = create_app({"TSM_SETTINGS": settings})
    store = app.config["TSM_RELAY_STORE"]
    session = store_on(db).open_session(SE_ID)  # opened by another process's store: the same database
    store.submit(session.session_id, SE_ID, None, [Command(GET_STATUS)])
    client = app.test_client()
    assert client.post(_url(session.session_id), json=_request(1)).get_json()["commands"][0]["apdu"] == "80F28002024F00"
    _problem(client.post(_url("q3hV0dJc0sQ5s1bF2m9xk7Yp"), json=_request(1)), 404, "relay_session_not_found")
