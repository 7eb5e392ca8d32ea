"""Metering: downloads (and every metered event) per service provider in a month, a bar chart of downloads per
SP rendered on the server as inline SVG (no script), and one SP's month as CSV (docs/billing.md). An SP's person
sees its own SP only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue

from keyservice.people import Role
from tsm_core.billing import DOWNLOAD
from tsm_core.billing import service as billing
from tsm_core.billing.views import UsageReport
from tsm_core.context import now
from tsm_core.registry import service as registry
from web.admin.forms import MonthForm
from web.admin.roles import METERING
from web.auth.users import role_required, tsm, user
from web.pages import html_errors

bp = Blueprint("metering", __name__, url_prefix="/admin/metering")
html_errors(bp)
CHART_WIDTH: Final = 640
BAR_HEIGHT: Final = 22
LABEL_WIDTH: Final = 160


@dataclass(frozen=True)
class Bar:
    """One bar of the chart: its label, value and geometry in SVG user units."""

    label: str
    value: int
    y: int
    width: int


def _month(form: MonthForm) -> str:
    return (form.month.data if form.validate() and form.month.data else None) or now().strftime("%Y-%m")


def _sps() -> list[str]:
    """The SPs the person reaches: their own for an SP's person, every SP for the issuer's people."""
    who = user()
    if who.role is Role.SP:
        return [who.owner]
    return [t.name for t in registry.list_tenants(tsm(), "sp")]


def _downloads(report: UsageReport) -> int:
    return next((c.count for c in report.operations if c.name == DOWNLOAD), 0)


def chart(reports: list[UsageReport]) -> tuple[list[Bar], int]:
    """Horizontal bars of downloads per SP, scaled to the largest; and the chart's height."""
    top = max((_downloads(r) for r in reports), default=0) or 1
    span = CHART_WIDTH - LABEL_WIDTH - 40
    bars = [Bar(r.sp, _downloads(r), i * BAR_HEIGHT, round(span * _downloads(r) / top)) for i, r in enumerate(reports)]
    return bars, max(len(bars), 1) * BAR_HEIGHT


@bp.get("/")
@role_required(*METERING)
def index() -> ResponseReturnValue:
    """Each reachable SP's month: downloads, events, statement total; the chart."""
    form = MonthForm(formdata=request.args)
    month = _month(form)
    context = tsm()
    reports = [billing.usage(context, sp, month) for sp in _sps()]
    bars, height = chart(reports)
    return render_template("admin/metering.html", form=form, month=month, reports=reports, downloads=_downloads,
                           bars=bars, height=height, width=CHART_WIDTH, label_width=LABEL_WIDTH,
                           bar_height=BAR_HEIGHT)


@bp.get("/export.csv")
@role_required(*METERING)
def export() -> ResponseReturnValue:
    """One SP's month as CSV (the rows of `tsm report usage --csv`)."""
    form = MonthForm(formdata=request.args)
    month = _month(form)
    sp = form.sp.data or (user().owner if user().role is Role.SP else "")
    report = billing.usage(tsm(), sp, month)
    return Response(billing.usage_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="usage-{month}.csv"'})
