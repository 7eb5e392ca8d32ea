"""The phone app's endpoints of API v1 (docs/api.md, "Phone apps"): top-up ordered for the device's next contact
and relay sessions a device opens for its own SE. The catalog, ordering, report lost and unsubscribe are the
shared endpoints of web/api/v1.py (a device key's tenancy is its SE)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from flask import current_app, url_for

from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import phone
from tsm_core.lifecycle import service as lifecycle
from tsm_core.transport.relay_store import RelayStore
from web.api import render
from web.api import schemas as s
from web.api.context import requires, tsm
from web.api.idempotency import idempotent
from web.api.v1 import ERRORS, SECURITY, URL_PREFIX, bp, operation_url

NOT_IDEMPOTENT: Final = frozenset({f"{URL_PREFIX}/relay-sessions"})
"""POSTs without `Idempotency-Key`: their answer holds a secret that must not be stored to replay it."""


@bp.post("/services/<service_id>/top-ups")
@requires("services:write")
@idempotent
@bp.input(s.TopUpIn, arg_name="body")
@bp.output(s.TopUpOrdered, status_code=202)
@bp.doc(tags=["Services"], responses=[*ERRORS, 409], security=SECURITY)
def order_top_up(service_id: str, body: dict[str, Any]) -> Any:
    """Top up a purse: 202 with the operation that credits it at the device's next contact (WAITING_DEVICE
    until then: the phone opens a relay session for it)."""
    context = tsm()
    order = lifecycle.order_topup(context, service_id, body["amount"])
    assert order.job_id is not None  # a new order has its credit job
    top_up = {"id": order.id, "service_id": order.service_id, "amount": order.amount, "state": order.state,
              "balance_before": order.balance_before, "balance_after": order.balance_after}
    return ({"top_up": top_up, "operation": render.operation(jobs.show(context, order.job_id, apdus=False))},
            202, operation_url(order.job_id))


@bp.post("/relay-sessions")
@requires("relay-sessions:write")
@bp.input(s.RelaySessionIn, arg_name="body")
@bp.output(s.RelaySession, status_code=201)
@bp.doc(tags=["Phone apps"], responses=[*ERRORS, 409], security=SECURITY)
def open_relay_session(body: dict[str, Any]) -> Any:
    """Open the APDU relay for the calling device's SE (device keys only), bound to the device, its SE and the
    operation given: the phone then posts to `url` with its key (docs/relay.md, "Device sessions"). Not
    idempotent: the answer carries the session's secret id, which is never stored (a repeat opens another)."""
    store: RelayStore = current_app.config["TSM_RELAY_STORE"]
    opened = phone.open_relay(tsm(), store, body["operation_id"])
    return {"id": opened.session_id, "url": url_for("relay.exchange", session_id=opened.session_id, _external=True),
            "se_id": opened.se_id, "operation_id": body["operation_id"],
            "expires_at": datetime.fromtimestamp(opened.expires_at, UTC)}, 201
