"""A test-only HTTP endpoint for the relay (the web app will provide the real one): http.server on
127.0.0.1 in a thread, translating GET .../batch and POST .../answers into `RelayHub` calls."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tsm_core.transport.errors import RelayError
from tsm_core.transport.relay import RelayHub
from web.errors import error_status

POLL_WAIT = 0.2


def _handler(hub: RelayHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def _reply(self, status: int, body: dict | None = None) -> None:
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, suffix: str) -> str | None:
            parts = self.path.strip("/").split("/")
            if len(parts) == 4 and parts[:2] == ["relay", "sessions"] and parts[3] == suffix:
                return parts[2]
            self._reply(404, {"code": "not_found", "detail": self.path})
            return None

        def _problem(self, exc: RelayError) -> None:
            status = error_status(exc)
            self._reply(
                status, {"type": f"about:blank#{exc.code}", "status": status, "code": exc.code, "detail": str(exc)}
            )

        def do_GET(self):
            session_id = self._route("batch")
            if session_id is None:
                return
            try:
                document = hub.poll(session_id, wait=POLL_WAIT)
            except RelayError as exc:
                self._problem(exc)
                return
            self._reply(204) if document is None else self._reply(200, document)

        def do_POST(self):
            session_id = self._route("answers")
            if session_id is None:
                return
            length = int(self.headers.get("Content-Length", "0"))
            try:
                hub.answer(session_id, json.loads(self.rfile.read(length)))
            except RelayError as exc:
                self._problem(exc)
                return
            self._reply(204)

    return Handler


class RelayEndpoint:
    """Serve `hub` on an ephemeral port; `url` is the base the relay client is given."""

    def __init__(self, hub: RelayHub) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/relay"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RelayEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
