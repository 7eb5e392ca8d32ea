"""Who calls the key service: an authenticated identity, created only at the edges.

The `tsm` command, the web app and the workers turn an authenticated person or component into a `Caller`;
nothing below them creates one (tests/test_boundaries.py holds it), so the domain layers cannot declare an
identity of their own. The key service itself writes its own records (initialisation, self-test) under
`SERVICE_ACTOR`, which no caller can take.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from keyservice.errors import InvalidInput

NAME_MAX: Final = 64
SERVICE_ACTOR: Final = "keyservice"
"""The actor of records the key service writes on its own behalf (audit key creation at init)."""


@unique
class CallerKind(StrEnum):
    """Who is calling: a security officer, a TSM component, an SE vendor."""

    OFFICER = "officer"
    SERVICE = "service"
    VENDOR = "vendor"


@dataclass(frozen=True)
class Caller:
    """The authenticated identity on whose behalf the key service acts (recorded in every audit record).

    A name is 1 to 64 printable characters without surrounding spaces: a control character would forge a
    line in `tsm audit list`, an over-long name would not fit the audit record.
    """

    name: str
    kind: CallerKind

    def __post_init__(self) -> None:
        name = self.name
        if not name or len(name) > NAME_MAX or not name.isprintable() or name.strip() != name:
            raise InvalidInput(f"a caller name is 1 to {NAME_MAX} printable characters without surrounding "
                               "spaces and without control characters")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"
