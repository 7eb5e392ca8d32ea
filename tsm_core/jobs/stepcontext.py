"""What every step of a provisioning job works with: the job's card, its secure channels to the ISD and the
SP's SSD, what the card's Registry says of one AID, and the probe/run/after/check shape of a step.

A step's probe asks the card (GET STATUS, GPCS 2.3.1 §11.4; GET DATA 'E0' key information, §11.3.3.1) whether
the step's effect is already there; the engine runs it before every step, so a resumed job never repeats a
non-idempotent step blindly.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from globalplatform import keyinfo, sw, tlv
from globalplatform.apdu import ResponseApdu
from globalplatform.dataobjects import parse_card_resources
from globalplatform.errors import GpError
from globalplatform.scp import Scp
from keyservice.channels import ChannelSession
from keyservice.policy import Purpose
from tsm_core.catalog.views import AppView
from tsm_core.context import Tsm
from tsm_core.errors import Conflict, InvalidRequest
from tsm_core.flows.channel import check
from tsm_core.flows.list_content import read_registry
from tsm_core.gp import commands, getstatus
from tsm_core.gp.commands import DataObject
from tsm_core.gp.getstatus import StatusEntry, StatusSubset
from tsm_core.jobs.link import CardLink
from tsm_core.jobs.perso import Dgi
from tsm_core.jobs.plan import JobParams
from tsm_core.registry import service as registry
from tsm_core.registry.views import KeySetView, SeView

NO_MATCH: Final = 0x6A88


WRONG_P1P2: Final = 0x6A86


class Probe(Enum):
    """What the card shows about a step's effect."""

    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class Unresumable(InvalidRequest):
    """The card cannot tell whether an interrupted, non-idempotent step took effect."""

    code = "job_unresumable"
    status = 409


class DoesNotFit(InvalidRequest):
    """The content does not fit the SE or the SSD's memory quota: nothing was sent."""

    code = "insufficient_space"
    status = 409


@dataclass
class StepContext:
    """What the steps of one job run share."""

    tsm: Tsm
    job_id: str
    kind: str
    params: JobParams
    se: SeView
    link: CardLink
    app: AppView | None = None
    lfdb: bytes = b""
    perso: list[Dgi] = field(default_factory=list)
    """The personalization's DGIs in the app profile's order (tsm_core/jobs/perso.py)."""
    service_id: str | None = None
    """The service instance a life-cycle job acts on."""
    channel_for: tuple[str, str] = ("", "")
    tlv_status: bool = True
    """GET STATUS in the TLV format, until the card refuses it."""
    progress: int = 0
    """Commands of the running step the card acknowledged that changed it (a non-repeatable step with none
    can run again)."""
    start: Callable[[], None] = field(default=lambda: None)
    """Called by a non-repeatable step just before its first command that the card may keep: from then on an
    interruption the probe cannot see through makes the step unresumable (the engine records it)."""

    # ---- channels ----------------------------------------------------------------------------------------------

    def isd_keys(self) -> KeySetView:
        keys = self.se.isd.active_key_set
        if keys is None:
            raise Conflict(f"SE {self.se.id} has no ISD key set in the registry")
        return keys

    def sp_keys(self) -> KeySetView:
        """The SP's key set of the SSD (after `ssd-keys`)."""
        p = self.params
        return KeySetView(p.kvn, (p.sp_key,), p.diversification, True)

    def initial_ssd_keys(self) -> KeySetView:
        label = self.se.profile.initial_ssd_key
        if not label:
            raise Conflict(f"SE profile {self.se.profile.name} names no initial SSD key "
                           "(tsm se profile set-initial-ssd-key)")
        return KeySetView(0, (label,), "none", True)

    def channel(self, aid: str, keys: KeySetView, purpose: Purpose) -> ChannelSession:
        """A secure channel to SD `aid` for `purpose`, reused while the job talks to the same SD for it."""
        link = self.link
        wanted = (aid, f"{purpose}:{keys.kvn}:{' '.join(keys.keys)}")
        if link.session is not None and self.channel_for == wanted:
            return link.session
        session = link.open(bytes.fromhex(aid), keys, purpose)
        self.channel_for = wanted
        return session

    def isd(self, purpose: Purpose = Purpose.SE_MANAGEMENT) -> ChannelSession:
        return self.channel(self.se.profile.isd_aid, self.isd_keys(), purpose)

    def ssd(self, purpose: Purpose = Purpose.SE_MANAGEMENT) -> ChannelSession:
        return self.channel(self.params.ssd_aid, self.sp_keys(), purpose)

    def manager(self) -> ChannelSession:
        """The SD that manages the SP's content in its GP mode: the ISD (cm) or the SSD (am, dm)."""
        return self.isd() if self.params.mode == "cm" else self.ssd()

    # ---- the card's registry -----------------------------------------------------------------------------------

    def status(self, subset: StatusSubset, aid: str) -> StatusEntry | None:
        """The Registry entry with exactly this AID, over the open channel (GET STATUS, search by AID); the
        legacy format (P2 '00') when the card refuses the TLV format (GPCS 2.3.1 §11.4.2.2)."""
        wanted = bytes.fromhex(aid)
        response = self.link.secure(commands.get_status(subset, aid=wanted, tlv_format=self.tlv_status))
        if response.sw == WRONG_P1P2 and self.tlv_status:
            self.tlv_status = False
            return self.status(subset, aid)
        if response.sw == NO_MATCH:
            return None
        data = response.data
        while response.sw == sw.Sw.MORE_DATA:
            response = self.link.secure(commands.get_status(subset, aid=wanted, tlv_format=self.tlv_status,
                                                            next_occurrence=True))
            data += response.data
        check(response.sw, f"GET STATUS P1 {subset:02X}")
        parse = getstatus.parse_tlv if self.tlv_status else getstatus.parse_legacy
        return next((e for e in parse(subset, data) if e.aid == wanted), None)


