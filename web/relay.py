"""The phone relay's HTTP endpoint (docs/relay.md, "HTTP binding"): a blueprint over a `RelayHub`.

- `GET  {prefix}/sessions/<id>/batch`: 200 and the batch document, or 204 when none arrives within `poll_wait`
  seconds (the request is held that long, so that a batch reaches a polling phone at once);
- `POST {prefix}/sessions/<id>/answers`: the phone's answers, `application/json`; 204.

Every error is an RFC 9457 problem (web/problems.py) with the relay's code and status (web/errors.py,
`HTTP_STATUS`). The session id in the path is the only credential, a bearer secret: no cookie or ambient
authority is involved, so a cross-site page cannot act for the phone without it; answers must be JSON (a form
cannot send that cross-site without a CORS preflight, which is never granted), and responses are never cached.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from tsm_core.transport.errors import RelayProtocolError
from tsm_core.transport.relay import RelayHub
from web import problems

URL_PREFIX: Final = "/relay"
POLL_WAIT: Final = 0.5
"""Seconds a `GET .../batch` is held when nothing is pending."""
MAX_ANSWERS_BYTES: Final = 4 * 1024 * 1024
"""Largest answers document accepted (413 beyond): far above a batch of extended R-APDUs in hex."""


def create_blueprint(hub: RelayHub, *, poll_wait: float = POLL_WAIT) -> Blueprint:
    """The endpoint over `hub`; the web process and the jobs that relay through it must share the hub."""
    bp = Blueprint("relay", __name__)

    @bp.get("/sessions/<session_id>/batch")
    def batch(session_id: str) -> ResponseReturnValue:
        """The next batch for the phone (200), or nothing yet (204: poll again)."""
        document = hub.poll(session_id, wait=poll_wait)
        return ("", 204) if document is None else jsonify(document)

    @bp.post("/sessions/<session_id>/answers")
    def answers(session_id: str) -> ResponseReturnValue:
        """The phone's answers to the batch in flight (204)."""
        request.max_content_length = MAX_ANSWERS_BYTES
        if not request.is_json:
            raise RelayProtocolError("answers are sent as application/json")
        hub.answer(session_id, request.get_json(silent=True))  # not JSON: None, a relay_protocol error
        return "", 204

    @bp.after_request
    def no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp


def relay_app(hub: RelayHub, *, poll_wait: float = POLL_WAIT) -> Flask:
    """An app serving only the endpoint under URL_PREFIX (the CLI's `--relay`; no key service, no database)."""
    app = Flask(__name__)
    problems.init_app(app)
    app.register_blueprint(create_blueprint(hub, poll_wait=poll_wait), url_prefix=URL_PREFIX)
    return app
