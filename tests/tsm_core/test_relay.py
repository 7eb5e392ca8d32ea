"""The relay path: RelayTransport -> RelayHub -> the HTTP endpoint (web/relay.py, served by a thread) ->
RelayClient -> card.

The phone side runs `RelayClient` for real over HTTP (urllib). The card is the test card in-process, and in
the `pcsc` tests a card behind the real pcscd + vpcd.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tests.tsm_core.cards import ATR, ISD_STATUS, MiniCard
from tests.tsm_core.conftest import READER
from tsm_core.transport import relay
from tsm_core.transport.errors import (
    CardRemoved,
    RelayListenFailed,
    RelayProtocolError,
    RelaySessionClosed,
    RelaySessionExpired,
    RelaySessionForeign,
    RelaySessionIdInvalid,
    RelaySessionNotFound,
    RelayTimeout,
)
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport
from tsm_core.transport.relay_client import RelayClient
from web.relay_server import serve_relay

SE_ID = "se-0001"
SELECT = bytes.fromhex("00A4040000")
GET_STATUS = bytes.fromhex("80F28002024F00")
UNKNOWN_INS = bytes.fromhex("80FF0000")
POLL_WAIT = 0.2


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Phone:
    """The reference client in a thread; `join()` returns what `run()` returned or raised."""

    def __init__(self, url: str, session_id: str, transport) -> None:
        self.client = RelayClient(url, session_id, transport, poll_interval=0.02)
        self.stop = threading.Event()
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.client.run(self.stop)
        except Exception as exc:
            self.result = exc

    def join(self) -> int | BaseException | None:
        self.thread.join(timeout=10)
        if self.thread.is_alive():
            self.stop.set()
            self.thread.join(timeout=5)
            pytest.fail("relay client did not finish")
        return self.result


@pytest.fixture
def hub_and_url():
    clock = Clock()
    hub = relay.RelayHub(clock)
    with serve_relay(hub, "127.0.0.1", 0, poll_wait=POLL_WAIT) as url:
        yield hub, url, clock


def test_batches_round_trip(hub_and_url):
    hub, url, _ = hub_and_url
    session = hub.open_session(SE_ID)
    card = MiniCard()
    phone = Phone(url, session.session_id, LocalTransport(card))
    transport = relay.RelayTransport(hub, session.session_id, SE_ID, answer_timeout=5)
    with transport:
        assert transport.atr == b""  # the phone has not answered yet
        assert transport.transmit_batch([SELECT, GET_STATUS]) == [b"\x90\x00", ISD_STATUS + b"\x90\x00"]
        assert transport.atr == ATR
        assert transport.transmit(bytes.fromhex("0001000002ABCD")) == bytes.fromhex("ABCD9000")
    assert phone.join() == 2  # closing the transport closes the session; the phone stops cleanly
    assert card.apdus == [SELECT, GET_STATUS, bytes.fromhex("0001000002ABCD")]
    with pytest.raises(RelaySessionClosed):
        hub.poll(session.session_id)


def test_stop_on_error(hub_and_url):
    hub, url, _ = hub_and_url
    session = hub.open_session(SE_ID)
    card = MiniCard()
    phone = Phone(url, session.session_id, LocalTransport(card))
    with relay.RelayTransport(hub, session.session_id, SE_ID, answer_timeout=5) as transport:
        assert transport.transmit_batch([SELECT, UNKNOWN_INS, GET_STATUS]) == [b"\x90\x00", b"\x6d\x00"]
    assert phone.join() == 1
    assert card.apdus == [SELECT, UNKNOWN_INS]


def test_expired_session(hub_and_url):
    hub, url, clock = hub_and_url
    session = hub.open_session(SE_ID, ttl=60)
    transport = relay.RelayTransport(hub, session.session_id, SE_ID)
    transport.connect()
    clock.now += 61
    with pytest.raises(RelaySessionExpired) as caught:
        transport.transmit(SELECT)
    assert caught.value.code == "relay_session_expired"
    phone = Phone(url, session.session_id, LocalTransport(MiniCard()))
    assert isinstance(phone.join(), RelaySessionExpired)  # the phone learns it over HTTP 410


def test_unknown_session_over_http(hub_and_url):
    _, url, _ = hub_and_url
    assert isinstance(Phone(url, "no-such-session", LocalTransport(MiniCard())).join(), RelaySessionNotFound)


def test_foreign_session(hub_and_url):
    hub, _, _ = hub_and_url
    session = hub.open_session(SE_ID)
    with pytest.raises(RelaySessionForeign):
        relay.RelayTransport(hub, session.session_id, "se-9999").connect()
    with pytest.raises(RelaySessionForeign):
        hub.submit(session.session_id, "se-9999", [SELECT], stop_on_error=True)
    hub.submit(session.session_id, SE_ID, [SELECT], stop_on_error=True)
    document = hub.poll(session.session_id)
    answers = {**_answers(document, ["9000"]), "se_id": "se-9999"}
    with pytest.raises(RelaySessionForeign):
        hub.answer(session.session_id, answers)


def test_timeout_then_next_batch(hub_and_url):
    hub, url, _ = hub_and_url
    session = hub.open_session(SE_ID)
    transport = relay.RelayTransport(hub, session.session_id, SE_ID, answer_timeout=0.1)
    with pytest.raises(RelayTimeout):
        transport.transmit(SELECT)
    assert hub.poll(session.session_id) is None  # the lost batch is never delivered later
    transport = relay.RelayTransport(hub, session.session_id, SE_ID, answer_timeout=5)
    phone = Phone(url, session.session_id, LocalTransport(MiniCard()))
    assert transport.transmit(SELECT) == b"\x90\x00"
    transport.close()
    assert phone.join() == 1


def _answers(batch_document, responses, **changes):
    document = {
        "version": relay.WIRE_VERSION,
        "session": batch_document["session"],
        "se_id": batch_document["se_id"],
        "batch_id": batch_document["batch_id"],
        "status": "complete",
        "atr": "",
        "responses": responses,
    }
    document.update(changes)
    return document


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 2},
        {"batch_id": 99},
        {"status": "done"},
        {"responses": ["9000", "9000"]},  # more responses than commands
        {"responses": []},  # complete but nothing
        {"responses": ["90"]},  # no SW
        {"responses": ["XYZ0"]},
        {"responses": "9000"},
        {"status": "stopped", "responses": []},
        {"status": "card_error", "responses": []},  # card_error without an error object
        {"session": "another"},
        {"batch_id": True},
    ],
)
def test_malformed_answers(hub_and_url, changes):
    hub, _, _ = hub_and_url
    session = hub.open_session(SE_ID)
    hub.submit(session.session_id, SE_ID, [SELECT], stop_on_error=True)
    document = hub.poll(session.session_id)
    with pytest.raises(RelayProtocolError):
        hub.answer(session.session_id, {**_answers(document, ["9000"]), **changes})


def test_batch_document_round_trip():
    session = relay.RelaySession("abc", SE_ID, 1_700_000_060.0)
    batch = relay.Batch(7, (SELECT, GET_STATUS), stop_on_error=False)
    document = relay.batch_document(session, batch)
    assert document == {
        "version": 1,
        "session": "abc",
        "se_id": SE_ID,
        "batch_id": 7,
        "expires_at": "2023-11-14T22:14:20Z",
        "stop_on_error": False,
        "commands": ["00A4040000", "80F28002024F00"],
    }
    assert relay.parse_batch(document, "abc") == (session, batch)
    with pytest.raises(RelayProtocolError):
        relay.parse_batch({**document, "commands": ["0G"]}, "abc")


@pytest.mark.pcsc
def test_relay_through_pcscd(hub_and_url, served_card):
    hub, url, _ = hub_and_url
    session = hub.open_session(SE_ID)
    phone = Phone(url, session.session_id, PcscTransport(READER))
    with relay.RelayTransport(hub, session.session_id, SE_ID, answer_timeout=10) as transport:
        assert transport.transmit_batch([SELECT, GET_STATUS]) == [b"\x90\x00", ISD_STATUS + b"\x90\x00"]
        assert transport.atr == ATR
        served_card.remove()
        with pytest.raises(CardRemoved):
            transport.transmit(SELECT)
    assert phone.join() == 2


@pytest.mark.parametrize("session_id", ["A" * 16, "a" * 64, "q3hV0dJc0sQ5s1bF2m9x-_7Y"])
def test_a_chosen_session_id(session_id):
    hub = relay.RelayHub()
    assert hub.open_session(SE_ID, session_id=session_id).session_id == session_id
    with pytest.raises(RelaySessionIdInvalid, match="already in use"):
        hub.open_session("se-0002", session_id=session_id)


@pytest.mark.parametrize("session_id", ["A" * 15, "a" * 65, "q3hV0dJc0sQ5s1bF2m9x+/7Y", "q3hV0dJc0sQ5s1bF2m9xk7Y\n",
                                        "q3hV0dJc0sQ5s1bF 2m9xk7Y", "", "é" * 20])
def test_a_bad_session_id_is_refused_without_repeating_it(session_id):
    with pytest.raises(RelaySessionIdInvalid) as caught:
        relay.RelayHub().open_session(SE_ID, session_id=session_id)
    assert caught.value.code == "relay_session_id_invalid"
    assert session_id not in str(caught.value) or not session_id


def test_the_phone_learns_the_session_closed(hub_and_url):
    hub, url, _ = hub_and_url
    never_polled = hub.open_session(SE_ID)
    hub.close_session(never_polled.session_id)
    assert hub.wait_told_closed(never_polled.session_id, 0)  # nobody to tell
    session = hub.open_session(SE_ID)
    phone = Phone(url, session.session_id, LocalTransport(MiniCard()))
    with relay.RelayTransport(hub, session.session_id, SE_ID, answer_timeout=5) as transport:
        transport.transmit(SELECT)  # the phone has polled
    assert hub.wait_told_closed(session.session_id, 10)
    assert phone.join() == 1


def test_listening_fails_with_a_typed_error():
    hub = relay.RelayHub()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(RelayListenFailed, match=f"127.0.0.1:{port}: Address already in use"), \
                serve_relay(hub, "127.0.0.1", port):
            pass
    with pytest.raises(RelayListenFailed) as caught, serve_relay(hub, "no-such-host.invalid", 8780):
        pass
    assert caught.value.code == "relay_listen_failed"
