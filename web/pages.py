"""What every admin UI page shares (docs/operations.md, "Admin UI"): the navigation, which lists only the pages
the signed-in person's role may open (each page's roles come from its `role_required`), and the HTML error
pages (403, 404, a typed error) that the UI's blueprints answer instead of the API's problem documents."""

from __future__ import annotations

from typing import Any, Final

from flask import Blueprint, Flask, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from web.auth.users import allowed_roles, user
from web.errors import EXPECTED_ERRORS, error_code, error_message, error_status

NAV: Final = (
    ("dashboard.index", "Dashboard"),
    ("keys.index", "Keys"),
    ("ceremonies.index", "Ceremonies"),
    ("secure_elements.index", "Secure elements"),
    ("jobs.index", "Jobs"),
    ("metering.index", "Metering"),
    ("audit.index", "Audit log"),
    ("people.index", "Users and roles"),
)
"""The navigation, in order: (endpoint, label); an endpoint not registered is left out."""


def nav_links() -> list[tuple[str, str]]:
    """The navigation entries the signed-in person may open (none for an anonymous visitor)."""
    if not current_user.is_authenticated:
        return []
    role = user().role
    return [(endpoint, label) for endpoint, label in NAV if role in allowed_roles(endpoint)]


def may(endpoint: str) -> bool:
    """Whether the signed-in person may open `endpoint` (for links inside pages)."""
    return current_user.is_authenticated and user().role in allowed_roles(endpoint)


def home_endpoint() -> str:
    """Where a signed-in person lands: the first page of their navigation (the sign-in page if none)."""
    links = nav_links()
    return links[0][0] if links else "auth.login"


def _error_page(status: int, title: str, detail: str) -> ResponseReturnValue:
    return render_template("admin/error.html", status=status, title=title, detail=detail), status


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.code is None or exc.code < 400:
        return exc
    if exc.code == 403:
        return _error_page(403, "Forbidden", "Your role may not open this page.")
    return _error_page(exc.code, exc.name, exc.description or exc.name)


def _typed_error(exc: Exception) -> ResponseReturnValue:
    status = error_status(exc)
    return _error_page(status, error_code(exc).replace("_", " ").capitalize(), error_message(exc))


def html_errors(bp: Blueprint) -> None:
    """Answer the errors of `bp`'s views with HTML pages (a typed error shows its one-line message)."""
    bp.register_error_handler(HTTPException, _http_error)
    for error in EXPECTED_ERRORS:
        bp.register_error_handler(error, _typed_error)


def init_app(app: Flask) -> None:
    """The navigation for every template."""
    @app.context_processor
    def navigation() -> dict[str, Any]:
        return {"nav_links": nav_links, "may": may}
