"""The root of every typed error raised by `tsm_core` (GP builders, parsers, transports).

Each error carries a stable, machine-readable `code` (the RFC 9457 `type` suffix used by the API, and the
`error[<code>]` prefix printed by the CLI); the message is for humans and may change.
"""

from __future__ import annotations


class TsmCoreError(Exception):
    """Base of every `tsm_core` error; subclasses override `code`."""

    code = "tsm_core_error"
