"""`GET /health`: HSM, database, audit chain and self-test status (no secrets).

200 with a JSON report when every component is ok; otherwise 503 with an RFC 9457 problem document that
carries the same report as extension members, `code` being the first broken component's error code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from keyservice.runtime import open_service
from keyservice.service import KeyService
from storage.config import Settings
from web.errors import EXPECTED_ERRORS, error_code, error_message
from web.problems import problem

bp = Blueprint("health", __name__)


def _failed(exc: Exception) -> dict[str, Any]:
    return {"status": "error", "code": error_code(exc), "detail": error_message(exc)}


def _check(probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One component's status: what `probe` reports, or the typed error that stopped it."""
    try:
        return {"status": "ok", **probe()}
    except EXPECTED_ERRORS as exc:
        return _failed(exc)


def _hsm(service: KeyService, report: dict[str, Any]) -> dict[str, Any]:
    info = service.token_info()
    if info.test_token:
        report["warning"] = "TEST TOKEN: clear test keys may be imported; not for production cards"
    return {"token": info.label, "model": info.model, "test_token": info.test_token}


def _database(service: KeyService, settings: Settings) -> dict[str, Any]:
    service.ping_database()
    return {"backend": settings.database_url.split(":", 1)[0]}


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Each component's status; 200 when all are ok, a 503 problem otherwise."""
    settings: Settings = current_app.config["TSM_SETTINGS"]
    report: dict[str, Any] = {}
    try:
        service = open_service(settings)
    except EXPECTED_ERRORS as exc:
        report["hsm"] = _failed(exc)
    else:
        report["hsm"] = _check(lambda: _hsm(service, report))
        report["database"] = _check(lambda: _database(service, settings))
        report["audit_chain"] = _check(service.audit.status)
        report["key_records"] = _check(service.keys.integrity)
        report["selftest"] = service.selftest_status()
    broken = {name: part for name, part in report.items() if isinstance(part, dict) and part.get("status") != "ok"}
    if not broken:
        return jsonify(status="ok", **report), 200
    first = next(iter(broken.values()))
    detail = "; ".join(f"{name}: {part.get('detail', part.get('status'))}" for name, part in broken.items())
    return problem(503, str(first.get("code", "unhealthy")), detail, **report)
