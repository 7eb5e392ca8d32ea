"""The phone relay's JSON wire format, version 2 (docs/relay.md): a SERAM-style exchange over one URL.

GlobalPlatform's SE Remote Application Management (GPD_SPE_... "SERAM", HTTP binding) has the device
application post the outcome of the last script and receive the next one; this format does the same, under
OMAPI's limits (Open Mobile API 3.3 §6: `openLogicalChannel(aid)` per applet, and `transmit` refuses SELECT
by DF name and MANAGE CHANNEL). So:

- the phone posts a `PhoneRequest`: its sequence number `seq` (1, 2, ...), its status (`PhoneStatus`), the
  responses to the batch it received in answer to `seq - 1`, and the SE's ATR;
- the TSM answers a `Directive` for that `seq`: EXECUTE a `Batch` (a target SE and AID, and C-APDUs, each with
  the status words that let the phone go on), WAIT (nothing yet: post again with the next `seq`), and the
  answer to a `seq` is cached, so a request re-sent after a dropped connection gets the same answer.

A `Batch` with a target AID asks the phone to open a channel to it (OMAPI: the SELECT is the channel's; the
SELECT response is reported as the first response); a batch without one goes on the channel already open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum, unique
from typing import Any, Final

from tsm_core.transport.errors import (
    CardRemoved,
    NoCard,
    NoReader,
    RelayAccessDenied,
    RelayProtocolError,
    RelaySessionClosed,
    RelaySessionExpired,
    RelaySessionForeign,
    RelaySessionIdInvalid,
    RelaySessionNotFound,
    TransmitFailed,
    TransportError,
)

WIRE_VERSION: Final = 2
SW_LEN: Final = 2
SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""A session id chosen by the caller: 16 to 64 characters of the URL-safe alphabet (RFC 4648 §5)."""
SW_PATTERN: Final = re.compile(r"[0-9A-F]{2}(?:[0-9A-F]{2}|XX)")
"""An expected status word: four hex digits, or SW1 and `XX` for any SW2 (e.g. `61XX`)."""
GOES_ON: Final = ("9000", "61XX", "62XX", "63XX")
"""The status words after which a batch goes on by default: ISO 7816-4 §5.6 normal and warning processing."""
MAX_AID_LEN: Final = 16
"""ISO 7816-4 §8.2.1.2: an application identifier is 5 to 16 bytes (0: the default applet, the ISD)."""
MAX_DETAIL: Final = 200
"""Characters of a phone's error detail kept (it is shown in the TSM's error message)."""

_CODED: Final[tuple[type[TransportError], ...]] = (
    RelayProtocolError, RelaySessionForeign, RelaySessionNotFound, RelaySessionExpired, RelaySessionClosed,
    RelaySessionIdInvalid, RelayAccessDenied, CardRemoved, NoCard, NoReader, TransmitFailed)
ERRORS_BY_CODE: Final[dict[str, type[TransportError]]] = {cls.code: cls for cls in _CODED}
"""Error `code` -> class, for problems received over HTTP."""


@unique
class PhoneStatus(StrEnum):
    """What the phone reports with each request (after SERAM's device application status)."""

    POLLING = "POLLING"
    """Nothing to report (the first request, or the last answer was WAIT): asking for work."""
    PROCESSED = "PROCESSED"
    """The last batch ran: one response per command, or fewer if one's status word was not expected."""
    UNAVAILABLE_SE = "UNAVAILABLE_SE"
    """The SE cannot be reached (absent, removed, the wearable out of range)."""
    UNGRANTED_ACCESS = "UNGRANTED_ACCESS"
    """The phone's access control (GP SE Access Control, OMAPI `SecurityException`) refused the channel."""
    TRANSPORT_ERROR = "TRANSPORT_ERROR"
    """The exchange with the SE failed midway (I/O error, Bluetooth link lost)."""


