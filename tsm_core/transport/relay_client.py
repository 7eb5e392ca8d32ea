"""Reference relay client, the stand-in for the phone app: poll the TSM's relay endpoint for C-APDU batches,
run them on a local card (`Transport`, normally a PC/SC reader) and post the R-APDUs back (docs/relay.md).

Only the standard library's `urllib` speaks HTTP. The loop ends normally when the TSM closes the session;
an expired, unknown or foreign session raises its typed error.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from globalplatform.sw import SwCategory, lookup
from tsm_core.transport.base import Transport
from tsm_core.transport.errors import (
    RelayError,
    RelayProtocolError,
    RelaySessionClosed,
    RelayUnreachable,
    TransportError,
)
from tsm_core.transport.relay import (
    ERRORS_BY_CODE,
    Answers,
    AnswerStatus,
    Batch,
    RelaySession,
    answers_document,
    parse_batch,
)

DEFAULT_POLL_INTERVAL = 0.2
DEFAULT_HTTP_TIMEOUT = 10.0
MAX_NETWORK_FAILURES = 5
HTTP_OK = 200
HTTP_NO_CONTENT = 204
JSON = "application/json"


def _continues(response: bytes) -> bool:
    """Whether a batch with `stop_on_error` goes on after this R-APDU (ISO 7816-4 §5.6 normal/warning)."""
    return lookup(int.from_bytes(response[-2:], "big")).category in (SwCategory.NORMAL, SwCategory.WARNING)


class RelayClient:
    """Polls `{url}/sessions/{session}/batch` and posts to `{url}/sessions/{session}/answers`."""

    def __init__(
        self,
        url: str,
        session_id: str,
        transport: Transport,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        http_timeout: float = DEFAULT_HTTP_TIMEOUT,
    ) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RelayProtocolError(f"relay URL must be http:// or https://, got {url!r}")
        base = f"{url.rstrip('/')}/sessions/{urllib.parse.quote(session_id, safe='')}"
        self._batch_url = f"{base}/batch"
        self._answers_url = f"{base}/answers"
        self._session_id = session_id
        self._transport = transport
        self._poll_interval = poll_interval
        self._http_timeout = http_timeout
        self._atr: bytes | None = None

    def _request(self, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if body is None else "POST"
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (scheme checked in __init__)
        request.add_header("Accept", JSON)
        if data is not None:
            request.add_header("Content-Type", JSON)
        try:
            with urllib.request.urlopen(request, timeout=self._http_timeout) as reply:  # noqa: S310 (scheme checked in __init__)
                payload = reply.read()
                return reply.status, json.loads(payload) if payload else None
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
        return ERRORS_BY_CODE.get(code, RelayProtocolError)(f"relay endpoint: HTTP {exc.code}: {detail}")

    def _execute(self, session: RelaySession, batch: Batch) -> dict[str, Any]:
        responses: list[bytes] = []
        status = AnswerStatus.COMPLETE
        try:
            if self._atr is None:
                self._atr = self._transport.connect()
            for command in batch.commands:
                response = self._transport.transmit(command)
                responses.append(response)
                if batch.stop_on_error and not _continues(response):
                    status = AnswerStatus.STOPPED
                    break
        except TransportError as exc:
            self._transport.close()
            self._atr = None
            answers = Answers(batch.batch_id, AnswerStatus.CARD_ERROR, tuple(responses), b"", exc.code, str(exc))
            return answers_document(session, answers)
        return answers_document(session, Answers(batch.batch_id, status, tuple(responses), self._atr))

    def run_once(self) -> bool:
        """Fetch and execute at most one batch; True if one was executed."""
        status, document = self._request(self._batch_url)
        if status == HTTP_NO_CONTENT:
            return False
        if status != HTTP_OK:
            raise RelayProtocolError(f"relay endpoint answered HTTP {status} to a poll")
        session, batch = parse_batch(document, self._session_id)
        self._request(self._answers_url, self._execute(session, batch))
        return True

    def run(self, stop: threading.Event | None = None) -> int:
        """Serve batches until the session is closed (returns the number executed) or `stop` is set."""
        stop = stop if stop is not None else threading.Event()
        executed = failures = 0
        try:
            while not stop.is_set():
                try:
                    ran = self.run_once()
                except urllib.error.URLError as exc:
                    failures += 1
                    if failures >= MAX_NETWORK_FAILURES:
                        raise RelayUnreachable(f"relay endpoint unreachable: {exc.reason}") from None
                    stop.wait(self._poll_interval * 2**failures)
                    continue
                except RelaySessionClosed:
                    return executed
                failures = 0
                executed += ran
                if not ran:
                    stop.wait(self._poll_interval)
            return executed
        finally:
            self._transport.close()
