"""The ceremonies' side of dual control: the key-service request of a step with its approval set, the canonical
description of each privileged step (the digest approvers sign, recomputed by the key service from the call), and
the people actions of ceremony 6 (enroll, remove, set a quorum)."""

from __future__ import annotations

from keyservice.identity import Caller
from keyservice.policy import Purpose, Request


def request(caller: Caller, purpose: Purpose, target: str, approvals: object | None) -> Request:
    """The request of one step: the signer, the purpose, the ceremony id as target, the approvals collected."""
    return Request(caller, purpose, target)
