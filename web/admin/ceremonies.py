"""Ceremonies (docs/ceremonies.md, "In the browser"): the list (those waiting for the signed-in person
highlighted), the shipped types with their parameters, start, a ceremony's steps, approvals, exceptions and
transcript, join, sign the next step, approve, abort, and the evidence (JSON and printable HTML).

Every action re-authenticates: its form asks again for the signed-in person's password and current TOTP code and
the ceremony service checks them (each code accepted once); the name acted under is always the signed-in
person's. What a step shows once (a custodian's generated component and its KCV) is rendered once, to the person
who signed the step, on a `no-store` page, and nowhere else.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Response, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ceremonies.definitions import definition
from ceremonies.service import CeremonyService
from ceremonies.views import CeremonyView
from keyservice.errors import AccountLocked, AuthenticationFailed, TotpReplayed
from keyservice.identity import Caller, CallerKind
from keyservice.people import Credentials, Role
from tsm_core.jobs.service import rollout
from web.admin.forms import AbortForm, JoinForm, ReauthForm, SignForm
from web.admin.roles import CEREMONIES, CEREMONY_ACT, CEREMONY_OFFICER, EVIDENCE
from web.api.context import sessions
from web.auth.users import CALLER_KIND, User, keyservice, role_required, tsm, user
from web.auth.views import LOCKED, REPLAYED
from web.errors import EXPECTED_ERRORS, error_message
from web.pages import html_errors

bp = Blueprint("ceremonies", __name__, url_prefix="/admin/ceremonies")
html_errors(bp)
PARAM_PREFIX: Final = "param-"
STEP_INPUTS: Final = {"enter-component": ("component", "kcv"), "confirm-kcv": ("kcv",),
                      "deliver-block": ("block", "kcv"), "enroll": ("new_password",)}
"""The inputs the signer of a step types, by the step's action (form field names)."""
INPUT_NAMES: Final = {"new_password": "password"}
"""Form field -> the input name the ceremony runtime reads (ceremonies/actions.py)."""


def caller_of(name: str, role: str) -> Caller:
    """The key-service caller of an authenticated person (officers as officers, vendors as vendors)."""
    return Caller(name, CALLER_KIND.get(Role(role), CallerKind.SERVICE))


def service() -> CeremonyService:
    """The ceremony service of this request; key rotations plan their rollout in the signed-in person's TSM."""
    return CeremonyService(keyservice(), sessions(), caller_of, planner=lambda kvn: rollout(tsm(), kvn))


def waiting_for(view: CeremonyView, who: User) -> bool:
    """Whether `view` waits for `who`: their turn to sign the next step, or (an officer other than the requester)
    to approve it."""
    if view.state != "open" or view.next_step is None:
        return False
    step = view.steps[view.next_step - 1]
    joined = view.participants.get(who.name)
    if step.approval and who.role is Role.OFFICER and who.name != view.requester:
        return joined in (None, "officer") and all(a.approver != who.name for a in view.approvals)
    if step.role != who.role.value or joined not in (None, step.role):
        return False
    if step.approval:
        return who.name == view.requester
    return not (step.action == "confirm-kcv" and who.name == view.requester)


def pending_for(who: User) -> list[CeremonyView]:
    """The open ceremonies waiting for `who` (this page and the dashboard)."""
    return [v for v in service().list() if waiting_for(v, who)]


def _creds(form: ReauthForm) -> Credentials:
    return Credentials(form.password.data, form.code.data.strip())


def _refused(exc: Exception) -> str:
    if isinstance(exc, AccountLocked):
        return LOCKED
    if isinstance(exc, TotpReplayed):
        return REPLAYED
    if isinstance(exc, AuthenticationFailed):
        return "Password or code is wrong: the action was not taken."
    return error_message(exc)


def _invalid(form: ReauthForm) -> None:
    flash("; ".join(f"{form[name].label.text}: {', '.join(errors)}" for name, errors in form.errors.items())
          or "The form expired; please try again.", "error")


def _back(cid: str) -> ResponseReturnValue:
    return redirect(url_for("ceremonies.show", cid=cid))


@bp.get("/")
@role_required(*CEREMONIES)
def index() -> ResponseReturnValue:
    """Every ceremony (those waiting for me first and marked), and the shipped types."""
    who = user()
    found = service().list()
    mine = {v.id for v in found if waiting_for(v, who)}
    ordered = sorted(found, key=lambda v: (v.id not in mine, v.state != "open", -v.created_at.timestamp()))
    return render_template("admin/ceremonies.html", ceremonies=ordered, mine=mine, types=CeremonyService.types(),
                           may_start=who.role in CEREMONY_OFFICER)


@bp.get("/start/<kind>")
@role_required(*CEREMONY_OFFICER)
def start_form(kind: str) -> ResponseReturnValue:
    """The start form of a type: its parameters (help, choices, defaults) and the re-authentication."""
    return render_template("admin/ceremony_start.html", kind=definition(kind), form=ReauthForm(),
                           prefix=PARAM_PREFIX)


