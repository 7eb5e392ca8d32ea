"""Events queued for service providers' webhooks, in the transaction of the change they tell of (an outbox: an event
is queued if and only if its change commits). Sent by tsm_core/webhooks/delivery.py.

Events (docs/api.md, "Webhooks"): `operation.completed` when a job ends (SUCCEEDED, FAILED or CANCELLED) and
`service.state_changed` when a service instance changes state. Each body is a JSON document
`{"id", "type", "created_at", "data"}`; `id` is the delivery's, the `webhook-id` header too.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from tsm_core.catalog.models import App
from tsm_core.context import now
from tsm_core.jobs.models import Job
from tsm_core.registry.models import ServiceInstance
from tsm_core.webhooks.models import WebhookDelivery, WebhookEndpoint

OPERATION_COMPLETED: Final = "operation.completed"
SERVICE_STATE_CHANGED: Final = "service.state_changed"


def queue(db: Session, sp_id: int | None, event: str, data: dict[str, Any]) -> list[str]:
    """One delivery per live endpoint of SP `sp_id` (none without an SP); the deliveries' ids."""
    if sp_id is None:
        return []
    at = now()
    ids = []
    for endpoint in db.execute(select(WebhookEndpoint.id).where(WebhookEndpoint.sp_id == sp_id,
                                                                WebhookEndpoint.disabled_at.is_(None))).scalars():
        delivery_id = "msg_" + secrets.token_hex(12)
        body = json.dumps({"id": delivery_id, "type": event, "created_at": at.isoformat(), "data": data},
                          sort_keys=True, separators=(",", ":"), default=str)
        db.add(WebhookDelivery(id=delivery_id, endpoint_id=endpoint, event=event, body=body, state="pending",
                               attempts=0, last_error="", next_attempt_at=at, created_at=at))
        ids.append(delivery_id)
    return ids


OPERATION_STATE: Final = {"done": "SUCCEEDED", "in_error": "FAILED", "cancelled": "CANCELLED"}
"""A job's end state as the API names it (web/api/render.py)."""


def _sp_of(db: Session, app_id: str | None) -> int | None:
    if app_id is None:
        return None
    return db.execute(select(App.sp_id).where(App.id == app_id)).scalar_one_or_none()


def job_ended(db: Session, job: Job) -> None:
    """`operation.completed` for the SP of the job's app (a job on no app tells no SP)."""
    if job.state not in OPERATION_STATE:
        return
    queue(db, _sp_of(db, job.app_id), OPERATION_COMPLETED,
          {"operation": {"id": job.id, "kind": job.kind, "state": OPERATION_STATE[job.state], "se_id": job.se_id,
                         "app_id": job.app_id, "service_id": job.service_id, "error": job.error}})


def service_changed(db: Session, service: ServiceInstance, before: str, operation: str) -> None:
    """`service.state_changed` for the service's SP, when its state did change."""
    if service.state == before:
        return
    queue(db, _sp_of(db, service.app_id), SERVICE_STATE_CHANGED,
          {"service": {"id": service.id, "se_id": service.se_id, "app_id": service.app_id, "from_state": before,
                       "to_state": service.state, "operation": operation}})
