"""Jobs: the most recent jobs the person's tenancy reaches, and one job's steps and APDU log (headers, lengths
and status words; never the data). A job still running refreshes its page (no script: a meta refresh)."""

from __future__ import annotations

from typing import Final

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from web.admin.roles import JOBS
from web.auth.users import role_required, tsm
from web.pages import html_errors

bp = Blueprint("jobs", __name__, url_prefix="/admin/jobs")
html_errors(bp)
RECENT: Final = 200
LIVE: Final = frozenset({engine.PENDING, engine.RUNNING})
REFRESH_SECONDS: Final = 3


@bp.get("/")
@role_required(*JOBS)
def index() -> ResponseReturnValue:
    """The newest jobs, newest first."""
    return render_template("admin/jobs.html", jobs=jobs.list_jobs(tsm(), limit=RECENT))


@bp.get("/<job_id>")
@role_required(*JOBS)
def show(job_id: str) -> ResponseReturnValue:
    """One job: its steps and APDU log."""
    job = jobs.show(tsm(), job_id)
    return render_template("admin/job.html", job=job, refresh=REFRESH_SECONDS if job.state in LIVE else None)
