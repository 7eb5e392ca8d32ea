"""Users and roles: the people the key service knows (no hash, no secret) and, for officers, enrolment; the new
person's TOTP secret is shown once, as a QR code (segno, inline SVG), its provisioning URI and the secret."""

from __future__ import annotations

import segno
from flask import Blueprint, flash, make_response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from keyservice.people import Role
from keyservice.policy import Purpose
from web.admin.forms import EnrollForm
from web.admin.roles import ENROLL, PEOPLE
from web.auth.users import keyservice, role_required, tsm, user
from web.pages import html_errors

bp = Blueprint("people", __name__, url_prefix="/admin/people")
html_errors(bp)
QR_SCALE = 4


@bp.get("/")
@role_required(*PEOPLE)
def index() -> ResponseReturnValue:
    """Every person (removed ones too), their role, state and whether their record is genuine."""
    service = keyservice()
    return render_template("admin/people.html", people=service.people.list_people(),
                           bootstrap=service.people.bootstrap_open(), form=EnrollForm(),
                           may_enroll=user().role in ENROLL)


@bp.post("/")
@role_required(*ENROLL)
def enroll() -> ResponseReturnValue:
    """Enroll a person (the key service refuses without approvals once the bootstrap is closed); the TOTP
    enrolment is rendered once, never stored or cached."""
    form = EnrollForm()
    if not form.validate_on_submit():
        flash("; ".join(f"{form[name].label.text}: {', '.join(errors)}" for name, errors in form.errors.items()),
              "error")
        return redirect(url_for("people.index"))
    enrolled = keyservice().people.enroll(tsm().request(Purpose.KEY_MANAGEMENT, "people"), form.name.data.strip(),
                                          Role(form.role.data), form.password.data, owner=form.owner.data or None)
    svg = segno.make(enrolled.provisioning_uri, error="m").svg_inline(scale=QR_SCALE, title="TOTP QR code")
    qr = Markup(svg)  # noqa: S704 - segno writes the markup from the QR matrix; the URI is not in it
    response = make_response(render_template("admin/enrolled.html", enrolled=enrolled, qr=qr))
    response.headers["Cache-Control"] = "no-store"
    return response
