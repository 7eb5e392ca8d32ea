"""The relay's state is shared (docs/relay.md, "Sessions"): a real gunicorn with two sync workers serves the
phone, the job side runs in this test's process, and the database (SQLite, PostgreSQL) is all they share.

A sync worker handles one request at a time, so while one phone request is held (long poll) by a worker, a
re-sent request with the same `seq` (a phone whose connection dropped) is served by the other worker; both
must get the same answer, and the batch is delivered once. The access log names each request's worker pid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import select

from storage.session import make_engine, session_factory
from tests.serving import free_port
from tests.tsm_core.cards import ISD_STATUS, MiniCard
from tests.tsm_core.relay_env import BACKENDS, Phone, database, store_on
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.relay import RelayTransport
from tsm_core.transport.relay_models import RelaySessionRow
from tsm_core.transport.relay_store import token_hash
from tsm_core.transport.relay_wire import WIRE_VERSION, Command

SE_ID = "se-0001"
SELECT = bytes.fromhex("00A4040000")
GET_STATUS = bytes.fromhex("80F28002024F00")
GUNICORN = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
START_TRIES = 150



def _post(url: str, document: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(document).encode(), method="POST",  # noqa: S310 (http)
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (http)
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(params=BACKENDS)
def served(request, tmp_path):  # type: ignore[no-untyped-def]
    """(database URL, relay base URL, access log path) of a gunicorn with 2 workers over a migrated database."""
    generator = database(request.param, tmp_path)
    url = next(generator)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    port, log = free_port(), tmp_path / "access.log"
    env = {**{k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}, "TSM_HOME": str(home),
           "TSM_DATABASE_URL": url}
    with log.open("w") as fh:
        process = subprocess.Popen([GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--access-logfile",
                                    "-", "--access-logformat", '%(p)s "%(r)s" %(s)s', "--logger-class",
                                    "web.access_log.RedactingLogger", "web.wsgi:create()"],
                                   env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/relay"
    try:
        for _ in range(START_TRIES):
            try:
                if _post(f"{base}/sessions/{'x' * 24}/exchange", {})[0] == 400:
                    break
            except OSError:
                time.sleep(0.1)
        yield url, base, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        generator.close()


def _contacted(db_url: str, session_id: str) -> bool:
    with session_factory(make_engine(db_url))() as db:
        return bool(db.scalar(select(RelaySessionRow.contacted)
                              .where(RelaySessionRow.token_hash == token_hash(session_id))))


def test_any_worker_answers_any_request_of_a_session(served):
    db_url, base, log = served
    store = store_on(db_url)
    session = store.open_session(SE_ID, job_id="job-000000000001")
    exchange = f"{base}/sessions/{session.session_id}/exchange"
    first = {"version": WIRE_VERSION, "seq": 1, "status": "POLLING", "responses": [], "atr": ""}
    answers: list[tuple[int, dict]] = []
    held = threading.Thread(target=lambda: answers.append(_post(exchange, first)))
    held.start()  # held by one worker (long poll): nothing is queued yet
    while not _contacted(db_url, session.session_id):
        time.sleep(0.02)
    resent = threading.Thread(target=lambda: answers.append(_post(exchange, first)))
    resent.start()  # the same seq again: the other worker takes it
    time.sleep(0.3)  # let it reach that worker before the batch is queued
    batch = store.submit(session.session_id, SE_ID, b"", [Command(GET_STATUS)])
    held.join(timeout=10)
    resent.join(timeout=10)
    assert len(answers) == 2 and answers[0] == answers[1] and answers[0][1]["action"] == "EXECUTE", answers

    card = MiniCard()  # the phone starts over at seq 1: the cached batch, then its report with seq 2
    phone = Phone(base, session.session_id, LocalTransport(card))
    assert store.wait(session.session_id, batch, timeout=10).responses == (b"\x90\x00", ISD_STATUS + b"\x90\x00")
    with RelayTransport(store, session.session_id, SE_ID, answer_timeout=10) as transport:
        for _ in range(3):
            assert transport.transmit_batch([SELECT, GET_STATUS])[-1] == ISD_STATUS + b"\x90\x00"
    assert phone.join() == 4
    assert card.apdus == [SELECT, GET_STATUS] * 4  # each batch ran once

    time.sleep(0.2)  # the access log line is written after the response
    served_by = re.findall(r'^<(\d+)> "POST /relay/sessions/-/exchange HTTP/1.1" 200', log.read_text(), re.M)
    assert len(set(served_by[:2])) == 2, log.read_text()  # the two seq-1 requests: two workers
    assert session.session_id not in log.read_text()
    assert str(os.getpid()) not in served_by


def test_the_workers_share_expiry_and_closing(served):
    db_url, base, _ = served
    store = store_on(db_url)
    session = store.open_session(SE_ID)
    store.close_session(session.session_id)
    code, problem = _post(f"{base}/sessions/{session.session_id}/exchange",
                          {"version": WIRE_VERSION, "seq": 1, "status": "POLLING"})
    assert (code, problem["code"]) == (410, "relay_session_closed")
    assert store.wait_told_closed(session.session_id, 0)