@bp.post("/start/<kind>")
@role_required(*CEREMONY_OFFICER)
def start(kind: str) -> ResponseReturnValue:
    """Start a ceremony of `kind` as its requester."""
    found = definition(kind)
    form = ReauthForm()
    if not form.validate_on_submit():
        _invalid(form)
        return redirect(url_for("ceremonies.start_form", kind=kind))
    params = {p.name: request.form.get(PARAM_PREFIX + p.name, "").strip() for p in found.params}
    try:
        view = service().start(kind, {k: v for k, v in params.items() if v}, user().name, _creds(form))
    except EXPECTED_ERRORS as exc:
        flash(_refused(exc), "error")
        return redirect(url_for("ceremonies.start_form", kind=kind))
    flash(f"Ceremony {view.id} started; you are its requester.", "ok")
    return _back(view.id)


@bp.get("/<cid>")
@role_required(*CEREMONIES)
def show(cid: str) -> ResponseReturnValue:
    """A ceremony: steps (who signed, what they output), the next step, approvals, exceptions, transcript."""
    view = service().show(cid)
    who = user()
    step = view.steps[view.next_step - 1] if view.next_step else None
    privileged = next((s for s in view.steps if s.approval and s.signed_by is None), None)
    join_form = JoinForm(role=who.role.value)
    join_form.role.choices = list(definition(view.type).roles)
    return render_template(
        "admin/ceremony.html", c=view, step=step, waiting=waiting_for(view, who),
        approvable=privileged if view.state == "open" and who.name != view.requester else None,
        inputs=STEP_INPUTS.get(step.action, ()) if step else (), join=join_form,
        sign=SignForm(), approve_form=ReauthForm(), abort=AbortForm(), joined=view.participants.get(who.name),
        may_act=who.role in CEREMONY_ACT, may_officer=who.role in CEREMONY_OFFICER, may_evidence=who.role in EVIDENCE,
        exceptions=[e for e in view.events if e.kind == "exception"])


@bp.post("/<cid>/join")
@role_required(*CEREMONY_ACT)
def join(cid: str) -> ResponseReturnValue:
    form = JoinForm()
    if not form.validate_on_submit():
        _invalid(form)
        return _back(cid)
    try:
        service().join(cid, form.role.data, user().name, _creds(form))
    except EXPECTED_ERRORS as exc:
        flash(_refused(exc), "error")
    else:
        flash(f"You joined {cid} as {form.role.data}.", "ok")
    return _back(cid)


@bp.post("/<cid>/sign/<int:step>")
@role_required(*CEREMONY_ACT)
def sign(cid: str, step: int) -> ResponseReturnValue:
    """Sign step `step`; what it shows once is answered once, to the signer, never cached."""
    form = SignForm()
    if not form.validate_on_submit():
        _invalid(form)
        return _back(cid)
    given = {INPUT_NAMES.get(name, name): (form[name].data or "").strip() for name in
             ("component", "kcv", "block", "new_password") if form[name].data}
    try:
        result = service().sign(cid, step, user().name, _creds(form), given)
    except EXPECTED_ERRORS as exc:
        flash(_refused(exc), "error")
        return _back(cid)
    if not result.shown:
        flash(f"Step {step} signed.", "ok")
        return _back(cid)
    response: Response = make_response(render_template("admin/ceremony_shown.html", c=result.ceremony, step=step,
                                                       shown=result.shown))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<cid>/approve")
@role_required(*CEREMONY_OFFICER)
def approve(cid: str) -> ResponseReturnValue:
    """Approve the next privileged step (the key service re-authenticates the approver and MACs the approval)."""
    form = ReauthForm()
    if not form.validate_on_submit():
        _invalid(form)
        return _back(cid)
    try:
        view = service().approve(cid, user().name, _creds(form))
    except EXPECTED_ERRORS as exc:
        flash(_refused(exc), "error")
    else:
        flash(f"Approved step {view.approvals[-1].step} of {cid}.", "ok")
    return _back(cid)


@bp.post("/<cid>/abort")
@role_required(*CEREMONY_OFFICER)
def abort(cid: str) -> ResponseReturnValue:
    form = AbortForm()
    if not form.validate_on_submit():
        _invalid(form)
        return _back(cid)
    try:
        service().abort(cid, form.reason.data.strip(), user().name, _creds(form))
    except EXPECTED_ERRORS as exc:
        flash(_refused(exc), "error")
    else:
        flash(f"Ceremony {cid} aborted.", "ok")
    return _back(cid)


@bp.get("/<cid>/evidence.<fmt>")
@role_required(*EVIDENCE)
def evidence(cid: str, fmt: str) -> ResponseReturnValue:
    """The transcript as JSON or printable HTML (its SHA-256 anchored in the audit chain by this export)."""
    if fmt not in ("json", "html"):
        return render_template("admin/error.html", status=404, title="Not Found",
                               detail="Evidence is JSON or HTML."), 404
    document, page = service().export(cid, tsm().caller)
    body, mimetype = (document, "application/json") if fmt == "json" else (page, "text/html")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{cid}-evidence.{fmt}"'
    return response
