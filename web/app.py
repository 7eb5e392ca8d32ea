"""Flask application factory (Pallets pattern: no app at import time, configuration as data).

Every error the app answers is an RFC 9457 problem document (web/problems.py). The phone relay's endpoint is
served under /relay over one hub for the whole app (`TSM_RELAY_HUB`): one process; several gunicorn workers
would each have their own (docs/relay.md).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from storage.config import Settings, load_settings
from tsm_core.transport.relay import RelayHub
from web import health, problems, relay


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app for `settings` (taken from the environment unless the test config gives them) and the relay
    hub (a new one unless the config gives it)."""
    app = Flask(__name__)
    app.config.from_mapping(TSM_SETTINGS=None, TSM_RELAY_HUB=None)
    if test_config:
        app.config.update(test_config)
    if app.config["TSM_SETTINGS"] is None:
        app.config["TSM_SETTINGS"] = load_settings()
    if app.config["TSM_RELAY_HUB"] is None:
        app.config["TSM_RELAY_HUB"] = RelayHub()
    settings: Settings = app.config["TSM_SETTINGS"]
    app.logger.setLevel(settings.log_level)
    problems.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(relay.create_blueprint(app.config["TSM_RELAY_HUB"]), url_prefix=relay.URL_PREFIX)
    return app
