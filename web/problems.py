"""RFC 9457 problem documents: every error the app answers, never an HTML page or a traceback.

A typed project error keeps its stable `code` and its `status` (web/errors.py), and gets a `category` and
`retryable` (web/categories.py); an HTTP error (404, 405, ...) is named after its status; a request the API
cannot validate is `validation_failed` (422) with the fields at fault in `errors`; anything else is a generic
500 whose details go to the server log only, naming the route, never the path (a relay session id in a path is
a bearer secret).
"""

from __future__ import annotations

from typing import Any, Final

from apiflask.exceptions import HTTPError
from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from web import categories
from web.categories import Category
from web.errors import EXPECTED_ERRORS, error_code, error_message, error_status

MEDIA_TYPE: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:tsm-hsm:problem:"
"""`type` is this prefix + `code` (RFC 9457 §3.1.1: a URI; documented in docs/operations.md)."""
VALIDATION_FAILED: Final = "validation_failed"


def problem(status: int, code: str, detail: str, *, category: Category | None = None, retryable: bool | None = None,
            headers: dict[str, str] | None = None, **extensions: Any) -> Response:
    """A problem document (RFC 9457 §3.1) with the project's `code`, `category`, `retryable` and any extension
    members (category and retryable default from the status)."""
    default_category, default_retry = categories.of_status(status, code)
    body = {"type": TYPE_PREFIX + code, "title": code.replace("_", " ").capitalize(), "status": status,
            "detail": detail, "code": code, "category": str(category or default_category),
            "retryable": default_retry if retryable is None else retryable, **extensions}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = MEDIA_TYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle(exc: Exception) -> Response | HTTPException:
    """The app-wide error handler."""
    if isinstance(exc, HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
        return problem(exc.code, exc.name.lower().replace(" ", "_"), exc.description or exc.name, headers=headers)
    if isinstance(exc, EXPECTED_ERRORS):
        status, code = error_status(exc), error_code(exc)
        category, retryable = categories.of_error(exc, status, code)
        return problem(status, code, error_message(exc), category=category, retryable=retryable)
    route = request.url_rule.rule if request.url_rule is not None else "?"  # not the path: it may hold a secret
    current_app.logger.error("unexpected %s on %s %s", type(exc).__name__, request.method, route, exc_info=exc)
    return problem(500, "internal_error", "an unexpected error occurred; the server log has the details")


def handle_api_error(error: HTTPError) -> Response:
    """APIFlask's errors: a request that fails its schema (422, the fields at fault in `errors`), or an HTTP
    error APIFlask raised itself."""
    if error.status_code == 422:
        return problem(422, VALIDATION_FAILED, "the request does not match its schema", errors=error.detail)
    code = (error.message or "error").lower().replace(" ", "_")
    headers = {str(k): str(v) for k, v in dict(error.headers or {}).items()}
    return problem(error.status_code, code, error.message or code, headers=headers)


def init_app(app: Flask) -> None:
    """Answer every error of `app` with a problem document."""
    error_processor = getattr(app, "error_processor", None)
    if error_processor is not None:  # an APIFlask app: its own HTTPError (validation) too
        error_processor(handle_api_error)
    app.register_error_handler(HTTPException, handle)
    app.register_error_handler(Exception, handle)
