"""Secure elements: search by SE id or CIN, one SE's detail (security-domain tree with key versions, never key
labels; content; service instances; job history) and customer care's actions on a service: report lost, unlock,
delete (each queued for the device's next contact: the card is not attached to the web server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from tsm_core.context import Tsm
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.lifecycle.service import Outcome
from tsm_core.registry import service as registry
from web.admin.forms import SeSearch
from web.admin.roles import SE_ACTIONS, SECURE_ELEMENTS
from web.auth.users import role_required, tsm
from web.pages import html_errors

bp = Blueprint("secure_elements", __name__, url_prefix="/admin/secure-elements")
html_errors(bp)
PAGE: Final = 200
ACTIONS: Final[dict[str, Callable[[Tsm, str], Outcome]]] = {
    "lost": lifecycle.lock, "unlock": lifecycle.unlock, "delete": lifecycle.unsubscribe,
}
"""Report lost (ACTIVE -> LOCKED_LOST), found again (-> ACTIVE), delete (the holder's unsubscribe: a purse's
balance recorded for refund, the instance deleted at the next contact)."""


@bp.get("/")
@role_required(*SECURE_ELEMENTS)
def index() -> ResponseReturnValue:
    """SEs by id (the first PAGE), or those matching the SE id, CIN or CPLC field searched."""
    form = SeSearch(formdata=request.args)
    found = registry.list_ses(tsm(), limit=PAGE, se_id=form.se_id.data or None, cin=form.cin.data or None,
                              cplc=form.cplc()) if form.validate() else []
    return render_template("admin/secure_elements.html", form=form, ses=found)


@bp.get("/<se_id>")
@role_required(*SECURE_ELEMENTS)
def show(se_id: str) -> ResponseReturnValue:
    """One SE as far as the person's tenancy reaches, its services and its jobs."""
    context = tsm()
    se = registry.show(context, se_id)
    return render_template("admin/secure_element.html", se=se, services=lifecycle.list_services(context, se_id),
                           jobs=jobs.list_jobs(context, se_id))


@bp.post("/services/<service_id>/<action>")
@role_required(*SE_ACTIONS)
def act(service_id: str, action: str) -> ResponseReturnValue:
    """Report a service lost, unlock it or delete it; back to its SE with what happened."""
    operation = ACTIONS.get(action)
    if operation is None:
        return render_template("admin/error.html", status=404, title="Not found",
                               detail=f"no action {action!r}"), 404
    outcome = operation(tsm(), service_id)
    flash(f"Service {service_id}: {outcome.message}", "ok")
    return redirect(url_for("secure_elements.show", se_id=outcome.service.se_id))
