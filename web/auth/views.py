"""Sign-in and sign-out of the admin UI (docs/operations.md, "Admin UI").

`/login` takes name, password and the current TOTP code and asks the key service
(`KeyService.people.authenticate`: argon2id, RFC 6238, replay refusal, lock-out, audited); `/logout` is a POST
with a CSRF token. The session (a signed cookie: HttpOnly, SameSite=Lax, Secure unless `secure_cookies` is off)
holds the person's name, role and the time of the last request; it ends after `session_idle_minutes` idle.
POSTs to /login (and /logout) are rate-limited per client address (`login_rate_limit`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from apiflask import APIFlask
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from keyservice.errors import AccountLocked, AuthenticationFailed, PersonRecordForged, TotpReplayed
from keyservice.people import Credentials
from storage.config import Settings
from web.auth import secret
from web.auth.forms import LoginForm, PostForm
from web.auth.users import ROLE_KEY, SEEN_KEY, User, check_idle, clock, keyservice, login_manager
from web.pages import home_endpoint, html_errors

bp = Blueprint("auth", __name__)
html_errors(bp)
csrf = CSRFProtect()

WRONG: Final = "Name, password or code is wrong."
LOCKED: Final = "Account locked, try again later."
REPLAYED: Final = "This code was already used; wait for the next code and try again."
FORGED: Final = "This account's record does not verify; an officer must re-enroll you."
SIGNED_OUT: Final = "You are signed out."


def _safe_next(target: str | None) -> str | None:
    """A local path to go back to after sign-in (never another site: no scheme, no `//`, no backslash)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.get("/")
def home() -> ResponseReturnValue:
    """The first page of the navigation open to the signed-in person, or the sign-in page."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for(home_endpoint()))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form; on success a fresh session for the person (the old one is cleared)."""
    form = LoginForm()
    error, status = "", 200
    if form.validate_on_submit():
        name = form.name.data.strip()
        try:
            who = keyservice().people.authenticate(name, Credentials(form.password.data, form.code.data.strip()))
        except AccountLocked:
            error, status = LOCKED, 423
        except TotpReplayed:
            error, status = REPLAYED, 401
        except PersonRecordForged:
            error, status = FORGED, 401
        except AuthenticationFailed:
            error, status = WRONG, 401
        else:
            target = _safe_next(request.args.get("next"))
            session.clear()
            login_user(User(who.name, who.role, who.owner))
            session[ROLE_KEY] = who.role.value
            session[SEEN_KEY] = clock()
            session.permanent = True
            return redirect(target or url_for(home_endpoint()))
    elif request.method == "POST":
        error, status = "Enter your name, password and the six-digit code.", 400
    return render_template("admin/login.html", form=form, error=error), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out (POST with the CSRF token, so no other site can sign anyone out)."""
    PostForm()  # CSRFProtect has checked the token before the view runs
    logout_user()
    session.clear()
    flash(SIGNED_OUT, "info")
    return redirect(url_for("auth.login"))


def init_app(app: APIFlask, limiter: Limiter) -> None:
    """Sessions, Flask-Login, CSRF on every form (not on the bearer-authenticated API and relay), the idle
    time-out and the rate limit on POST /login."""
    settings: Settings = app.config["TSM_SETTINGS"]
    app.config.setdefault("SECRET_KEY", None)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secret.session_key(settings)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings.secure_cookies, REMEMBER_COOKIE_HTTPONLY=True,
                      REMEMBER_COOKIE_SECURE=settings.secure_cookies,
                      PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_minutes),
                      WTF_CSRF_TIME_LIMIT=settings.session_idle_minutes * 60)
    login_manager.init_app(app)
    csrf.init_app(app)
    for name in ("api_v1", "relay"):
        csrf.exempt(app.blueprints[name])
    app.before_request(check_idle)
    limiter.limit(settings.login_rate_limit, methods=["POST"])(bp)
    app.register_blueprint(bp)
