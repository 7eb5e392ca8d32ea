"""The audit log: the newest records, filtered; verifying the whole chain (a POST: it walks every record and
may seal the service on a break); export as CSV or JSON. Records hold labels, KCVs and targets, never secrets."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any, Final

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from keyservice.errors import AuditChainBroken
from keyservice.views import AuditView
from web.admin.forms import AuditFilter
from web.admin.roles import AUDIT
from web.auth.users import keyservice, role_required
from web.pages import html_errors

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")
html_errors(bp)
COLUMNS: Final = ("seq", "ts", "actor", "operation", "purpose", "target", "keys", "outcome", "detail")
FORMATS: Final = {"csv": "text/csv", "json": "application/json"}


def _records(form: AuditFilter) -> list[AuditView]:
    if not form.validate():
        return []
    return keyservice().audit.records(form.limit.data or 100, actor=form.actor.data or "",
                                      operation=form.operation.data or "", outcome=form.outcome.data or "",
                                      target=form.target.data or "")


def _keys(view: AuditView) -> str:
    return " ".join("/".join(key) for key in view.keys)


@bp.get("/")
@role_required(*AUDIT)
def index() -> ResponseReturnValue:
    """The newest records matching the filters."""
    form = AuditFilter(formdata=request.args)
    return render_template("admin/audit.html", form=form, records=_records(form), keys=_keys)


@bp.post("/verify")
@role_required(*AUDIT)
def verify() -> ResponseReturnValue:
    """Verify every record's link, hash and HSM MAC and the HSM anchor."""
    try:
        report = keyservice().audit.verify()
    except AuditChainBroken as exc:
        flash(f"Audit chain BROKEN: {exc}", "error")
    else:
        flash(f"Audit chain intact: {report.records} records, head {report.head_hash[:16]}…", "ok")
    return redirect(url_for("audit.index"))


@bp.get("/export.<fmt>")
@role_required(*AUDIT)
def export(fmt: str) -> ResponseReturnValue:
    """The filtered records as CSV (RFC 4180) or JSON, as a download."""
    if fmt not in FORMATS:
        return render_template("admin/error.html", status=404, title="Not found",
                               detail="export as csv or json"), 404
    records = _records(AuditFilter(formdata=request.args))
    if fmt == "json":
        body = json.dumps([_row(r) for r in records], indent=1)
    else:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([[_row(r)[c] for c in COLUMNS] for r in records])
        body = out.getvalue()
    return Response(body, mimetype=FORMATS[fmt],
                    headers={"Content-Disposition": f'attachment; filename="audit.{fmt}"'})


def _row(view: AuditView) -> dict[str, Any]:
    row = asdict(view)
    row["keys"] = _keys(view)
    return row