FAILURES: Final[dict[PhoneStatus, type[TransportError]]] = {
    PhoneStatus.UNAVAILABLE_SE: NoCard,
    PhoneStatus.UNGRANTED_ACCESS: RelayAccessDenied,
    PhoneStatus.TRANSPORT_ERROR: TransmitFailed,
}
"""The typed error the TSM side raises for each failure status."""


@unique
class Action(StrEnum):
    """What the TSM's answer asks of the phone."""

    EXECUTE = "EXECUTE"
    """Run `target` + `commands`, then post the outcome with the next `seq`."""
    WAIT = "WAIT"
    """Nothing yet: post again (status POLLING) with the next `seq`."""


@dataclass(frozen=True)
class Command:
    """A C-APDU and the status words after which the batch goes on (empty: any)."""

    apdu: bytes
    expect: tuple[str, ...] = GOES_ON

    def goes_on(self, response: bytes) -> bool:
        """Whether the batch continues after `response` (its last two bytes are SW1 SW2)."""
        return sw_expected(response, self.expect)


@dataclass(frozen=True)
class Batch:
    """What one EXECUTE carries: the target (the SE, and an AID to open a channel to, None: the open one)."""

    se_id: str
    aid: bytes | None
    commands: tuple[Command, ...]

    @property
    def expected_responses(self) -> int:
        """Responses of a batch that ran to the end: the SELECT response (with an AID), then one per command."""
        return len(self.commands) + (self.aid is not None)


@dataclass(frozen=True)
class Directive:
    """The TSM's answer to request `seq`."""

    seq: int
    action: Action
    expires_at: float
    batch: Batch | None = None


@dataclass(frozen=True)
class PhoneRequest:
    """One request of the phone."""

    seq: int
    status: PhoneStatus
    responses: tuple[bytes, ...] = ()
    atr: bytes = b""
    detail: str = ""


def sw_expected(response: bytes, expect: tuple[str, ...]) -> bool:
    """Whether `response`'s status word matches one of `expect` (`SW_PATTERN`); an empty `expect` takes all."""
    if not expect:
        return True
    sw = response[-SW_LEN:].hex().upper()
    return any(pattern in (sw, sw[:2] + "XX") for pattern in expect)


def check_session_id(session_id: str) -> str:
    """`session_id` if it is a valid caller-chosen session id (`SESSION_ID`), else `RelaySessionIdInvalid`; the
    value is never repeated (it is a bearer secret)."""
    if not SESSION_ID.fullmatch(session_id):
        raise RelaySessionIdInvalid("a relay session id is 16 to 64 URL-safe characters (A-Z a-z 0-9 _ -); the "
                                    "value given is not one (not repeated: it is a bearer secret)")
    return session_id


