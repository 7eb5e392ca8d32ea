"""Sending queued webhook deliveries, signed, retried with exponential back-off until the endpoint answers 2xx
(docs/api.md, "Webhooks"). At least once: a receiver deduplicates by `webhook-id`.

`deliver_due` sends every delivery whose time has come, once; it runs as the Procrastinate periodic task of
tsm_core/webhooks/tasks.py (one at a time, every few seconds, on `tsm job worker`) or from `tsm webhook deliver` on
the embedded SQLite default. An attempt that does not get a 2xx answer (another status, a timeout, a refused
connection) is recorded and the next one set `BASE_DELAY · 2^(attempts-1)` later (at most `MAX_DELAY`); after
`MAX_ATTEMPTS` the delivery is `failed`. Redirects are not followed. Each endpoint's secret is unsealed by the key
service (one audited call per endpoint and run) and used in host memory for the HMAC only.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select

from keyservice.policy import Purpose
from tsm_core.context import Tsm, now
from tsm_core.webhooks import signing
from tsm_core.webhooks.models import WebhookDelivery, WebhookEndpoint
from tsm_core.webhooks.service import context_of

BASE_DELAY: Final = timedelta(seconds=10)
MAX_DELAY: Final = timedelta(hours=1)
MAX_ATTEMPTS: Final = 15
"""About 9 hours of retries in all."""
TIMEOUT_SECONDS: Final = 10.0
BATCH: Final = 100


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER: Final = urllib.request.build_opener(_NoRedirect)


@dataclass
class DeliveryRun:
    """What one `deliver_due` did."""

    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt."""
    wait: timedelta = BASE_DELAY * 2 ** (attempts - 1)
    return min(wait, MAX_DELAY)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """POST once: the status (None when no answer came) and an error line ("" for 2xx)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked URL
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return None, f"no answer: {type(exc).__name__}"
    return status, "" if 200 <= status < 300 else f"HTTP {status}"


def _secret(tsm: Tsm, endpoint: WebhookEndpoint) -> bytes:
    return tsm.keys.apps.unseal(tsm.request(Purpose.SERVICE, endpoint.id), endpoint.key_label,
                                bytes.fromhex(endpoint.secret_sealed), context_of(endpoint.id))


def deliver_due(tsm: Tsm, at: datetime | None = None) -> DeliveryRun:
    """Attempt every pending delivery due at `at` (now), up to BATCH of them."""
    at = at or now()
    run = DeliveryRun()
    with tsm.sessions() as db:
        due = list(db.execute(select(WebhookDelivery, WebhookEndpoint)
                              .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                              .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= at)
                              .order_by(WebhookDelivery.next_attempt_at).limit(BATCH)))
        db.expunge_all()
    secrets: dict[str, bytes] = {}
    for delivery, endpoint in due:
        if endpoint.disabled_at is not None:
            _record(tsm, delivery.id, "failed", None, "the endpoint was removed", at, run.failed)
            continue
        if endpoint.id not in secrets:
            secrets[endpoint.id] = _secret(tsm, endpoint)
        body = delivery.body.encode()
        status, error = post(endpoint.url, body, signing.headers(secrets[endpoint.id], delivery.id,
                                                                  int(at.timestamp()), body))
        if not error:
            _record(tsm, delivery.id, "delivered", status, "", at, run.delivered)
        elif delivery.attempts + 1 >= MAX_ATTEMPTS:
            _record(tsm, delivery.id, "failed", status, error, at, run.failed)
        else:
            _record(tsm, delivery.id, "pending", status, error, at, run.retrying)
    return run


def _record(tsm: Tsm, delivery_id: str, state: str, status: int | None, error: str, at: datetime,
            into: list[str]) -> None:
    with tsm.transaction() as db:
        row = db.get(WebhookDelivery, delivery_id)
        assert row is not None  # deliveries are never deleted
        row.attempts += 1
        row.state, row.last_status, row.last_error = state, status, error[:500]
        if state == "delivered":
            row.delivered_at = at
        elif state == "pending":
            row.next_attempt_at = at + backoff(row.attempts)
    into.append(delivery_id)
