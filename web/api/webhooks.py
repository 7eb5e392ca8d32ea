"""Service providers' webhooks under /api/v1/webhooks (docs/api.md, "Webhooks"): register an endpoint (its signing
secret shown once), list, remove. Deliveries are sent by the workers (tsm_core/webhooks/delivery.py)."""

from __future__ import annotations

from typing import Any, Final

from tsm_core.webhooks import service as webhooks
from tsm_core.webhooks.service import EndpointView
from web.api import pagination
from web.api import schemas as s
from web.api.context import requires, tsm
from web.api.v1 import ERRORS, SECURITY, URL_PREFIX, bp

TAG: Final = "Webhooks"
NOT_IDEMPOTENT: Final = frozenset({f"{URL_PREFIX}/webhooks"})
"""Registering answers the signing secret once: that answer is never stored to replay it (a second POST registers
a second endpoint; remove the extra one with DELETE)."""


def _webhook(view: EndpointView) -> dict[str, Any]:
    return {"id": view.id, "sp": view.sp, "url": view.url, "created_at": view.created_at}


@bp.post("/webhooks")
@requires("webhooks:write")
@bp.input(s.WebhookIn, arg_name="body")
@bp.output(s.NewWebhook, status_code=201)
@bp.doc(tags=[TAG], responses=ERRORS, security=SECURITY)
def register_webhook(body: dict[str, Any]) -> Any:
    """Register a URL for the SP's events (operation.completed, service.state_changed); the answer carries the
    signing secret, this once."""
    made = webhooks.register(tsm(), body["url"])
    return {**_webhook(made.view), "secret": made.secret}, 201


@bp.get("/webhooks")
@requires("webhooks:read")
@bp.input(s.PageQuery, location="query", arg_name="query")
@bp.output(s.WebhookPage)
@bp.doc(tags=[TAG], responses=ERRORS, security=SECURITY)
def list_webhooks(query: dict[str, Any]) -> Any:
    """The SP's webhook endpoints (never their secrets)."""
    items, next_link = pagination.offset_page(webhooks.list_endpoints(tsm()), query["limit"], query["cursor"])
    return pagination.page([_webhook(v) for v in items], next_link)


@bp.delete("/webhooks/<webhook_id>")
@requires("webhooks:write")
@bp.output({}, status_code=204)
@bp.doc(tags=[TAG], responses=ERRORS, security=SECURITY)
def remove_webhook(webhook_id: str) -> Any:
    """Stop sending to an endpoint."""
    webhooks.remove(tsm(), webhook_id)
    return "", 204
