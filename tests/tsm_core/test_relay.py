"""The relay path end to end: RelayTransport -> RelayStore (the database, SQLite and PostgreSQL) -> the HTTP
endpoint (web/relay.py, served by a thread) -> RelayClient -> card.

The phone side runs `RelayClient` for real over HTTP (urllib). The card is the test card in-process, and in
the `pcsc` test a card behind the real pcscd + vpcd.
"""

from __future__ import annotations

import socket

import pytest

from tests.tsm_core.cards import ATR, ISD_STATUS, MiniCard
from tests.tsm_core.conftest import READER
from tests.tsm_core.relay_env import BACKENDS, Clock, Phone, database, store_on
from tsm_core.transport.errors import (
    CardRemoved,
    NoCard,
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
from tsm_core.transport.relay import RelayTransport, pieces
from tsm_core.transport.relay_store import GRACE
from web.relay_server import serve_relay

SE_ID = "se-0001"
SELECT = bytes.fromhex("00A4040000")
SELECT_SSD = bytes.fromhex("00A4040008A00000015153504400")
GET_STATUS = bytes.fromhex("80F28002024F00")
UNKNOWN_INS = bytes.fromhex("80FF0000")
ECHO = bytes.fromhex("0001000002ABCD")
LONG_POLL = 0.2


@pytest.fixture(scope="module", params=BACKENDS)
def db(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    yield from database(request.param, tmp_path_factory.mktemp("relay"))


@pytest.fixture
def env(db):  # type: ignore[no-untyped-def]
    clock = Clock()
    store = store_on(db, clock)
    with serve_relay(store, "127.0.0.1", 0, long_poll=LONG_POLL) as url:
        yield store, url, clock


def test_batches_round_trip(env):
    store, url, _ = env
    session = store.open_session(SE_ID, job_id="job-000000000001")
    card = MiniCard()
    phone = Phone(url, session.session_id, LocalTransport(card))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        assert transport.atr == b""  # the phone has not reported yet
        assert transport.transmit_batch([SELECT, GET_STATUS]) == [b"\x90\x00", ISD_STATUS + b"\x90\x00"]
        assert transport.atr == ATR
        assert transport.transmit(ECHO) == bytes.fromhex("ABCD9000")
    assert phone.join() == 2  # closing the transport closes the session; the phone stops cleanly
    assert card.apdus == [SELECT, GET_STATUS, ECHO]
    with pytest.raises(RelaySessionClosed):
        store.session(session.session_id, SE_ID)


def test_a_select_by_aid_becomes_the_next_batchs_target(env):
    """OMAPI: the phone opens a channel per AID; the SELECT is never transmitted inside a batch."""
    assert pieces([GET_STATUS, SELECT_SSD, ECHO, SELECT, GET_STATUS]) == [
        (None, [GET_STATUS]), (bytes.fromhex("A000000151535044"), [ECHO]), (b"", [GET_STATUS])]
    store, url, _ = env
    session = store.open_session(SE_ID)
    card = MiniCard()
    phone = Phone(url, session.session_id, LocalTransport(card))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        assert transport.transmit_batch([SELECT_SSD, ECHO, SELECT, GET_STATUS]) == [
            b"\x90\x00", bytes.fromhex("ABCD9000"), b"\x90\x00", ISD_STATUS + b"\x90\x00"]
    assert phone.join() == 2
    assert card.apdus == [SELECT_SSD, ECHO, SELECT, GET_STATUS]  # the client selected as openLogicalChannel does


@pytest.mark.parametrize("select", ["00A4040C00", "01A4040000", "00A4000000", "00A4040011" + "00" * 17])
def test_a_select_a_phone_cannot_make_is_refused(select):
    with pytest.raises(RelayProtocolError, match="cannot relay"):
        pieces([bytes.fromhex(select)])


def test_the_batch_stops_at_an_unexpected_status_word(env):
    store, url, _ = env
    session = store.open_session(SE_ID)
    card = MiniCard()
    phone = Phone(url, session.session_id, LocalTransport(card))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        assert transport.transmit_batch([SELECT, UNKNOWN_INS, GET_STATUS]) == [b"\x90\x00", b"\x6d\x00"]
    assert phone.join() == 1
    assert card.apdus == [SELECT, UNKNOWN_INS]


def test_any_status_word_goes_on_without_stop_on_error(env):
    store, url, _ = env
    session = store.open_session(SE_ID)
    phone = Phone(url, session.session_id, LocalTransport(MiniCard()))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10, stop_on_error=False) as transport:
        assert transport.transmit_batch([UNKNOWN_INS, GET_STATUS]) == [b"\x6d\x00", ISD_STATUS + b"\x90\x00"]
    assert phone.join() == 1


class _Gone(LocalTransport):
    def transmit(self, apdu: bytes) -> bytes:
        raise CardRemoved("the wearable went out of range")


def test_the_phones_failure_status_is_a_typed_error(env):
    store, url, _ = env
    session = store.open_session(SE_ID)
    phone = Phone(url, session.session_id, _Gone(MiniCard()))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport, \
            pytest.raises(NoCard, match="UNAVAILABLE_SE: card_removed: the wearable went out of range"):
        transport.transmit(SELECT)
    assert phone.join() == 1


def test_expired_session(env):
    store, url, clock = env
    session = store.open_session(SE_ID, ttl=60)
    transport = RelayTransport(store, session.session_id, SE_ID)
    transport.connect()
    clock.now += 61
    with pytest.raises(RelaySessionExpired) as caught:
        transport.transmit(SELECT)
    assert caught.value.code == "relay_session_expired"
    phone = Phone(url, session.session_id, LocalTransport(MiniCard()))
    assert isinstance(phone.join(), RelaySessionExpired)  # the phone learns it over HTTP 410


def test_unknown_session_over_http(env):
    _, url, _ = env
    assert isinstance(Phone(url, "no-such-session", LocalTransport(MiniCard())).join(), RelaySessionNotFound)


def test_foreign_session(env):
    store, _, _ = env
    session = store.open_session(SE_ID)
    with pytest.raises(RelaySessionForeign):
        RelayTransport(store, session.session_id, "se-9999").connect()
    with pytest.raises(RelaySessionForeign):
        store.submit(session.session_id, "se-9999", None, [])


def test_no_phone_fails_once_within_the_timeout_then_at_once(env):
    """A job with no phone: the first batch waits `answer_timeout`, later ones fail at once (bounded)."""
    store, _, clock = env
    session = store.open_session(SE_ID)
    transport = RelayTransport(store, session.session_id, SE_ID, answer_timeout=0.3)
    with pytest.raises(RelayTimeout, match=r"no answer to batch 1 within 0\.3 s"):
        transport.transmit(SELECT)
    clock.now += 31  # the phone's first request is overdue: no more waiting
    with pytest.raises(RelayTimeout, match="no phone contacted the session"):
        RelayTransport(store, session.session_id, SE_ID, answer_timeout=30).transmit(SELECT)


def test_a_lost_batch_is_never_delivered_later(env):
    store, url, _ = env
    session = store.open_session(SE_ID)
    with pytest.raises(RelayTimeout):
        RelayTransport(store, session.session_id, SE_ID, answer_timeout=0.1).transmit(UNKNOWN_INS)
    card = MiniCard()
    phone = Phone(url, session.session_id, LocalTransport(card))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        assert transport.transmit(SELECT) == b"\x90\x00"
    assert phone.join() == 1
    assert card.apdus == [SELECT]


@pytest.mark.parametrize("session_id", ["A" * 16, "a" * 64, "q3hV0dJc0sQ5s1bF2m9x-_7Y"])
def test_a_chosen_session_id(env, session_id):
    store = env[0]
    assert store.open_session(SE_ID, session_id=session_id).session_id == session_id
    with pytest.raises(RelaySessionIdInvalid, match="already in use"):
        store.open_session("se-0002", session_id=session_id)
    store.close_session(session_id)
    assert store.open_session("se-0002", session_id=session_id).se_id == "se-0002"  # a closed one is replaced
    store.close_session(session_id)


@pytest.mark.parametrize("session_id", ["A" * 15, "a" * 65, "q3hV0dJc0sQ5s1bF2m9x+/7Y", "q3hV0dJc0sQ5s1bF2m9xk7Y\n",
                                        "q3hV0dJc0sQ5s1bF 2m9xk7Y", "", "é" * 20])
def test_a_bad_session_id_is_refused_without_repeating_it(env, session_id):
    with pytest.raises(RelaySessionIdInvalid) as caught:
        env[0].open_session(SE_ID, session_id=session_id)
    assert caught.value.code == "relay_session_id_invalid"
    assert session_id not in str(caught.value) or not session_id


def test_the_phone_learns_the_session_closed_and_closed_sessions_are_purged(env):
    store, url, clock = env
    never_polled = store.open_session(SE_ID)
    store.close_session(never_polled.session_id)
    assert store.wait_told_closed(never_polled.session_id, 0)  # nobody to tell
    session = store.open_session(SE_ID)
    phone = Phone(url, session.session_id, LocalTransport(MiniCard()))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        transport.transmit(SELECT)  # the phone has made requests
    assert store.wait_told_closed(session.session_id, 10)
    assert phone.join() == 1
    clock.now += GRACE + 1
    assert store.purge() >= 2
    for gone in (never_polled, session):
        with pytest.raises(RelaySessionNotFound):
            store.session(gone.session_id, SE_ID)


@pytest.mark.pcsc
def test_relay_through_pcscd(env, served_card):
    store, url, _ = env
    session = store.open_session(SE_ID)
    phone = Phone(url, session.session_id, PcscTransport(READER))
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        assert transport.transmit_batch([SELECT, GET_STATUS]) == [b"\x90\x00", ISD_STATUS + b"\x90\x00"]
        assert transport.atr == ATR
        served_card.remove()
        with pytest.raises(NoCard):
            transport.transmit(SELECT)
    assert phone.join() == 2


def test_listening_fails_with_a_typed_error(env):
    store = env[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(RelayListenFailed, match=f"127.0.0.1:{port}: Address already in use"), \
                serve_relay(store, "127.0.0.1", port):
            pass
    with pytest.raises(RelayListenFailed) as caught, serve_relay(store, "no-such-host.invalid", 8780):
        pass
    assert caught.value.code == "relay_listen_failed"