def block_size(ctx: StepContext) -> int:
    """The largest LOAD / STORE DATA block the channel's protection leaves room for."""
    return commands.max_block_size(ctx.link.level, Scp(f"{ctx.se.profile.scp:02X}"))


def ok(response: ResponseApdu, step: str) -> ResponseApdu:
    check(response.sw, step)
    return response


def system_parameters(nv: int | None, volatile: int | None, code: int | None = None) -> bytes:
    """'EF' system parameters: C6 non-volatile code, C7 volatile data, C8 non-volatile data (§11.5.2.3.7)."""
    inner = b""
    for tag, value in ((0xC6, code), (0xC7, volatile), (0xC8, nv)):
        if value is not None:
            inner += tlv.encode(tag, value.to_bytes(2 if value <= 0xFFFF else 4, "big"))
    return tlv.encode(0xEF, inner) if inner else b""


def key_versions(ctx: StepContext, aid: str) -> set[int] | None:
    """The key versions SD `aid` lists in its key information (GET DATA 'E0' after SELECT), None if it won't say."""
    ctx.link.close_channel()
    ctx.channel_for = ("", "")
    check(ctx.link.select(bytes.fromhex(aid)).sw, f"SELECT {aid}")
    response = ctx.link.send(commands.get_data(DataObject.KEY_INFORMATION))
    if response.sw != sw.Sw.SUCCESS:
        return None
    try:
        return set(keyinfo.key_versions(keyinfo.parse_key_information(response.data)))
    except GpError:
        return None


@dataclass(frozen=True)
class Step:
    """A step's probe, its action, and what it records once the card confirmed it."""

    probe: Callable[[StepContext], Probe]
    run: Callable[[StepContext], str]
    after: Callable[[StepContext], None] | None = None
    repeatable: bool = True
    """False when running it twice could differ from running it once and the probe may not tell."""
    check: Callable[[StepContext], None] | None = None
    """What must hold before the job sends anything (checked for every pending step when a run starts)."""


def fits(se: SeView, need_nv: int) -> None:
    """Refuse content that the SE's free memory (as the card last reported it) cannot hold."""
    if se.free_nv is not None and need_nv > se.free_nv:
        raise DoesNotFit(f"SE {se.id} has {se.free_nv} bytes of free non-volatile memory; this needs {need_nv}")


def refresh(ctx: StepContext) -> None:
    """Record the card's Registry and free memory as the ISD now reports them (GET STATUS, GET DATA 'FF21'):
    the registry never claims what the card does not have."""
    session = ctx.isd()
    content = read_registry(ctx.link.wire, session)
    response = ctx.link.secure(commands.get_data(DataObject.EXTENDED_CARD_RESOURCES))
    resources = None
    if response.sw == sw.Sw.SUCCESS:
        with suppress(GpError):
            resources = parse_card_resources(response.data)
    registry.record_content(ctx.tsm, ctx.se.id, content,
                            free_nv=resources.free_non_volatile if resources else None,
                            free_volatile=resources.free_volatile if resources else None)
