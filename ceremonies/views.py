"""What callers of the ceremony service hand in and get back: the person acting (authenticated at the edge), a
ceremony's state as `tsm ceremony show --json` prints it, and what a signed step shows once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from keyservice.identity import Caller


@dataclass(frozen=True)
class Person:
    """Someone who just authenticated (password + TOTP) at the edge: their name, enrolled role and key-service
    caller. Only tsm/ and web/ make one (they alone create Callers)."""

    name: str
    role: str
    caller: Caller


@dataclass(frozen=True)
class StepView:
    number: int
    role: str
    action: str
    title: str
    checks: str
    approval: bool
    signed_by: str | None
    signed_at: datetime | None
    output: dict[str, str]


@dataclass(frozen=True)
class ApprovalView:
    step: int
    approver: str
    at: datetime


@dataclass(frozen=True)
class EventView:
    at: datetime
    kind: str
    actor: str
    step: int | None
    detail: str


@dataclass(frozen=True)
class CeremonyView:
    """A ceremony's state: steps with who signed them, the next step, the approvals collected so far."""

    id: str
    type: str
    title: str
    state: str
    requester: str
    params: dict[str, str]
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    abort_reason: str
    participants: dict[str, str]
    """name -> role."""
    steps: list[StepView]
    next_step: int | None
    approvals: list[ApprovalView]
    outputs: dict[str, str]
    events: list[EventView]
    evidence_sha256: str


@dataclass(frozen=True)
class SignResult:
    """A signed step's ceremony, and what is shown once to the signer (never recorded, never in a repr)."""

    ceremony: CeremonyView
    shown: dict[str, str] = field(repr=False)
