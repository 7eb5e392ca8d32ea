"""The root of every typed error raised by `tsm_core` (GP builders, parsers, transports, registry, catalog, jobs).

Each error carries a stable, machine-readable `code` (the RFC 9457 `type` suffix used by the API, and the
`error[<code>]` prefix printed by the CLI) and the HTTP `status` the API answers with; the message is for humans
and may change.
"""

from __future__ import annotations


class TsmCoreError(Exception):
    """Base of every `tsm_core` error; subclasses override `code` and `status`."""

    code = "tsm_core_error"
    status = 500


class InvalidRequest(TsmCoreError):
    """A request the TSM cannot act on as given (a malformed AID, a bad file, an unknown mode)."""

    code = "invalid_request"
    status = 400


class NotFound(TsmCoreError):
    """No SP, SE, security domain, app or job of that name or id."""

    code = "not_found"
    status = 404


class Conflict(TsmCoreError):
    """The request clashes with what exists: a name or AID already taken, a state that does not allow it."""

    code = "conflict"
    status = 409


class Forbidden(TsmCoreError):
    """The caller's tenancy does not reach this: another SP's report, an operation an SP or a vendor may not run."""

    code = "forbidden"
    status = 403
