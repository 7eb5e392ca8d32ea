"""The admin UI's areas (docs/operations.md, "Admin UI"): one blueprint per area, each view parsing, authorising
(`role_required`, web/admin/roles.py), calling one service function and rendering a Jinja template."""

from __future__ import annotations

from flask import Flask

from web.admin import audit, ceremonies, dashboard, jobs, keys, metering, people, secure_elements


def init_app(app: Flask) -> None:
    for area in (dashboard, keys, ceremonies, audit, people, secure_elements, jobs, metering):
        app.register_blueprint(area.bp)
