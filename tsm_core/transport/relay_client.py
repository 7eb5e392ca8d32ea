"""Reference relay client, the stand-in for the phone app (docs/relay.md, "Reference client"): post requests
to the TSM's relay endpoint, run each batch it answers on a local card (`Transport`, normally a PC/SC reader:
the way a phone forwards to a wearable, one APDU in flight) and report the responses with the next request.

Only the standard library's `urllib` speaks HTTP. A request that fails on the network is re-sent with the same
`seq` (the TSM answers it from its cache) until `retry_window` seconds have passed. The loop ends normally
when the TSM closes the session; an expired, unknown or foreign session raises its typed error.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from typing import Any, Final

from tsm_core.transport.base import Transport
from tsm_core.transport.errors import (
    CardRemoved,
    NoCard,
    NoReader,
    RelayError,
    RelayProtocolError,
    RelaySessionClosed,
    RelayUnauthenticated,
    RelayUnreachable,
    TransportError,
)
from tsm_core.transport.relay_wire import (
    ERRORS_BY_CODE,
    GOES_ON,
    Action,
    Batch,
    PhoneRequest,
    PhoneStatus,
    parse_directive,
    request_document,
    sw_expected,
)

DEFAULT_POLL_INTERVAL: Final = 0.2
"""Seconds between two requests after a WAIT (the endpoint already held the request for its long poll)."""
DEFAULT_HTTP_TIMEOUT: Final = 10.0
"""Seconds a request may take: more than the endpoint's long poll (2 s)."""
DEFAULT_RETRY_WINDOW: Final = 30.0
"""Seconds the client keeps re-sending a request that failed on the network before `relay_unreachable`."""
MAX_BACKOFF: Final = 5.0
JSON: Final = "application/json"
UNREACHABLE: Final = (NoCard, NoReader, CardRemoved)


def select_apdu(aid: bytes) -> bytes:
    """SELECT by name, first or only occurrence (ISO 7816-4 §11.2.2): what a phone's `openLogicalChannel(aid)`
    sends; the empty AID selects the default applet."""
    if not aid:
        return bytes.fromhex("00A4040000")
    return bytes.fromhex("00A40400") + bytes([len(aid)]) + aid + b"\x00"


class RelayClient:
    """Posts to `{url}/sessions/{session}/exchange` until the session closes (with `api_key`, the device's key
    that a session opened over the API needs)."""

    def __init__(self, url: str, session_id: str, transport: Transport, *,
                 poll_interval: float = DEFAULT_POLL_INTERVAL, http_timeout: float = DEFAULT_HTTP_TIMEOUT,
                 retry_window: float = DEFAULT_RETRY_WINDOW, api_key: str | None = None) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RelayProtocolError(f"relay URL must be http:// or https://, got {url!r}")
        self._url = f"{url.rstrip('/')}/sessions/{urllib.parse.quote(session_id, safe='')}/exchange"
        self._transport = transport
        self._poll_interval = poll_interval
        self._http_timeout = http_timeout
        self._retry_window = retry_window
        self._atr: bytes | None = None
        self._api_key = api_key

    def _post(self, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self._url, data=json.dumps(body).encode(), method="POST")  # noqa: S310 (scheme checked in __init__)
        request.add_header("Accept", JSON)
        request.add_header("Content-Type", JSON)
        if self._api_key is not None:  # a session a device opened over the API (docs/relay.md)
            request.add_header("Authorization", f"Bearer {self._api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self._http_timeout) as reply:  # noqa: S310 (scheme checked in __init__)
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._problem(exc) from None

    @staticmethod
    def _problem(exc: urllib.error.HTTPError) -> RelayError | TransportError:
        try:
            problem = json.loads(exc.read() or b"{}")
        except ValueError:
            problem = {}
        code = problem.get("code", "") if isinstance(problem, dict) else ""
        detail = problem.get("detail", exc.reason) if isinstance(problem, dict) else exc.reason
        if exc.code == HTTPStatus.UNAUTHORIZED:
            return RelayUnauthenticated(f"relay endpoint: HTTP 401: {detail} (give the device's key: --api-key-file)")
        return ERRORS_BY_CODE.get(code, RelayProtocolError)(f"relay endpoint: HTTP {exc.code}: {detail}")

    def _send(self, request: PhoneRequest, stop: threading.Event) -> Any:
        """Post `request`, re-sending it (same `seq`) on network failures within the retry window."""
        give_up, backoff = time.monotonic() + self._retry_window, self._poll_interval
        while True:
            try:
                return self._post(request_document(request))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if time.monotonic() + backoff > give_up or stop.is_set():
                    raise RelayUnreachable(f"relay endpoint unreachable for {self._retry_window:g} s: {reason}"
                                           ) from None
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _execute(self, batch: Batch, seq: int) -> PhoneRequest:
        """Run `batch` on the card, one APDU at a time; the request `seq` that reports it."""
        responses: list[bytes] = []
        try:
            if self._atr is None:
                self._atr = self._transport.connect()
            steps = [] if batch.aid is None else [(select_apdu(batch.aid), GOES_ON)]
            for apdu, expect in steps + [(c.apdu, c.expect) for c in batch.commands]:
                responses.append(self._transport.transmit(apdu))
                if not sw_expected(responses[-1], expect):
                    break
        except TransportError as exc:
            self._transport.close()
            self._atr = None
            status = PhoneStatus.UNAVAILABLE_SE if isinstance(exc, UNREACHABLE) else PhoneStatus.TRANSPORT_ERROR
            return PhoneRequest(seq, status, tuple(responses), b"", f"{exc.code}: {exc}")
        return PhoneRequest(seq, PhoneStatus.PROCESSED, tuple(responses), self._atr)

    def run(self, stop: threading.Event | None = None) -> int:
        """Serve batches until the session is closed (returns the number executed) or `stop` is set."""
        stop = stop if stop is not None else threading.Event()
        executed, request = 0, PhoneRequest(1, PhoneStatus.POLLING)
        try:
            while not stop.is_set():
                try:
                    directive = parse_directive(self._send(request, stop), request.seq)
                except RelaySessionClosed:
                    return executed
                following = request.seq + 1
                if directive.action == Action.WAIT or directive.batch is None:
                    request = PhoneRequest(following, PhoneStatus.POLLING)
                    stop.wait(self._poll_interval)
                    continue
                request = self._execute(directive.batch, following)
                executed += 1
            return executed
        finally:
            self._transport.close()
