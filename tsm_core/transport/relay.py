"""The phone relay path: C-APDU batches go to a phone app over HTTP, R-APDUs come back (docs/relay.md).

Pieces:
- `RelaySession`: an id bound to one SE id, with an expiry. Using an expired, closed or unknown session, or a
  session bound to another SE, raises a typed `RelayError`.
- The JSON wire format of a batch (`batch_document`/`parse_batch`) and of the answers
  (`answers_document`/`parse_answers`), version `WIRE_VERSION`; its HTTP binding (status per error) is web/'s.
- `RelayHub`: the in-process meeting point. The TSM side submits a batch and waits; the HTTP endpoint (in the
  web app) hands pending batches to the phone (`poll`) and delivers its answers (`answer`). A batch is
  delivered at most once, so a C-APDU never reaches the card twice; a lost batch surfaces as `RelayTimeout`.
- `RelayTransport`: the `Transport` over a hub session, plus `transmit_batch` for several APDUs per round trip.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum, unique
from typing import Any, Final

from tsm_core.transport.base import ContextManagedTransport
from tsm_core.transport.errors import (
    CardRemoved,
    NoCard,
    NoReader,
    RelayProtocolError,
    RelaySessionClosed,
    RelaySessionExpired,
    RelaySessionForeign,
    RelaySessionIdInvalid,
    RelaySessionNotFound,
    RelayTimeout,
    TransmitFailed,
    TransportError,
)

WIRE_VERSION: Final = 1
DEFAULT_TTL = 300.0
DEFAULT_ANSWER_TIMEOUT = 30.0
SW_LEN = 2
SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""A session id chosen by the caller: 16 to 64 characters of the URL-safe alphabet (RFC 4648 §5)."""

_CODED: Final[tuple[type[TransportError], ...]] = (
    RelayProtocolError, RelaySessionForeign, RelaySessionNotFound, RelaySessionExpired, RelaySessionClosed,
    CardRemoved, NoCard, NoReader, TransmitFailed)
ERRORS_BY_CODE: Final[dict[str, type[TransportError]]] = {cls.code: cls for cls in _CODED}
"""Error `code` -> class, for problems received over HTTP and card errors reported by the phone."""


@unique
class AnswerStatus(StrEnum):
    """How the phone finished a batch."""

    COMPLETE = "complete"
    """Every command was sent; one response per command."""
    STOPPED = "stopped"
    """`stop_on_error` and a response had an error SW (ISO 7816-4 §5.6: not 9000/61XX/62XX/63XX)."""
    CARD_ERROR = "card_error"
    """The phone could not reach the card; `error` says why, `responses` holds what came back before."""


@dataclass(frozen=True)
class RelaySession:
    """A relay session: its id (a bearer secret in URLs), the one SE it talks to, its expiry (epoch s)."""

    session_id: str
    se_id: str
    expires_at: float


@dataclass(frozen=True)
class Batch:
    """C-APDUs sent to the phone in one HTTP round trip."""

    batch_id: int
    commands: tuple[bytes, ...]
    stop_on_error: bool = True


