"""REST API v1 under /api/v1 (docs/api.md): secure elements, apps, services, operations, jobs.

Each view parses (its schema), authorises (the key's scope; the tenancy in the service layer), calls one
service function and renders (web/api/render.py). Lists are paginated (web/api/pagination.py); POSTs that
start work honour `Idempotency-Key` (web/api/idempotency.py).
"""

from __future__ import annotations

from typing import Any, Final

from apiflask import APIBlueprint
from flask import url_for

from tsm_core.catalog import service as catalog
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.registry import batch
from tsm_core.registry import service as registry
from web.api import pagination, render
from web.api import schemas as s
from web.api.context import BLUEPRINT, requires, tsm
from web.api.idempotency import idempotent

URL_PREFIX: Final = "/api/v1"
ERRORS: Final = [400, 401, 403, 404, 422, 429]
SECURITY: Final = "ApiKey"

bp = APIBlueprint(BLUEPRINT, __name__, url_prefix=URL_PREFIX)


def operation_url(job_id: str) -> dict[str, str]:
    return {"Location": url_for(f"{BLUEPRINT}.get_operation", operation_id=job_id)}


@bp.get("/secure-elements")
@requires("secure-elements:read")
@bp.input(s.SecureElementQuery, location="query", arg_name="query")
@bp.output(s.SecureElementPage)
@bp.doc(tags=["Secure elements"], responses=ERRORS, security=SECURITY)
def list_secure_elements(query: dict[str, Any]) -> Any:
    """List secure elements, by id (an SE vendor its own, a device its own; filter by SE id, CIN or a CPLC
    field with its value)."""
    limit = query["limit"]
    given = (query["cplc_field"], query["cplc_value"])
    found = registry.list_ses(tsm(), limit=limit + 1, after=pagination.decode(query["cursor"]),
                              se_id=query["se_id"], cin=query["cin"],
                              cplc=None if given == (None, None) else (given[0] or "", given[1] or ""))
    more = len(found) > limit
    items = found[:limit]
    return pagination.page([vars(x) for x in items], pagination.next_url(items[-1].id if more else None))


@bp.get("/secure-elements/<se_id>")
@requires("secure-elements:read")
@bp.output(s.SecureElement)
@bp.doc(tags=["Secure elements"], responses=ERRORS, security=SECURITY)
def get_secure_element(se_id: str) -> Any:
    """One secure element: profile, security-domain tree (key versions, never key labels) and content."""
    return render.secure_element(registry.show(tsm(), se_id))


@bp.post("/secure-elements")
@requires("secure-elements:write")
@idempotent
@bp.input(s.SeBatchIn, arg_name="body")
@bp.output(s.SeBatchOut, status_code=201)
@bp.doc(tags=["Secure elements"], responses=[*ERRORS, 409], security=SECURITY)
def register_secure_elements(body: dict[str, Any]) -> Any:
    """Register a vendor's batch of SEs: every one, or none when one is refused."""
    return {"ids": registry.import_batch(tsm(), batch.parse_document(body))}


@bp.get("/apps")
@requires("apps:read")
@bp.input(s.PageQuery, location="query", arg_name="query")
@bp.output(s.AppPage)
@bp.doc(tags=["Apps"], responses=ERRORS, security=SECURITY)
def list_apps(query: dict[str, Any]) -> Any:
    """The catalog: an SP's own apps; for a device, the approved apps meant for its SE."""
    items, next_link = pagination.offset_page(catalog.list_apps(tsm()), query["limit"], query["cursor"])
    return pagination.page([render.app(a) for a in items], next_link)


@bp.post("/services")
@requires("services:write")
@idempotent
@bp.input(s.ServiceOrderIn, arg_name="body")
@bp.output(s.ServiceOrdered, status_code=202)
@bp.doc(tags=["Services"], responses=[*ERRORS, 409], security=SECURITY)
def order_service(body: dict[str, Any]) -> Any:
    """Order an app on an SE (open card): 202 with the operation that installs it at the device's next
    contact (or by a worker); `Location` names the operation."""
    ordered = lifecycle.order(tsm(), body["se_id"], body["app_id"])
    return ({"service_id": ordered.service_id, "operation": render.operation(ordered.job)}, 202,
            operation_url(ordered.job.id))


@bp.get("/services")
@requires("services:read")
@bp.input(s.JobQuery, location="query", arg_name="query")
@bp.output(s.ServicePage)
@bp.doc(tags=["Services"], responses=ERRORS, security=SECURITY)
def list_services(query: dict[str, Any]) -> Any:
    """The caller's services (of one SE, or all), newest first."""
    found = lifecycle.list_services(tsm(), query["se_id"])
    items, next_link = pagination.offset_page(found, query["limit"], query["cursor"])
    return pagination.page([render.service(v) for v in items], next_link)


@bp.get("/services/<service_id>")
@requires("services:read")
@bp.output(s.Service)
@bp.doc(tags=["Services"], responses=ERRORS, security=SECURITY)
def get_service(service_id: str) -> Any:
    """A service instance: its state, history and the operations on it."""
    return render.service(lifecycle.show(tsm(), service_id))


ACTIONS: Final = {"lock": lifecycle.lock, "unlock": lifecycle.unlock, "suspend": lifecycle.suspend,
                  "resume": lifecycle.resume, "unsubscribe": lifecycle.unsubscribe}


@bp.post("/services/<service_id>/actions")
@requires("services:write")
@idempotent
@bp.input(s.ServiceActionIn, arg_name="body")
@bp.output(s.ServiceActionOut, status_code=202)
@bp.doc(tags=["Services"], responses=[*ERRORS, 409], security=SECURITY)
def act_on_service(service_id: str, body: dict[str, Any]) -> Any:
    """Lock (report lost), unlock, suspend, resume or unsubscribe: done in the registry at once; the card side
    is an operation that waits for the device's next contact (null when the card needs nothing)."""
    context = tsm()
    outcome = ACTIONS[body["action"]](context, service_id)
    operation = render.operation(jobs.show(context, outcome.job_id, apdus=False)) if outcome.job_id else None
    headers = operation_url(outcome.job_id) if outcome.job_id else {}
    return {"service": render.service(outcome.service), "message": outcome.message, "operation": operation}, \
        202, headers


@bp.get("/operations/<operation_id>")
@requires("operations:read")
@bp.output(s.Operation)
@bp.doc(tags=["Operations"], responses=ERRORS, security=SECURITY)
def get_operation(operation_id: str) -> Any:
    """An operation's state (PENDING, WAITING_DEVICE, RUNNING, SUCCEEDED, FAILED, CANCELLED) and progress."""
    return render.operation(jobs.show(tsm(), operation_id, apdus=False))


@bp.get("/jobs")
@requires("jobs:read")
@bp.input(s.JobQuery, location="query", arg_name="query")
@bp.output(s.JobPage)
@bp.doc(tags=["Jobs"], responses=ERRORS, security=SECURITY)
def list_jobs(query: dict[str, Any]) -> Any:
    """The most recent jobs the caller's tenancy reaches (of one SE, or all)."""
    items, next_link = pagination.offset_page(jobs.list_jobs(tsm(), query["se_id"]), query["limit"],
                                              query["cursor"])
    return pagination.page([render.job(j) for j in items], next_link)
