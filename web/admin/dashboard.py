"""The dashboard: HSM and profile status, self-test, audit chain, the ceremonies waiting for me (the ceremonies
area's `pending_for`), running jobs and recent failures."""

from __future__ import annotations

from typing import Any, Final

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from keyservice.service import KeyService
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from web.admin.ceremonies import pending_for
from web.admin.roles import CEREMONIES, DASHBOARD
from web.auth.users import keyservice, role_required, tsm, user
from web.errors import EXPECTED_ERRORS, error_code, error_message
from web.pages import html_errors

bp = Blueprint("dashboard", __name__, url_prefix="/admin")
html_errors(bp)
RECENT: Final = 100
RUNNING: Final = frozenset({engine.PENDING, engine.RUNNING, engine.WAITING})


def _hsm(service: KeyService) -> dict[str, Any]:
    try:
        info = service.token_info()
    except EXPECTED_ERRORS as exc:
        return {"status": "error", "detail": error_message(exc), "code": error_code(exc)}
    return {"status": "ok", "token": info.label, "model": info.model, "test_token": info.test_token,
            "profile": service.profile}


@bp.get("/")
@role_required(*DASHBOARD)
def index() -> ResponseReturnValue:
    """One look at the installation's health and work in progress."""
    service = keyservice()
    recent = jobs.list_jobs(tsm(), limit=RECENT)
    who = user()
    return render_template(
        "admin/dashboard.html", hsm=_hsm(service), selftest=service.selftest_status(),
        audit=service.status()["audit_chain"],
        running=[j for j in recent if j.state in RUNNING],
        failures=[j for j in recent if j.state == engine.IN_ERROR][:10],
        pending=pending_for(who) if who.role in CEREMONIES else None)
