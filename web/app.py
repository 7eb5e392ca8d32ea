"""Flask application factory (Pallets pattern: no app at import time, configuration as data).

The app is an APIFlask app: the REST API v1 (web/api/) is documented by the OpenAPI 3.1 document generated from
its schemas. Every error the app answers is an RFC 9457 problem document (web/problems.py); every response
carries the security headers (web/security.py); `/metrics` counts requests (web/metrics.py). The phone relay's
endpoint is served under /relay over one hub for the whole app (`TSM_RELAY_HUB`): one process; several gunicorn
workers would each have their own (docs/relay.md).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask

from storage.config import Settings, load_settings
from tsm_core.transport.relay import RelayHub
from web import api, health, metrics, problems, relay, security


def create_app(test_config: dict[str, Any] | None = None) -> APIFlask:
    """Build the app for `settings` (taken from the environment unless the test config gives them) and the relay
    hub (a new one unless the config gives it)."""
    app = APIFlask(__name__, title="TSM API", version="1", spec_path=api.SPEC_PATH, docs_path=None)
    app.config.from_mapping(TSM_SETTINGS=None, TSM_RELAY_HUB=None, **api.CONFIG)
    if test_config:
        app.config.update(test_config)
    if app.config["TSM_SETTINGS"] is None:
        app.config["TSM_SETTINGS"] = load_settings()
    if app.config["TSM_RELAY_HUB"] is None:
        app.config["TSM_RELAY_HUB"] = RelayHub()
    settings: Settings = app.config["TSM_SETTINGS"]
    app.logger.setLevel(settings.log_level)
    metrics.init_app(app)
    problems.init_app(app)
    security.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(relay.create_blueprint(app.config["TSM_RELAY_HUB"]), url_prefix=relay.URL_PREFIX)
    api.init_app(app)
    return app