@dataclass(frozen=True)
class Answers:
    """The phone's answer to one batch."""

    batch_id: int
    status: AnswerStatus
    responses: tuple[bytes, ...]
    atr: bytes = b""
    error_code: str = ""
    error_detail: str = ""


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _hex_list(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise RelayProtocolError(f"{what} must be a list of hex strings")
    try:
        return tuple(bytes.fromhex(item) for item in value)
    except (TypeError, ValueError):
        raise RelayProtocolError(f"{what} must be a list of hex strings") from None


def _field(document: Any, name: str, kind: type) -> Any:
    if not isinstance(document, dict):
        raise RelayProtocolError("a relay document is a JSON object")
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RelayProtocolError(f"field {name!r} must be of type {kind.__name__}")
    return value


def _check_envelope(document: Any, session: RelaySession) -> None:
    if _field(document, "version", int) != WIRE_VERSION:
        raise RelayProtocolError(f"unsupported relay wire version {document.get('version')!r}")
    if _field(document, "session", str) != session.session_id:
        raise RelayProtocolError("document is for another session")
    if _field(document, "se_id", str) != session.se_id:
        raise RelaySessionForeign(f"session {session.session_id[:6]}... is bound to another SE")


def batch_document(session: RelaySession, batch: Batch) -> dict[str, Any]:
    """The JSON object the phone receives (docs/relay.md, "Batch")."""
    return {
        "version": WIRE_VERSION,
        "session": session.session_id,
        "se_id": session.se_id,
        "batch_id": batch.batch_id,
        "expires_at": _rfc3339(session.expires_at),
        "stop_on_error": batch.stop_on_error,
        "commands": [command.hex().upper() for command in batch.commands],
    }


def parse_batch(document: Any, session_id: str) -> tuple[RelaySession, Batch]:
    """Validate a batch document received by the phone for `session_id`."""
    se_id = _field(document, "se_id", str)
    try:
        expires = datetime.fromisoformat(_field(document, "expires_at", str)).timestamp()
    except ValueError:
        raise RelayProtocolError("expires_at must be an RFC 3339 time") from None
    session = RelaySession(session_id, se_id, expires)
    _check_envelope(document, session)
    commands = _hex_list(document.get("commands"), "commands")
    batch = Batch(_field(document, "batch_id", int), commands, _field(document, "stop_on_error", bool))
    return session, batch


def answers_document(session: RelaySession, answers: Answers) -> dict[str, Any]:
    """The JSON object the phone posts back (docs/relay.md, "Answers")."""
    document: dict[str, Any] = {
        "version": WIRE_VERSION,
        "session": session.session_id,
        "se_id": session.se_id,
        "batch_id": answers.batch_id,
        "status": answers.status.value,
        "atr": answers.atr.hex().upper(),
        "responses": [response.hex().upper() for response in answers.responses],
    }
    if answers.status == AnswerStatus.CARD_ERROR:
        document["error"] = {"code": answers.error_code, "detail": answers.error_detail}
    return document


def parse_answers(document: Any, session: RelaySession, batch: Batch) -> Answers:
    """Validate the phone's answers to `batch` of `session`."""
    _check_envelope(document, session)
    if _field(document, "batch_id", int) != batch.batch_id:
        raise RelayProtocolError(f"answers for batch {document['batch_id']}, batch {batch.batch_id} is pending")
    try:
        status = AnswerStatus(_field(document, "status", str))
    except ValueError:
        raise RelayProtocolError(f"unknown answer status {document['status']!r}") from None
    responses = _hex_list(document.get("responses"), "responses")
    if any(len(response) < SW_LEN for response in responses):
        raise RelayProtocolError("every response needs at least SW1 SW2")
    if (
        len(responses) > len(batch.commands)
        or (status == AnswerStatus.COMPLETE and len(responses) != len(batch.commands))
        or (status == AnswerStatus.STOPPED and not responses)
    ):
        raise RelayProtocolError(f"{len(responses)} responses for {len(batch.commands)} commands ({status})")
    atr = _hex_list([document.get("atr", "")], "atr")[0]
    code, detail = "", ""
    if status == AnswerStatus.CARD_ERROR:
        error = _field(document, "error", dict)
        code, detail = _field(error, "code", str), str(error.get("detail", ""))
    return Answers(batch.batch_id, status, responses, atr, code, detail)


def check_session_id(session_id: str) -> str:
    """`session_id` if it is a valid caller-chosen session id (`SESSION_ID`), else `RelaySessionIdInvalid`; the
    value is never repeated (it is a bearer secret)."""
    if not SESSION_ID.fullmatch(session_id):
        raise RelaySessionIdInvalid("a relay session id is 16 to 64 URL-safe characters (A-Z a-z 0-9 _ -); the "
                                    "value given is not one (not repeated: it is a bearer secret)")
    return session_id


@dataclass
class _SessionState:
    session: RelaySession
    closed: bool = False
    polled: bool = False
    told_closed: bool = False
    next_batch_id: int = 1
    queued: Batch | None = None
    in_flight: Batch | None = None
    answers: dict[int, Answers] = field(default_factory=dict)
    atr: bytes = b""


class RelayHub:
    """Relay sessions of one process; thread-safe. The web endpoint and the jobs must share one hub (a
    multi-process deployment needs a shared store behind the same methods)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._sessions: dict[str, _SessionState] = {}
        self._changed = threading.Condition()

    def open_session(self, se_id: str, ttl: float = DEFAULT_TTL, *, session_id: str | None = None) -> RelaySession:
        """A new session for `se_id`, valid for `ttl` seconds; its id is random (24 characters) unless the
        caller gives one (`check_session_id`, and not one this hub knows)."""
        chosen = secrets.token_urlsafe(18) if session_id is None else check_session_id(session_id)
        session = RelaySession(chosen, se_id, self._clock() + ttl)
        with self._changed:
            if chosen in self._sessions:
                raise RelaySessionIdInvalid("this relay session id is already in use: choose another")
            self._sessions[chosen] = _SessionState(session)
        return session

    def close_session(self, session_id: str) -> None:
        """End a session: the phone's next poll gets `relay_session_closed`; waiters are released."""
        with self._changed:
            state = self._sessions.get(session_id)
            if state is not None:
                state.closed = True
                self._changed.notify_all()

    def wait_told_closed(self, session_id: str, timeout: float) -> bool:
        """After `close_session`: block until the phone was answered `relay_session_closed` (so it stops
        cleanly), at most `timeout` seconds; True at once if the phone never polled this session."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                state = self._sessions.get(session_id)
                if state is None or not state.polled or state.told_closed:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    def _phone_state(self, session_id: str) -> _SessionState:
        """`_state` for a call of the phone, noting that it polled and whether it learnt the session closed."""
        known = self._sessions.get(session_id)
        if known is not None:
            known.polled = True
        try:
            return self._state(session_id)
        except RelaySessionClosed:
            if known is not None:
                known.told_closed = True
                self._changed.notify_all()
            raise

    def _state(self, session_id: str, se_id: str | None = None) -> _SessionState:
        state = self._sessions.get(session_id)
        if state is None:
            raise RelaySessionNotFound("no such relay session")
        if state.closed:
            raise RelaySessionClosed("the relay session is closed")
        if self._clock() >= state.session.expires_at:
            raise RelaySessionExpired(f"the relay session expired at {_rfc3339(state.session.expires_at)}")
        if se_id is not None and state.session.se_id != se_id:
            raise RelaySessionForeign(f"the relay session is bound to SE {state.session.se_id!r}, not {se_id!r}")
        return state

    def session(self, session_id: str, se_id: str) -> RelaySession:
        """The live session `session_id`, checked to be bound to `se_id`."""
        with self._changed:
            return self._state(session_id, se_id).session

    def atr(self, session_id: str) -> bytes:
        """The ATR the phone reported last (empty before its first answer)."""
        with self._changed:
            return self._state(session_id).atr

    # --- the phone side, called by the HTTP endpoint ---

    def poll(self, session_id: str, wait: float = 0.0) -> dict[str, Any] | None:
        """The next batch document for the phone, or None if none arrives within `wait` seconds."""
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                state = self._phone_state(session_id)
                batch = state.queued
                if batch is not None:
                    state.queued, state.in_flight = None, batch
                    return batch_document(state.session, batch)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def answer(self, session_id: str, document: Any) -> None:
        """Accept the phone's answers to the batch in flight."""
        with self._changed:
            state = self._phone_state(session_id)
            if state.in_flight is None:
                raise RelayProtocolError("no batch of this session is awaiting answers")
            answers = parse_answers(document, state.session, state.in_flight)
            state.in_flight = None
            state.answers[answers.batch_id] = answers
            if answers.atr:
                state.atr = answers.atr
            self._changed.notify_all()

    # --- the TSM side, called by RelayTransport ---

    def submit(self, session_id: str, se_id: str, commands: Sequence[bytes], *, stop_on_error: bool) -> int:
        """Queue a batch for the phone; returns its id. One batch at a time per session."""
        with self._changed:
            state = self._state(session_id, se_id)
            if state.queued is not None or state.in_flight is not None:
                raise RelayProtocolError("a batch of this session is still pending")
            batch = Batch(state.next_batch_id, tuple(commands), stop_on_error)
            state.next_batch_id += 1
            state.queued = batch
            self._changed.notify_all()
            return batch.batch_id

    def wait(self, session_id: str, batch_id: int, timeout: float) -> Answers:
        """Block until the phone answered `batch_id`; `RelayTimeout` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                state = self._state(session_id)
                answers = state.answers.pop(batch_id, None)
                if answers is not None:
                    return answers
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state.queued = state.in_flight = None
                    raise RelayTimeout(f"no answer to batch {batch_id} within {timeout:.0f} s")
                self._changed.wait(remaining)


class RelayTransport(ContextManagedTransport):
    """`Transport` over a relay session bound to `se_id`.

    `connect()` checks the session and returns the ATR the phone last reported (empty before its first
    answer: the phone owns the card connection). `close()` closes the session.
    """

    def __init__(
        self,
        hub: RelayHub,
        session_id: str,
        se_id: str,
        *,
        answer_timeout: float = DEFAULT_ANSWER_TIMEOUT,
        stop_on_error: bool = True,
    ) -> None:
        self._hub = hub
        self._session_id = session_id
        self._se_id = se_id
        self._answer_timeout = answer_timeout
        self._stop_on_error = stop_on_error

    def connect(self) -> bytes:
        """Check the session is live and bound to this SE; return the last ATR reported by the phone."""
        self._hub.session(self._session_id, self._se_id)
        self.atr = self._hub.atr(self._session_id)
        return self.atr

    def transmit_batch(self, apdus: Sequence[bytes]) -> list[bytes]:
        """Send several C-APDUs in one round trip; fewer responses come back if the phone stopped on an
        error SW. A card failure on the phone raises its typed error (e.g. `CardRemoved`)."""
        batch_id = self._hub.submit(self._session_id, self._se_id, apdus, stop_on_error=self._stop_on_error)
        answers = self._hub.wait(self._session_id, batch_id, self._answer_timeout)
        if answers.atr:
            self.atr = answers.atr
        if answers.status == AnswerStatus.CARD_ERROR:
            error = ERRORS_BY_CODE.get(answers.error_code, TransmitFailed)
            raise error(f"phone reported {answers.error_code or 'an error'}: {answers.error_detail}")
        return list(answers.responses)

    def transmit(self, apdu: bytes) -> bytes:
        """One C-APDU as a batch of one."""
        (response,) = self.transmit_batch([apdu])
        return response

    def close(self) -> None:
        """Close the session: the phone app stops polling."""
        self._hub.close_session(self._session_id)
