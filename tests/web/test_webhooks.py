"""Signed webhooks (docs/api.md, "Webhooks"): an SP registers a URL over the API and gets its secret once; an
operation's completion and a service's state change queue deliveries that are sent to a real local HTTP receiver,
which refuses the first attempt: the delivery is retried after its back-off and its Standard Webhooks signature
verifies with the secret. On PostgreSQL the same runs as the Procrastinate task of `tsm job worker`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, text

from globalplatform.keys import KeyAlgorithm
from keyservice.inventory import KeyState, KeyUsage
from keyservice.views import NewKey
from tests.tsm_core.lab import KEY_MANAGEMENT, make_lab
from tests.web.conftest import make_world
from tsm_core.context import now
from tsm_core.jobs import queue
from tsm_core.webhooks import delivery, signing, tasks
from tsm_core.webhooks.models import WebhookDelivery, WebhookEndpoint


@dataclass
class Receiver:
    """A local HTTP endpoint that answers `statuses` in turn (then 200) and keeps what it got."""

    statuses: list[int]
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver([500])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            made.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(made.statuses.pop(0) if made.statuses else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    made.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield made
    server.shutdown()
    server.server_close()


def _data_key(world) -> None:  # type: ignore[no-untyped-def]
    keys = world.lab.keys.keys
    keys.generate(KEY_MANAGEMENT, NewKey("issuer-data", KeyAlgorithm.AES, 32, KeyUsage.DATA_KEY, "issuer"))
    keys.change_state(KEY_MANAGEMENT, "issuer-data", KeyState.ACTIVE)


def _register_and_provision(world, url: str) -> str:  # type: ignore[no-untyped-def]
    """The SP's webhook (its secret), then an open card run to its end and the service locked."""
    _data_key(world)
    made = world.client.post("/api/v1/webhooks", json={"url": url}, headers=world.headers("sp"))
    assert made.status_code == 201, made.get_json()
    secret = made.get_json()["secret"]
    assert secret.startswith("whsec_")
    listed = world.client.get("/api/v1/webhooks", headers=world.headers("sp")).get_json()["items"]
    assert [h["url"] for h in listed] == [url] and "secret" not in listed[0]
    with world.lab.tsm.sessions() as db:
        sealed = db.execute(select(WebhookEndpoint.secret_sealed)).scalar_one()
    assert signing.parse(secret).hex() not in sealed  # sealed, never in clear
    ordered = world.client.post("/api/v1/services", json={"se_id": world.se_id, "app_id": world.app_id},
                                headers=world.headers("sp")).get_json()
    assert world.lab.run(ordered["operation"]["id"], world.card).state == "done"
    locked = world.client.post(f"/api/v1/services/{ordered['service_id']}/actions", json={"action": "lock"},
                               headers=world.headers("sp"))
    assert locked.status_code == 202, locked.get_json()
    return secret


def _deliveries(world) -> list[WebhookDelivery]:  # type: ignore[no-untyped-def]
    with world.lab.tsm.sessions() as db:
        return list(db.execute(select(WebhookDelivery).order_by(WebhookDelivery.created_at)).scalars())


def test_deliveries_are_retried_until_2xx_and_their_signature_verifies(world, receiver):
    secret = signing.parse(_register_and_provision(world, receiver.url))
    queued = _deliveries(world)
    assert [d.event for d in queued] == ["operation.completed", "service.state_changed"]
    receiver.statuses = [500, 503]
    start = now()
    first = delivery.deliver_due(world.lab.tsm, start)
    assert first.retrying == [d.id for d in queued] and not first.delivered
    assert delivery.deliver_due(world.lab.tsm, start + timedelta(seconds=1)).retrying == []  # backing off
    later = delivery.deliver_due(world.lab.tsm, start + delivery.backoff(1))
    assert later.delivered == [d.id for d in queued]
    assert {(d.state, d.attempts, d.last_status) for d in _deliveries(world)} == {("delivered", 2, 200)}
    assert len(receiver.got) == 4
    for headers, body in receiver.got[2:]:
        stamp = int(headers["webhook-timestamp"])
        assert signing.verify(secret, headers["webhook-id"], stamp, body, headers["webhook-signature"], stamp)
        assert not signing.verify(secret, headers["webhook-id"], stamp, body + b" ", headers["webhook-signature"],
                                  stamp)
        assert not signing.verify(b"another secret", headers["webhook-id"], stamp, body,
                                  headers["webhook-signature"], stamp)
    completed = receiver.got[2][1].decode()
    assert '"type":"operation.completed"' in completed and '"state":"SUCCEEDED"' in completed


def test_a_removed_webhook_and_an_endpoint_that_never_answers(world, receiver):
    _register_and_provision(world, receiver.url)
    receiver.statuses = [500] * 100
    at = now()
    for attempt in range(1, delivery.MAX_ATTEMPTS + 1):
        run = delivery.deliver_due(world.lab.tsm, at)
        at += delivery.backoff(attempt)
    assert len(run.failed) == 2 and {d.state for d in _deliveries(world)} == {"failed"}
    hook = world.client.get("/api/v1/webhooks", headers=world.headers("sp")).get_json()["items"][0]
    assert world.client.delete(f"/api/v1/webhooks/{hook['id']}", headers=world.headers("sp")).status_code == 204
    assert world.client.delete(f"/api/v1/webhooks/{hook['id']}",
                               headers=world.headers("other")).get_json()["code"] == "not_found"


@pytest.mark.parametrize("url", ["http://sp.example/hooks", "ftp://127.0.0.1/x", "https://user:pw@sp.example/",
                                 "not a url"])
def test_only_https_urls_or_this_machine(world, url):
    _data_key(world)
    refused = world.client.post("/api/v1/webhooks", json={"url": url}, headers=world.headers("sp"))
    assert refused.status_code in (400, 422) and refused.mimetype == "application/problem+json"


@pytest.fixture
def pg_world(settings_factory, pg_url):  # type: ignore[no-untyped-def]
    lab = make_lab(*settings_factory(pg_url))
    yield make_world(lab)
    lab.tsm.sessions.kw["bind"].dispose()


@pytest.mark.postgres
def test_the_procrastinate_task_sends_them(pg_world, receiver):
    world = pg_world
    secret = signing.parse(_register_and_provision(world, receiver.url))
    receiver.statuses = []
    app = queue.make_app(world.lab.settings.database_url)
    tasks.bind(app, lambda: world.lab.tsm)
    with app.open():
        app.configure_task(tasks.TASK).defer(timestamp=0)
        app.run_worker(queues=[tasks.QUEUE], wait=False, install_signal_handlers=False)
    assert {d.state for d in _deliveries(world)} == {"delivered"}
    headers, body = receiver.got[0]
    stamp = int(headers["webhook-timestamp"])
    assert signing.verify(secret, headers["webhook-id"], stamp, body, headers["webhook-signature"], stamp)


def test_a_webhook_secret_is_not_kept_for_an_idempotent_replay(world, receiver):
    """The signing secret is answered once: a POST with `Idempotency-Key` must not store that answer."""
    _data_key(world)
    made = world.client.post("/api/v1/webhooks", json={"url": receiver.url}, headers={
        **world.headers("sp"), "Idempotency-Key": "register-once"})
    assert made.status_code == 201
    secret = made.get_json()["secret"]
    with world.lab.tsm.sessions() as db:
        stored = [str(row) for row in db.execute(text("select * from api_idempotency")).all()]
    assert not any(secret in row for row in stored)
