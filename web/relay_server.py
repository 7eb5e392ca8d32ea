"""The relay endpoint served by a thread of this process (werkzeug), for as long as a `with` block runs: how the
CLI's `--relay` reaches a phone without the web service (docs/relay.md).

Request lines are never logged (the path holds the session id, a bearer secret). Requests are HTTP/1.0, one
per connection, so that stopping waits for each request in progress (at most one held long poll) and the phone gets
its last answer, e.g. `relay_session_closed`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from threading import Thread
from typing import Any, Final

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from tsm_core.transport.errors import RelayListenFailed
from tsm_core.transport.relay_store import RelayStore
from web.relay import LONG_POLL, URL_PREFIX, relay_app

SHUTDOWN_POLL: Final = 0.1
"""Seconds between the serving thread's checks for a stop request."""


class QuietHandler(WSGIRequestHandler):
    """One request per connection, and no request log."""

    protocol_version = "HTTP/1.0"

    def log(self, type: str, message: str, *args: Any) -> None:
        """Nothing: the request line carries the session id."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:  # socket.gaierror (unknown host) is one too
        raise RelayListenFailed(f"the relay endpoint cannot listen on {host}:{port}: {exc.strerror or exc} "
                                "(--relay-listen, TSM_RELAY_LISTEN)") from None


def url_of(host: str, port: int) -> str:
    """The endpoint's base URL, as the relay client is given it (`--url`)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{URL_PREFIX}"


@contextmanager
def serve_relay(store: RelayStore, host: str, port: int, *, long_poll: float = LONG_POLL) -> Iterator[str]:
    """Serve the endpoint over `store` on `host:port` (port 0: any free port) until the block ends; yields the
    base URL. `RelayListenFailed` if the address cannot be used."""
    listener = _listen(host, port)
    try:
        server = ThreadedWSGIServer(host, port, relay_app(store, long_poll=long_poll), QuietHandler,
                                    fd=listener.fileno())
    finally:
        listener.close()  # the server listens on its own duplicate of the socket
    server.daemon_threads = False  # closing the server waits for the requests in progress
    thread = Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL}, name="relay-endpoint",
                    daemon=True)
    thread.start()
    try:
        yield url_of(host, server.port)
    finally:
        server.shutdown()
        thread.join()
