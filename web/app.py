"""Flask application factory (Pallets pattern: no app at import time, configuration as data).

Every error the app answers is an RFC 9457 problem document (web/problems.py).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from storage.config import Settings, load_settings
from web import health, problems


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app for `settings` (taken from the environment unless the test config gives them)."""
    app = Flask(__name__)
    app.config.from_mapping(TSM_SETTINGS=None)
    if test_config:
        app.config.update(test_config)
    if app.config["TSM_SETTINGS"] is None:
        app.config["TSM_SETTINGS"] = load_settings()
    settings: Settings = app.config["TSM_SETTINGS"]
    app.logger.setLevel(settings.log_level)
    problems.init_app(app)
    app.register_blueprint(health.bp)
    return app
