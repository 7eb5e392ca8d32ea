"""The transit purse seen from the TSM (protocol in docs/cardsim.md, "Transit purse"), and the steps that read
and credit it.

A top-up is two-phase: the order is recorded when it is made; the `credit` step reads the purse's balance and
top-up counter and records them before the first TOP UP leaves, MACed over that counter with the SE's app key
(made in the HSM, Purpose SERVICE). The card increments the counter with each top-up, so when an answer is lost
the probe of the resumed job reads the counter again: past the recorded one, the card took the credit (recorded,
never sent again); equal, it did not (sent again, with the same MAC). Never twice, never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from sqlalchemy import update

from globalplatform import tlv
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.errors import GpError
from keyservice.policy import Purpose
from tsm_core.context import now
from tsm_core.errors import Conflict, NotFound
from tsm_core.flows.channel import CARD_LOCKED, check
from tsm_core.flows.errors import WrongCard
from tsm_core.gp import commands
from tsm_core.gp.commands import DataObject
from tsm_core.jobs.content import app_of
from tsm_core.jobs.stepcontext import Probe, StepContext
from tsm_core.lifecycle.models import TopUp
from tsm_core.registry.models import ServiceInstance

CLA: Final = 0x80
MAC_LENGTH: Final = 8
WRONG_DATA: Final = 0x6A80


@unique
class PurseIns(IntEnum):
    """Instructions of the purse."""

    TOP_UP = 0x52
    GET_BALANCE = 0x5C


@dataclass(frozen=True)
class PurseState:
    """GET BALANCE: balance (4) || maximum balance (4) || top-up counter (2) || currency (2)."""

    balance: int
    max_balance: int
    counter: int
    currency: str

    @classmethod
    def parse(cls, data: bytes) -> PurseState:
        if len(data) != 12:
            raise Conflict(f"the purse answered GET BALANCE with {len(data)} bytes, not 12")
        return cls(int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big"),
                   int.from_bytes(data[8:10], "big"), data[10:12].hex().upper())


def top_up_message(aid: bytes, counter: int, amount: int) -> bytes:
    """What the SP's key MACs: 52 || len(AID) || AID || counter (2) || amount (4)."""
    return bytes([PurseIns.TOP_UP, len(aid)]) + aid + counter.to_bytes(2, "big") + amount.to_bytes(4, "big")


def identify(ctx: StepContext) -> None:
    """The card is this SE: its ISD gives the SE's key diversification data (GET DATA 'CF', GPCS 2.3.1 §H.2), or,
    when it does not answer that, opens a channel with the SE's keys (whose INITIALIZE UPDATE names it); a
    balance read from another card must never be taken for this purse's."""
    isd = bytes.fromhex(ctx.se.profile.isd_aid)
    check(ctx.link.select(isd).sw, "SELECT of the ISD", (0x9000, CARD_LOCKED))
    ctx.channel_for = ("", "")
    response = ctx.link.send(commands.get_data(DataObject.KEY_DIVERSIFICATION_DATA))
    if response.sw != 0x9000:
        ctx.isd()
        return
    try:
        kdd = next((o.value for o in tlv.decode_all(response.data) if o.tag == DataObject.KEY_DIVERSIFICATION_DATA),
                   b"")
    except GpError:
        kdd = b""
    if kdd.hex().upper() != ctx.se.kdd.upper():
        raise WrongCard(f"the card answering is not SE {ctx.se.id}: its key diversification data is "
                        f"{kdd.hex().upper()}")


def read(ctx: StepContext) -> PurseState:
    """The purse's state, read from the card once it showed it is this SE."""
    identify(ctx)
    aid = bytes.fromhex(app_of(ctx).instance_aid)
    check(ctx.link.select(aid).sw, f"SELECT {aid.hex().upper()}")
    ctx.channel_for = ("", "")
    response = ctx.link.send(CommandApdu(CLA, PurseIns.GET_BALANCE, 0, 0, b"", 0x100))
    check(response.sw, "GET BALANCE")
    return PurseState.parse(response.data)


def _keep(ctx: StepContext, state: PurseState) -> None:
    """Back the purse up server-side: its balance and counter as the card just showed them."""
    with ctx.tsm.transaction() as db:
        db.execute(update(ServiceInstance).where(ServiceInstance.id == ctx.service_id)
                   .values(balance=state.balance, purse_counter=state.counter, backed_up_at=now()))


def probe_backup(ctx: StepContext) -> Probe:
    return Probe.ABSENT


def run_backup(ctx: StepContext) -> str:
    state = read(ctx)
    _keep(ctx, state)
    return f"balance {state.balance} {state.currency}, top-up counter {state.counter}"


def _order(ctx: StepContext) -> TopUp:
    with ctx.tsm.sessions() as db:
        order = db.get(TopUp, ctx.params.topup)
    if order is None:
        raise NotFound(f"no top-up order {ctx.params.topup!r}")
    return order


def _credited(ctx: StepContext, state: PurseState) -> None:
    with ctx.tsm.transaction() as db:
        db.execute(update(TopUp).where(TopUp.id == ctx.params.topup)
                   .values(state="credited", balance_after=state.balance, counter_after=state.counter,
                           finished_at=now()))
    _keep(ctx, state)


def probe_credit(ctx: StepContext) -> Probe:
    order = _order(ctx)
    if order.state == "credited":
        return Probe.PRESENT
    if order.counter_before is None:
        return Probe.ABSENT
    state = read(ctx)
    if state.counter == order.counter_before:
        return Probe.ABSENT
    if state.counter != order.counter_before + 1:
        raise Conflict(f"the purse's top-up counter is {state.counter}; top-up {order.id} was sent at "
                       f"{order.counter_before}: another top-up reached the card")
    _credited(ctx, state)
    return Probe.PRESENT


def run_credit(ctx: StepContext) -> str:
    order, app = _order(ctx), app_of(ctx)
    state = read(ctx)
    if order.counter_before is None:
        with ctx.tsm.transaction() as db:  # phase 2 starts: what the card had before the credit, committed first
            db.execute(update(TopUp).where(TopUp.id == order.id)
                       .values(counter_before=state.counter, balance_before=state.balance))
    elif order.counter_before != state.counter:
        raise Conflict(f"the purse's top-up counter moved from {order.counter_before} to {state.counter}")
    aid = bytes.fromhex(app.instance_aid)
    request = ctx.tsm.request(Purpose.SERVICE, ctx.se.id)
    mac = ctx.tsm.keys.apps.mac(request, app.app_key, bytes.fromhex(ctx.se.kdd),
                                top_up_message(aid, state.counter, order.amount))[:MAC_LENGTH]
    response: ResponseApdu = ctx.link.send(CommandApdu(CLA, PurseIns.TOP_UP, 0, 0,
                                                       order.amount.to_bytes(4, "big") + mac, 0x100))
    if response.sw == WRONG_DATA:
        raise Conflict(f"the purse refuses a top-up of {order.amount}: its balance is {state.balance} of at most "
                       f"{state.max_balance}")
    check(response.sw, "TOP UP")
    if len(response.data) != 6:
        raise Conflict(f"the purse answered TOP UP with {len(response.data)} bytes, not 6")
    after = PurseState(int.from_bytes(response.data[0:4], "big"), state.max_balance,
                       int.from_bytes(response.data[4:6], "big"), state.currency)
    _credited(ctx, after)
    return f"credited {order.amount}: balance {state.balance} -> {after.balance}, counter {after.counter}"
