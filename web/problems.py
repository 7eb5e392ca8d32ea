"""RFC 9457 problem documents: every error the app answers, never an HTML page or a traceback.

A typed project error keeps its stable `code` and its `status` (web/errors.py); an HTTP error (404, 405, ...)
is named after its status; anything else is a generic 500 whose details go to the server log only, naming the
route, never the path (a relay session id in a path is a bearer secret).
"""

from __future__ import annotations

from typing import Any, Final

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from web.errors import EXPECTED_ERRORS, error_code, error_message, error_status

MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:tsm-hsm:problem:"
"""`type` is this prefix + `code` (RFC 9457 §3.1.1: a URI; documented in docs/operations.md)."""


def problem(status: int, code: str, detail: str, **extensions: Any) -> Response:
    """A problem document (RFC 9457 §3.1) with the project's `code` and any extension members."""
    body = {"type": TYPE_PREFIX + code, "title": code.replace("_", " ").capitalize(), "status": status,
            "detail": detail, "code": code, **extensions}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    return response


def handle(exc: Exception) -> Response | HTTPException:
    """The app-wide error handler."""
    if isinstance(exc, HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        return problem(exc.code, exc.name.lower().replace(" ", "_"), exc.description or exc.name)
    if isinstance(exc, EXPECTED_ERRORS):
        return problem(error_status(exc), error_code(exc), error_message(exc))
    route = request.url_rule.rule if request.url_rule is not None else "?"  # not the path: it may hold a secret
    current_app.logger.error("unexpected %s on %s %s", type(exc).__name__, request.method, route, exc_info=exc)
    return problem(500, "internal_error", "an unexpected error occurred; the server log has the details")


def init_app(app: Flask) -> None:
    """Answer every error of `app` with a problem document."""
    app.register_error_handler(Exception, handle)
