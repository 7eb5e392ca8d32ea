"""Delegated Management in jobs (GPCS 2.3.1 §C.4, §C.5): the ISD's token and receipt keys, tokens made in the
HSM for content-changing commands, receipts verified in the HSM with a confirmation counter that must grow."""

from __future__ import annotations

from collections.abc import Callable

from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.keys import ReservedKvn
from keyservice.policy import Purpose
from tsm_core.jobs.stepcontext import Probe, StepContext, key_versions, ok
from tsm_core.registry import service as registry


def tokened(ctx: StepContext, build: Callable[[bytes], CommandApdu]) -> CommandApdu:
    """The command with a Delegated Management token made in the HSM (DM mode), else as built (§C.4.1)."""
    plain = build(b"")
    if ctx.params.mode != "dm":
        return plain
    signed = (plain.data or b"")[:-1]  # everything before the (empty) token's length byte
    request = ctx.tsm.request(Purpose.SE_MANAGEMENT, ctx.se.id)
    return build(ctx.tsm.keys.tokens.dm_token(request, ctx.params.token_key, plain.p1, plain.p2, signed))


def receipt(ctx: StepContext, response: ResponseApdu, receipt_data: bytes) -> None:
    """DM mode: verify the card's receipt (in the HSM) and that its confirmation counter grew (§C.5)."""
    if ctx.params.mode != "dm":
        return
    request = ctx.tsm.request(Purpose.SE_MANAGEMENT, ctx.se.id)
    confirmed = ctx.tsm.keys.tokens.verify_receipt(request, ctx.params.receipt_key, receipt_data, response.data)
    registry.record_receipt(ctx.tsm, ctx.se.id, confirmed.counter)


def lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


def probe_dm_keys(ctx: StepContext) -> Probe:
    versions = key_versions(ctx, ctx.se.profile.isd_aid)
    if versions is None:
        return Probe.UNKNOWN
    return Probe.PRESENT if {ReservedKvn.TOKEN, ReservedKvn.RECEIPT} <= versions else Probe.ABSENT


def run_dm_keys(ctx: StepContext) -> str:
    """PUT KEY of the issuer's token key (public half, key version 70) and receipt key (71) into the ISD
    (GPCS 2.3.1 §11.8, §C.4, §C.5)."""
    p = ctx.params
    versions = key_versions(ctx, ctx.se.profile.isd_aid) or set()
    session = ctx.isd()
    for label, kvn in ((p.token_key, ReservedKvn.TOKEN), (p.receipt_key, ReservedKvn.RECEIPT)):
        if kvn in versions:
            continue
        command = session.put_single_key(label, kvn)
        response = ok(ctx.link.secure(command.apdu), f"PUT KEY {kvn:02X}")
        session.check_put_key(command, response.data)
    return f"token key {p.token_key} (70), receipt key {p.receipt_key} (71)"
