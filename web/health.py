"""`GET /health`: HSM, database, audit chain and self-test status as JSON (no secrets)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from keyservice.errors import KeyServiceError
from keyservice.runtime import open_service
from storage.config import Settings

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Each component's status; 200 when all are ok, 503 otherwise."""
    settings: Settings = current_app.config["TSM_SETTINGS"]
    report: dict[str, Any] = {}
    try:
        service = open_service(settings)
    except KeyServiceError as exc:
        report["hsm"] = {"status": "error", "code": exc.code, "detail": str(exc)}
        return jsonify(status="error", **report), 503
    info = service.token_info()
    report["hsm"] = {"status": "ok", "token": info.label, "model": info.model, "test_token": info.test_token}
    if info.test_token:
        report["warning"] = "TEST TOKEN: clear test keys may be imported; not for production cards"
    try:
        service.ping_database()
        report["database"] = {"status": "ok", "backend": settings.database_url.split(":", 1)[0]}
    except SQLAlchemyError as exc:
        report["database"] = {"status": "error", "detail": type(exc).__name__}
    try:
        chain = service.audit.check_head()
        report["audit_chain"] = {"status": "ok", "records": chain.records}
    except KeyServiceError as exc:
        report["audit_chain"] = {"status": "error", "code": exc.code, "detail": str(exc)}
    report["selftest"] = service.selftest_status()
    ok = all(part.get("status") == "ok" for part in report.values() if isinstance(part, dict))
    return jsonify(status="ok" if ok else "error", **report), 200 if ok else 503
