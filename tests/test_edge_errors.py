"""The web edge: every error is an RFC 9457 problem document, never an HTML page or a traceback.

Real token, real database (SQLite and PostgreSQL), the Flask test client.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from keyservice.errors import KeyNotFound
from keyservice.service import KeyService
from storage.config import Settings
from tests.conftest import core_of, make_service
from web.app import create_app

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}


@pytest.fixture
def served(settings_factory, db_url) -> tuple[Settings, KeyService]:  # type: ignore[no-untyped-def]
    settings, test_token = settings_factory(db_url)
    return settings, make_service(settings, test_token)


@pytest.fixture
def app(served) -> Flask:  # type: ignore[no-untyped-def]
    application = create_app({"TSM_SETTINGS": served[0]})

    @application.get("/boom")
    def boom() -> str:
        raise RuntimeError("internal detail /srv/secret/path")

    @application.get("/missing-key")
    def missing_key() -> str:
        raise KeyNotFound("no key labelled 'kmc' in the inventory")

    return application


@pytest.fixture
def client(app) -> FlaskClient:  # type: ignore[no-untyped-def]
    return app.test_client()


def problem(response, status: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    assert body["type"].endswith(body["code"])
    text_ = response.get_data(as_text=True)
    assert "Traceback" not in text_ and "<html" not in text_.lower()
    return body  # type: ignore[no-any-return]


def test_health_ok_is_plain_json(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json()["audit_chain"]["status"] == "ok"


def test_health_with_the_audit_table_dropped_is_a_503_problem(client, served):
    _, service = served
    with core_of(service).sessions() as db:
        cascade = " CASCADE" if db.get_bind().dialect.name == "postgresql" else ""
        db.execute(text(f"DROP TABLE ks_audit{cascade}"))
        db.commit()
    body = problem(client.get("/health"), 503)
    assert body["audit_chain"]["status"] == "error" and body["hsm"]["status"] == "ok"
    assert "audit_chain" in body["detail"]
    assert "SELECT" not in str(body) and "sqlalche.me" not in str(body)


def test_health_with_an_unreadable_pin_file_is_a_503_problem(client, served):
    settings, _ = served
    from keyservice.runtime import close_all

    close_all()
    settings.pin_file.write_text("[]")
    body = problem(client.get("/health"), 503)
    assert body["hsm"]["status"] == "error" and body["code"] == "configuration_error"


def test_unexpected_error_is_a_generic_500_problem(client):
    body = problem(client.get("/boom"), 500)
    assert body["code"] == "internal_error"
    assert "secret" not in str(body) and "RuntimeError" not in str(body)


def test_typed_error_keeps_its_code_and_status(client):
    body = problem(client.get("/missing-key"), 404)
    assert body["code"] == "key_not_found" and "kmc" in body["detail"]


def test_unknown_route_is_a_problem(client):
    assert problem(client.get("/nope"), 404)["code"] == "not_found"


def test_health_answers_503_while_the_audit_chain_is_sealed(client, served):
    """A database rolled back behind the HSM anchor seals the key service: /health says so until reconciled."""
    from sqlalchemy import delete, select, update

    from globalplatform.keys import KeyAlgorithm
    from keyservice.identity import Caller, CallerKind
    from keyservice.inventory import KeyUsage
    from keyservice.models import AuditHead, AuditRecord
    from keyservice.policy import Purpose, Request
    from keyservice.views import NewKey

    _, service = served
    officer = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
    before = service.audit.records(1)[0].seq
    service.keys.generate(officer, NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer"))
    with core_of(service).sessions() as db, db.begin():
        db.execute(delete(AuditRecord).where(AuditRecord.seq > before))
        kept = db.execute(select(AuditRecord).where(AuditRecord.seq == before)).scalar_one()
        db.execute(update(AuditHead).values(seq=before, record_hash=kept.record_hash))
    body = problem(client.get("/health"), 503)
    assert body["code"] == "audit_sealed" and body["audit_chain"]["status"] == "sealed"
    service.keys.reconcile(officer, apply=True)
    assert client.get("/health").status_code == 200
