"""Who is signed in to the admin UI (docs/operations.md, "Admin UI"): Flask-Login's user, loaded on every
request from the session (which holds the person's name and role) and re-checked against the key service's
people list, so a removed person, a changed role or a forged row ends the session at the next request.
`role_required` is the server-side authorisation of every UI route; `tsm()` is the TSM context a view acts in.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, logout_user

from keyservice.errors import PersonNotFound, PersonRecordForged
from keyservice.identity import Caller, CallerKind
from keyservice.people import PersonState, Role
from keyservice.runtime import open_service
from keyservice.service import KeyService
from storage.config import Settings
from tsm_core.context import Tsm
from tsm_core.tenancy import ISSUER, Scope
from web.api.context import sessions

View = TypeVar("View", bound=Callable[..., Any])
ROLE_KEY: Final = "role"
SEEN_KEY: Final = "seen"
CALLER_KIND: Final = {Role.OFFICER: CallerKind.OFFICER, Role.VENDOR: CallerKind.VENDOR}
"""A person's kind towards the key service: officers act as officers, vendors as vendors, everyone else as a
TSM component (never as an officer)."""
TIMED_OUT: Final = "Your session timed out; please sign in again."

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to see this page."
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class User(UserMixin):  # type: ignore[misc]
    """A signed-in person: name, role and owner (the SP or SE vendor an `sp`/`vendor` person belongs to)."""

    name: str
    role: Role
    owner: str = ""

    def get_id(self) -> str:
        return self.name


def keyservice() -> KeyService:
    """The process's key service (opened once per process, as /health does)."""
    settings: Settings = current_app.config["TSM_SETTINGS"]
    return open_service(settings)


def clock() -> float:
    """The UI's clock (seconds since the epoch); tests give their own as `TSM_CLOCK`."""
    given = current_app.config.get("TSM_CLOCK")
    return float(given()) if given is not None else time.time()


def load_user(name: str) -> User | None:
    """The person named in the session, if they are still active, genuine and of the role the session holds."""
    try:
        person = keyservice().people.person(name)
    except (PersonNotFound, PersonRecordForged):
        return None
    if person.state is not PersonState.ACTIVE or not person.genuine or person.role.value != session.get(ROLE_KEY):
        return None
    return User(person.name, person.role, person.owner)


login_manager.user_loader(load_user)


def user() -> User:
    return cast(User, current_user._get_current_object())


def scope_of(who: User) -> Scope:
    """The tenancy a person acts in: an SP's or a vendor's people their owner's, everyone else the issuer's."""
    if who.role is Role.SP:
        return Scope("sp", who.owner)
    if who.role is Role.VENDOR:
        return Scope("vendor", who.owner)
    return ISSUER


def tsm() -> Tsm:
    """The TSM context of this request: the signed-in person as caller, in their tenancy."""
    who = user()
    return Tsm(sessions(), keyservice(), Caller(who.name, CALLER_KIND.get(who.role, CallerKind.SERVICE)),
               scope_of(who))


def role_required(*roles: Role) -> Callable[[View], View]:
    """The view is open to signed-in people of `roles` only: others get 403, anonymous callers the login page.
    The roles are kept on the view (`allowed_roles`) for the navigation."""
    allowed = frozenset(roles)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if user().role not in allowed:
                abort(403)
            return view(*args, **kwargs)
        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        return cast(View, wrapper)
    return decorate


def allowed_roles(endpoint: str) -> frozenset[Role]:
    """The roles a UI endpoint is open to (empty for one without `role_required`)."""
    view = current_app.view_functions.get(endpoint)
    return cast(frozenset[Role], getattr(view, "allowed_roles", frozenset()))


def check_idle() -> ResponseReturnValue | None:
    """Before every request that carries a session: sign out after `session_idle_minutes` without a request."""
    if request.blueprint in ("api_v1", "relay", "static") or request.endpoint == "static":
        return None
    if not current_user.is_authenticated:
        return None
    settings: Settings = current_app.config["TSM_SETTINGS"]
    now = clock()
    if now - float(session.get(SEEN_KEY, 0.0)) > settings.session_idle_minutes * 60:
        logout_user()
        session.clear()
        flash(TIMED_OUT, "error")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None))
    session[SEEN_KEY] = now
    return None