def rfc3339(epoch: float) -> str:
    """`epoch` as an RFC 3339 UTC time to the second."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _field(document: Any, name: str, kind: type, what: str = "a relay document") -> Any:
    if not isinstance(document, dict):
        raise RelayProtocolError(f"{what} is a JSON object")
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RelayProtocolError(f"field {name!r} must be of type {kind.__name__}")
    return value


def _hex(value: Any, what: str) -> bytes:
    try:
        if isinstance(value, str):
            return bytes.fromhex(value)
    except ValueError:
        pass
    raise RelayProtocolError(f"{what} must be a hex string")


def _hex_list(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise RelayProtocolError(f"{what} must be a list of hex strings")
    return tuple(_hex(item, what) for item in value)


def _version(document: Any) -> None:
    if _field(document, "version", int) != WIRE_VERSION:
        raise RelayProtocolError(f"unsupported relay wire version {document.get('version')!r} (this TSM speaks "
                                 f"{WIRE_VERSION})")


def _seq(document: Any) -> int:
    seq = _field(document, "seq", int)
    if seq < 1:
        raise RelayProtocolError("seq counts from 1")
    return int(seq)


def request_document(request: PhoneRequest) -> dict[str, Any]:
    """The JSON object the phone posts (docs/relay.md, "Request")."""
    document: dict[str, Any] = {
        "version": WIRE_VERSION,
        "seq": request.seq,
        "status": request.status.value,
        "responses": [response.hex().upper() for response in request.responses],
        "atr": request.atr.hex().upper(),
    }
    if request.detail:
        document["detail"] = request.detail
    return document


def parse_request(document: Any) -> PhoneRequest:
    """Validate a phone's request (its fit with the batch it reports on is the store's to check)."""
    _version(document)
    seq = _seq(document)
    try:
        status = PhoneStatus(_field(document, "status", str))
    except ValueError:
        raise RelayProtocolError(f"unknown phone status {document['status']!r}") from None
    responses = _hex_list(document.get("responses", []), "responses")
    if any(len(response) < SW_LEN for response in responses):
        raise RelayProtocolError("every response needs at least SW1 SW2")
    if status == PhoneStatus.POLLING and responses:
        raise RelayProtocolError("a POLLING request carries no responses")
    atr = _hex(document.get("atr", ""), "atr")
    detail = document.get("detail", "")
    if not isinstance(detail, str):
        raise RelayProtocolError("field 'detail' must be of type str")
    detail = "".join(c if c.isprintable() else "?" for c in detail[:MAX_DETAIL])
    return PhoneRequest(seq, status, responses, atr, detail)


def check_report(request: PhoneRequest, batch: Batch) -> None:
    """`RelayProtocolError` unless `request`'s responses fit `batch`: all of them, or (PROCESSED) up to the first
    whose status word was not expected; a failure status may come with fewer."""
    responses, total = request.responses, batch.expected_responses
    if len(responses) > total:
        raise RelayProtocolError(f"{len(responses)} responses for a batch of {total}")
    if request.status != PhoneStatus.PROCESSED or len(responses) == total:
        return
    if not responses:
        raise RelayProtocolError("a PROCESSED batch has at least one response")
    last = len(responses) - 1
    expect = GOES_ON if batch.aid is not None and last == 0 else batch.commands[last - (batch.aid is not None)].expect
    if sw_expected(responses[last], expect):
        raise RelayProtocolError(f"{len(responses)} responses for a batch of {total}, the last one expected")


def _target(batch: Batch) -> dict[str, Any]:
    return {"se": batch.se_id, "aid": None if batch.aid is None else batch.aid.hex().upper()}


def directive_document(directive: Directive) -> dict[str, Any]:
    """The JSON object the TSM answers (docs/relay.md, "Answer")."""
    document: dict[str, Any] = {"version": WIRE_VERSION, "seq": directive.seq, "action": directive.action.value,
                                "expires_at": rfc3339(directive.expires_at)}
    if directive.batch is not None:
        document["target"] = _target(directive.batch)
        document["commands"] = [{"apdu": c.apdu.hex().upper(), "expect": list(c.expect)}
                                for c in directive.batch.commands]
    return document


def _command(item: Any) -> Command:
    apdu = _hex(_field(item, "apdu", str, "a command"), "apdu")
    expect = _field(item, "expect", list, "a command")
    if not all(isinstance(sw, str) and SW_PATTERN.fullmatch(sw) for sw in expect):
        raise RelayProtocolError("expect must list status words like 9000 or 61XX")
    return Command(apdu, tuple(expect))


def parse_directive(document: Any, seq: int) -> Directive:
    """Validate the TSM's answer to the phone's request `seq`."""
    _version(document)
    if _seq(document) != seq:
        raise RelayProtocolError(f"answer for seq {document['seq']}, seq {seq} was sent")
    try:
        action = Action(_field(document, "action", str))
        expires = datetime.fromisoformat(_field(document, "expires_at", str)).timestamp()
    except ValueError:
        raise RelayProtocolError("unknown action, or expires_at is not an RFC 3339 time") from None
    if action == Action.WAIT:
        return Directive(seq, action, expires)
    target = _field(document, "target", dict)
    aid_hex = target.get("aid")
    aid = None if aid_hex is None else _hex(aid_hex, "aid")
    commands = tuple(_command(item) for item in _field(document, "commands", list))
    return Directive(seq, action, expires, Batch(_field(target, "se", str, "target"), aid, commands))
