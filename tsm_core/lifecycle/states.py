"""The service-instance state machine (after BSI TR-03165's open-TSM model; docs/lifecycle.md has the diagram).

ORDERED (eligibility checked) -> INSTALLED -> PERSONALIZED -> ACTIVE <-> LOCKED_LOST, ACTIVE <-> SUSPENDED,
ACTIVE -> MIGRATING -> DELETED, any live state -> DELETED, and IN_ERROR from any step of a job (no automatic
rollback: the reason and what the card was seen to hold are kept; running the job again resumes it).
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final

from tsm_core.errors import Conflict


@unique
class State(StrEnum):
    """States of a service instance."""

    ORDERED = "ordered"
    INSTALLED = "installed"
    PERSONALIZED = "personalized"
    ACTIVE = "active"
    LOCKED_LOST = "locked_lost"
    SUSPENDED = "suspended"
    MIGRATING = "migrating"
    IN_ERROR = "in_error"
    DELETED = "deleted"


class InvalidTransition(Conflict):
    """The operation cannot run from the service's current state (the message names it)."""

    code = "invalid_transition"


_LIVE: Final = frozenset(State) - {State.DELETED}
ALLOWED: Final[dict[str, frozenset[State]]] = {
    # operation: the states it may start from (its target state counts as "already in state")
    "lock": frozenset({State.ACTIVE}),
    "unlock": frozenset({State.LOCKED_LOST}),
    "suspend": frozenset({State.ACTIVE}),
    "resume": frozenset({State.SUSPENDED}),
    "topup": frozenset({State.ACTIVE}),
    "balance": frozenset({State.ACTIVE, State.LOCKED_LOST, State.SUSPENDED, State.MIGRATING}),
    "show": frozenset(State),
    "delete": _LIVE,
    "unsubscribe": _LIVE,
    "migrate": frozenset({State.ACTIVE, State.LOCKED_LOST, State.SUSPENDED, State.MIGRATING}),
    "reissue": frozenset({State.ACTIVE, State.LOCKED_LOST, State.SUSPENDED, State.MIGRATING}),
}
TARGET: Final[dict[str, State]] = {
    "lock": State.LOCKED_LOST,
    "unlock": State.ACTIVE,
    "suspend": State.SUSPENDED,
    "resume": State.ACTIVE,
    "delete": State.DELETED,
    "unsubscribe": State.DELETED,
}


def check(operation: str, current: str, service_id: str) -> bool:
    """True when the operation may start; False when its target state is already reached ("already in state");
    InvalidTransition naming the current state otherwise."""
    if TARGET.get(operation) == current:
        return False
    if current not in ALLOWED[operation]:
        allowed = ", ".join(sorted(ALLOWED[operation]))
        raise InvalidTransition(f"service {service_id} is {current}: {operation} needs it {allowed}")
    return True
