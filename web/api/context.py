"""Who calls the API and the TSM context each request acts in (docs/api.md, "Authentication").

`authenticate` runs before every API view (and before the rate limiter, which counts per key): the bearer key
becomes `g.api_key`, its owner the request's tenancy (`Scope`) and its id the caller the key service records.
`requires(scope)` refuses a view to a key without that scope; the service layer then applies the tenancy
(403 for an operation outside the owner's trade, 404 for another tenant's resource).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from flask import Flask, current_app, g, request
from sqlalchemy.orm import Session, sessionmaker

from keyservice.identity import Caller, CallerKind
from keyservice.runtime import open_service
from storage.config import Settings
from tsm_core.apikeys import service as apikeys
from tsm_core.apikeys.service import ApiKeyView, ScopeMissing
from tsm_core.context import Tsm

BLUEPRINT: Final = "api_v1"
SESSIONS: Final = "tsm_sessions"
CALLER_KIND: Final = {"sp": CallerKind.SERVICE, "vendor": CallerKind.VENDOR, "device": CallerKind.SERVICE,
                      "component": CallerKind.SERVICE}
View = TypeVar("View", bound=Callable[..., Any])


def sessions() -> sessionmaker[Session]:
    """This app's database sessions (one engine per process, made by the app factory)."""
    return cast(sessionmaker[Session], current_app.extensions[SESSIONS])


def bearer() -> str:
    """The credential of `Authorization: Bearer KEY` (RFC 6750 §2.1), or ""."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authenticate() -> None:
    """The API key of an API request as `g.api_key`; Unauthenticated (401) without a live one."""
    if request.blueprint != BLUEPRINT:
        return
    g.api_key = apikeys.authenticate(sessions(), bearer())


def api_key() -> ApiKeyView:
    return cast(ApiKeyView, g.api_key)


def tsm() -> Tsm:
    """The TSM context of this request: the key's owner as tenancy, the key as caller."""
    key = api_key()
    settings: Settings = current_app.config["TSM_SETTINGS"]
    return Tsm(sessions(), open_service(settings), Caller(f"apikey:{key.id}", CALLER_KIND[key.scope.kind]),
               key.scope)


def requires(scope: str) -> Callable[[View], View]:
    """The view needs an API key carrying `scope` (403 `scope_missing` otherwise)."""
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not api_key().allows(scope):
                raise ScopeMissing(f"this API key lacks the scope {scope}")
            return view(*args, **kwargs)
        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return cast(View, wrapper)
    return decorate


def init_app(app: Flask) -> None:
    """Authenticate API requests first (before the rate limiter is registered)."""
    app.before_request(authenticate)
