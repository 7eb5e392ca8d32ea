"""Keys: the inventory (state, KCV and its method, usage, owner, provenance) and the strategy the HSM profile
names for each cryptographic step. Nothing secret exists to render: the key service hands out views only."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from web.admin.roles import KEYS
from web.auth.users import keyservice, role_required
from web.pages import html_errors

bp = Blueprint("keys", __name__, url_prefix="/admin/keys")
html_errors(bp)


@bp.get("/")
@role_required(*KEYS)
def index() -> ResponseReturnValue:
    """The key inventory (destroyed keys on request) and the profile's strategy table."""
    service = keyservice()
    destroyed = request.args.get("destroyed") == "1"
    return render_template("admin/keys.html", keys=service.keys.list_keys(include_destroyed=destroyed),
                           strategies=service.strategies(), profile=service.profile, destroyed=destroyed)
