"""gunicorn's access log without the phone relay's bearer secrets: the session id in a relay URL is replaced by
`-` in every value the log format can name (`tsm serve` runs gunicorn with `--logger-class`; docs/relay.md)."""

from __future__ import annotations

import re
from typing import Any, Final

from gunicorn.glogging import Logger

from web.relay import URL_PREFIX

SESSION_IN_PATH: Final = re.compile(rf"({re.escape(URL_PREFIX)}/sessions/)[^/?#\s]+")


def redact(text: str) -> str:
    """`text` with the session id of every relay path in it replaced by `-`."""
    return SESSION_IN_PATH.sub(r"\1-", text)


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn's logger, whose access-log atoms (request line, path, environ, headers) hold no session id."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        found: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {name: redact(value) if isinstance(value, str) else value for name, value in found.items()}
