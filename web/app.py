"""Flask application factory (Pallets pattern: no app at import time, configuration as data).

The app is an APIFlask app: the REST API v1 (web/api/) is documented by the OpenAPI 3.1 document generated from
its schemas. Every error the app answers is an RFC 9457 problem document (web/problems.py); every response
carries the security headers (web/security.py); `/metrics` counts requests (web/metrics.py). The admin UI
(web/auth/, web/admin/, docs/operations.md "Admin UI") answers HTML pages, its errors included. The phone relay's
endpoint is served under /relay over the relay store (`TSM_RELAY_STORE`: the database's, shared by every worker;
docs/relay.md).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask

from storage.config import Settings, load_settings
from storage.session import make_engine, session_factory
from tsm_core.transport.relay_store import RelayStore
from web import admin, api, health, metrics, pages, problems, relay, security
from web.api import context
from web.auth import views as auth


def create_app(test_config: dict[str, Any] | None = None) -> APIFlask:
    """Build the app for `settings` (taken from the environment unless the test config gives them) and the relay
    store (over the settings' database unless the config gives one)."""
    app = APIFlask(__name__, title="TSM API", version="1", spec_path=api.SPEC_PATH, docs_path=None)
    app.config.from_mapping(TSM_SETTINGS=None, TSM_RELAY_STORE=None, **api.CONFIG)
    if test_config:
        app.config.update(test_config)
    if app.config["TSM_SETTINGS"] is None:
        app.config["TSM_SETTINGS"] = load_settings()
    settings: Settings = app.config["TSM_SETTINGS"]
    sessions = session_factory(make_engine(settings.database_url, settings.database_busy_timeout))
    app.extensions[context.SESSIONS] = sessions  # one engine per process: the API, the UI and the relay store
    if app.config["TSM_RELAY_STORE"] is None:
        app.config["TSM_RELAY_STORE"] = RelayStore(sessions)
    app.logger.setLevel(settings.log_level)
    metrics.init_app(app)
    problems.init_app(app)
    security.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(relay.create_blueprint(app.config["TSM_RELAY_STORE"]), url_prefix=relay.URL_PREFIX)
    limiter = api.init_app(app)
    auth.init_app(app, limiter)
    pages.init_app(app)
    admin.init_app(app)
    return app
