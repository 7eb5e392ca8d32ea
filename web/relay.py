"""The phone relay's HTTP endpoint (docs/relay.md, "HTTP binding"): a blueprint over a `RelayStore`.

- `POST {prefix}/sessions/<id>/exchange`: the phone's request (`application/json`, tsm_core/transport/
  relay_wire.py); 200 and the TSM's answer: the cached one for a repeated `seq`, else the next batch, held up to
  `long_poll` seconds for one to be queued, else WAIT.

Every error is an RFC 9457 problem (web/problems.py) with the relay's code and status (web/errors.py,
`HTTP_STATUS`). The session id in the path is a bearer secret; a session a device opened over the API
(`POST /api/v1/relay-sessions`) also needs that device's API key (`Authorization: Bearer`): none or an invalid
one is 401 `unauthenticated`, another owner's key 404 `relay_session_not_found` (as for an unknown session). No
cookie or ambient authority is involved, so a cross-site page cannot act for the phone without them; requests
must be JSON (a form cannot send that cross-site without a CORS preflight, which is never granted), and
responses are never cached. Any worker answers any request: the state is the database's.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

from tsm_core.apikeys import service as apikeys
from tsm_core.transport.errors import RelayProtocolError, RelaySessionNotFound
from tsm_core.transport.relay_store import RelayStore
from tsm_core.transport.relay_wire import parse_request
from web import problems

URL_PREFIX: Final = "/relay"
LONG_POLL: Final = 2.0
"""Seconds a request is held when no batch is queued (a sync gunicorn worker is held as long)."""
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
"""Largest request accepted (413 beyond): far above a batch of extended R-APDUs in hex."""


def check_device(store: RelayStore, session_id: str) -> None:
    """A session opened for a device answers only that device's API key (docs/relay.md, "Device sessions")."""
    device = store.binding(session_id).device_id
    if not device:
        return
    given = request.authorization  # `Authorization: Bearer KEY` (RFC 6750 §2.1)
    key = apikeys.authenticate(store.sessions, given.token or "" if given is not None and given.type == "bearer"
                               else "")
    if key.owner != device:
        raise RelaySessionNotFound("no such relay session")


def create_blueprint(store: RelayStore, *, long_poll: float = LONG_POLL) -> Blueprint:
    """The endpoint over `store`."""
    bp = Blueprint("relay", __name__)

    @bp.post("/sessions/<session_id>/exchange")
    def exchange(session_id: str) -> ResponseReturnValue:
        """The phone's report and the TSM's next directive (200)."""
        request.max_content_length = MAX_REQUEST_BYTES
        if not request.is_json:
            raise RelayProtocolError("requests are sent as application/json")
        check_device(store, session_id)
        phone_request = parse_request(request.get_json(silent=True))  # not JSON: None, a relay_protocol error
        return jsonify(store.exchange(session_id, phone_request, long_poll))

    @bp.after_request
    def no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        return response

    return bp


def relay_app(store: RelayStore, *, long_poll: float = LONG_POLL) -> Flask:
    """An app serving only the endpoint under URL_PREFIX (the CLI's `--relay`; no key service)."""
    app = Flask(__name__)
    problems.init_app(app)
    app.register_blueprint(create_blueprint(store, long_poll=long_poll), url_prefix=URL_PREFIX)
    return app
