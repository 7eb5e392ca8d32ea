"""Steps on an installed application: lock and unlock it (SET STATUS, GPCS 2.3.1 §11.10), delete it and then
what only it used, its load file and the SP's SSD (DELETE, §11.2).

The SD that manages the SP's content in its GP mode sends them (the ISD for issuer-centric SSDs, the SSD with
Authorized or Delegated Management, whose DELETE carries the issuer's token, §C.4); only the ISD deletes an SSD.
"""

from __future__ import annotations

from typing import Final

from tsm_core.errors import Conflict
from tsm_core.flows.list_content import read_registry
from tsm_core.gp import commands
from tsm_core.gp.commands import SetStatusScope
from tsm_core.gp.getstatus import StatusSubset
from tsm_core.jobs.content import app_of
from tsm_core.jobs.dm import lv, receipt, tokened
from tsm_core.jobs.stepcontext import Probe, StepContext, ok
from tsm_core.registry import service as registry

LOCKED: Final = 0x80
"""Application life-cycle bit b8: LOCKED (GPCS 2.3.1 §5.3.1.4); SET STATUS P2 '80' locks, '00' unlocks."""
UNLOCK: Final = 0x00


def _life_cycle(ctx: StepContext) -> int:
    ctx.manager()
    entry = ctx.status(StatusSubset.APPLICATIONS, app_of(ctx).instance_aid)
    if entry is None:
        raise Conflict(f"the card no longer has {app_of(ctx).instance_aid}")
    return entry.life_cycle


def probe_lock(ctx: StepContext) -> Probe:
    return Probe.PRESENT if _life_cycle(ctx) & LOCKED else Probe.ABSENT


def _set_status(ctx: StepContext, state: int, verb: str) -> str:
    """SET STATUS of the app's instance through the SD that manages it (§11.10)."""
    aid = app_of(ctx).instance_aid
    ok(ctx.link.secure(commands.set_status(SetStatusScope.APPLICATION_OR_SSD, state, bytes.fromhex(aid))),
       f"SET STATUS ({verb})")
    return f"{aid} {verb}ed"


def run_lock(ctx: StepContext) -> str:
    return _set_status(ctx, LOCKED, "lock")


def probe_unlock(ctx: StepContext) -> Probe:
    return Probe.ABSENT if _life_cycle(ctx) & LOCKED else Probe.PRESENT


def run_unlock(ctx: StepContext) -> str:
    return _set_status(ctx, UNLOCK, "unlock")


def probe_delete(ctx: StepContext) -> Probe:
    ctx.manager()
    return Probe.ABSENT if ctx.status(StatusSubset.APPLICATIONS, app_of(ctx).instance_aid) else Probe.PRESENT


def _delete(ctx: StepContext, aid: str, what: str) -> None:
    raw = bytes.fromhex(aid)
    response = ok(ctx.link.secure(tokened(ctx, lambda token: commands.delete(raw, token=token))), f"DELETE {what}")
    receipt(ctx, response, lv(raw))


def run_delete(ctx: StepContext) -> str:
    aid = app_of(ctx).instance_aid
    ctx.manager()
    _delete(ctx, aid, aid)
    return f"{aid} deleted"


def probe_cleanup(ctx: StepContext) -> Probe:
    return Probe.ABSENT


def run_cleanup(ctx: StepContext) -> str:
    """Delete the app's load file when no instance of it is left, then the SP's SSD when nothing is associated
    with it any more, as the ISD's GET STATUS shows the card (an ELF or SD still in use stays)."""
    app, ssd = app_of(ctx), ctx.params.ssd_aid.upper()
    content = read_registry(ctx.link.wire, ctx.isd())
    elf = app.load_file.package_aid.upper()
    done = []
    instances = [e for e in content.applications if (e.elf_aid or b"").hex().upper() == elf]
    if any(e.aid.hex().upper() == elf for e in content.load_files) and not instances:
        ctx.manager()
        _delete(ctx, elf, f"load file {elf}")
        done.append(f"load file {elf} deleted")
        content = read_registry(ctx.link.wire, ctx.isd())
    users = [e for e in (*content.applications, *content.load_files)
             if (e.associated_sd_aid or b"").hex().upper() == ssd and e.aid.hex().upper() != ssd]
    if ssd and any(e.aid.hex().upper() == ssd for e in content.applications) and not users:
        ctx.isd()
        ok(ctx.link.secure(commands.delete(bytes.fromhex(ssd))), f"DELETE SSD {ssd}")
        registry.forget_domain(ctx.tsm, ctx.se.id, ssd)
        done.append(f"SSD {ssd} deleted")
    return "; ".join(done) or "the load file and the SSD stay: other content uses them"
