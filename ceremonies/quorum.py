"""The ceremonies' side of dual control: the key-service request of a step with its approval set, the canonical
description of each privileged step (`keyservice.operations`, the one definition both sides use: the key service
recomputes it from the call and clears the approvals only for that digest), and the people actions of ceremony 6
(enroll, remove, set a quorum)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from ceremonies.actions import Context, received, spec_of
from ceremonies.errors import InvalidCeremony
from keyservice import operations
from keyservice.approvals import Approval, ApprovalSet
from keyservice.inventory import KeyState
from keyservice.operations import OperationSpec
from keyservice.people import Credentials, Role
from keyservice.service import KeyService
from keyservice.vendor import KeyBlockHeader, describe_import, key_block_format


def approval_set(requester: str, tokens: list[str]) -> ApprovalSet:
    """The approvals stored for a step, decoded (their MACs are checked by the key service)."""
    return ApprovalSet(requester, tuple(Approval.decode(t) for t in tokens))


def approve(ks: KeyService, digest: str, name: str, creds: Credentials, requester: str, now: datetime) -> str:
    """`name` re-authenticates and approves `digest` for `requester`; the approval as stored."""
    return ks.approvals.approve(digest, name, creds, requester=requester, now=now.timestamp()).encode()


def described(ctx: Context) -> OperationSpec:
    """The exact key-service call a privileged step makes, as its approvers approve it."""
    p, action = ctx.params, ctx.step.action
    if action == "generate-key":
        return operations.generate(spec_of(ctx))
    if action == "combine":
        spec = spec_of(ctx)
        return operations.generate(spec) if "kcv" not in p else operations.import_components(spec)
    if action == "activate":
        return operations.change_state(ctx.label(), KeyState.ACTIVE)
    if action == "destroy":
        return operations.destroy(ctx.label())
    if action == "export-block":
        return operations.export_wrapped(p["key"], p["kbpk"], key_block_format(KeyBlockHeader(p["header_usage"])))
    if action == "import-block":
        block, kcv = ctx.outputs.get("key_block"), ctx.outputs.get("key_block_kcv")
        if not block or not kcv:
            raise InvalidCeremony("the vendor has not delivered the key block yet")
        return describe_import(p["kbpk"], block.encode(), kcv, received(ctx), "tr31")
    if action == "enroll":
        return operations.enroll(p["name"], p["role"], None)
    if action == "remove":
        return operations.remove(p["name"])
    if action == "set-quorum":
        return operations.quorum_change(p["operation"], _m(p))
    raise InvalidCeremony(f"step {ctx.step.number} ({action}) takes no approvals")


def digest(ctx: Context) -> str:
    return described(ctx).digest


def _m(p: dict[str, str]) -> int:
    try:
        return int(p["quorum"])
    except ValueError:
        raise InvalidCeremony(f"quorum is a number, not {p['quorum']!r}") from None


def enroll(ctx: Context) -> dict[str, str]:
    name, role = ctx.params["name"], ctx.params["role"]
    if not name or not role:
        raise InvalidCeremony("an enrollment needs --param name=... and --param role=...")
    enrolment = ctx.ks.people.enroll(ctx.request(), name, Role(role), ctx.need("password"), approvals=ctx.approvals)
    ctx.shown["provisioning_uri"] = enrolment.provisioning_uri
    return {"enrolled": name, "enrolled_role": role}


def remove(ctx: Context) -> dict[str, str]:
    ctx.ks.people.remove(ctx.request(), ctx.params["name"], approvals=ctx.approvals)
    return {"removed": ctx.params["name"]}


def set_quorum(ctx: Context) -> dict[str, str]:
    view = ctx.ks.quorum.set(ctx.request(), ctx.params["operation"], _m(ctx.params), approvals=ctx.approvals)
    return {"quorum_scope": ctx.params["operation"], "quorum": str(view.m)}


ACTIONS: Final[dict[str, Callable[[Context], dict[str, str]]]] = {
    "enroll": enroll, "remove": remove, "set-quorum": set_quorum}
