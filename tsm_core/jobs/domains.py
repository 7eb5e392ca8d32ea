"""Steps on security domains: the SP's SSD (INSTALL of the SD module, its keys by PUT KEY) and key rotation
(GPCS 2.3.1 §11.5.2.3.2, §11.8)."""

from __future__ import annotations

from typing import Final

from globalplatform import tlv
from globalplatform.keys import ReservedKvn
from keyservice.channels import ChannelSession, ChannelSpec, DivMethod
from keyservice.policy import Purpose
from tsm_core.errors import Conflict
from tsm_core.gp import install
from tsm_core.gp.getstatus import Privilege, StatusSubset
from tsm_core.jobs.stepcontext import Probe, StepContext, key_versions, ok, system_parameters
from tsm_core.registry import service as registry
from tsm_core.registry.views import KeySetView

SSD_PRIVILEGES: Final = {
    "cm": Privilege.SECURITY_DOMAIN,
    "am": Privilege.SECURITY_DOMAIN | Privilege.AUTHORIZED_MANAGEMENT,
    "dm": Privilege.SECURITY_DOMAIN | Privilege.DELEGATED_MANAGEMENT,
}
"""Privileges of an SP's SSD in each GP mode (GPCS 2.3.1 §6.6, Table 6-1)."""
INITIAL_KVN: Final = 0xFF
"""The initial key set a new SD starts with, replaced by the first PUT KEY that adds a key set (§11.8.2.2)."""


def probe_ssd(ctx: StepContext) -> Probe:
    ctx.isd()
    return Probe.PRESENT if ctx.status(StatusSubset.APPLICATIONS, ctx.params.ssd_aid) else Probe.ABSENT


def run_ssd(ctx: StepContext) -> str:
    """INSTALL [for install and make selectable] of the SD module through the ISD (§11.5.2.3.2)."""
    p, profile = ctx.params, ctx.se.profile
    ctx.isd()
    params = tlv.encode(0xC9, b"") + system_parameters(p.nv_quota, p.volatile_quota)
    privileges = SSD_PRIVILEGES[p.mode] | (Privilege.DAP_VERIFICATION if p.dap_key else Privilege(0))
    command = install.install_for_install(bytes.fromhex(profile.ssd_package_aid),
                                          bytes.fromhex(profile.ssd_module_aid), bytes.fromhex(p.ssd_aid),
                                          privileges=privileges, parameters=params)
    ok(ctx.link.secure(command), "INSTALL [for install] of the SSD")
    return f"SSD {p.ssd_aid} installed ({p.mode})"


def after_ssd(ctx: StepContext) -> None:
    p = ctx.params
    registry.record_domain(ctx.tsm, ctx.se.id, p.ssd_aid, sp=p.sp, mode=p.mode, parent_aid=ctx.se.profile.isd_aid,
                           nv_quota=p.nv_quota, volatile_quota=p.volatile_quota)


def _ssd_key_versions(ctx: StepContext) -> set[int]:
    """The key versions the SSD must end with: the SP's, and the DAP key's when the SP has one."""
    return {ctx.params.kvn, *((ReservedKvn.DAP,) if ctx.params.dap_key else ())}


def probe_ssd_keys(ctx: StepContext) -> Probe:
    versions = key_versions(ctx, ctx.params.ssd_aid)
    if versions is None:
        return Probe.UNKNOWN
    return Probe.PRESENT if _ssd_key_versions(ctx) <= versions else Probe.ABSENT


def _put_key(ctx: StepContext, session: ChannelSession, source: ChannelSpec, old_kvn: int, new_kvn: int) -> None:
    command = session.put_key(source, old_kvn, new_kvn)
    response = ok(ctx.link.secure(command.apdu), "PUT KEY")
    session.check_put_key(command, response.data)


def run_ssd_keys(ctx: StepContext) -> str:
    """PUT KEY of the SP's keys, diversified per SE from its master key, over the initial keys (§11.8)."""
    p = ctx.params
    present = key_versions(ctx, p.ssd_aid) or set()
    if p.kvn not in present:
        session = ctx.channel(p.ssd_aid, ctx.initial_ssd_keys(), Purpose.SE_PERSO)
        _put_key(ctx, session, ChannelSpec((p.sp_key,), DivMethod(p.diversification)), 0, p.kvn)
        ctx.link.close_channel()
    if p.dap_key and ReservedKvn.DAP not in present:  # over the SP's keys: they replaced the initial key set
        session = ctx.channel(p.ssd_aid, ctx.sp_keys(), Purpose.SE_PERSO)
        command = session.put_single_key(p.dap_key, ReservedKvn.DAP)
        session.check_put_key(command, ok(ctx.link.secure(command.apdu), "PUT KEY 73").data)
        ctx.link.close_channel()
    return f"SSD keys KVN {p.kvn:02X} from {p.sp_key}" + (f", DAP key {p.dap_key} (73)" if p.dap_key else "")


def after_ssd_keys(ctx: StepContext) -> None:
    p = ctx.params
    registry.record_key_set(ctx.tsm, ctx.se.id, p.ssd_aid, p.kvn, (p.sp_key,), p.diversification,
                            replaces=INITIAL_KVN)


def _rotated(ctx: StepContext) -> KeySetView:
    domain = next((d for d in ctx.se.domains if d.aid == ctx.params.sd_aid), None)
    keys = domain.active_key_set if domain else None
    if keys is None:
        raise Conflict(f"SE {ctx.se.id} has no key set for SD {ctx.params.sd_aid} in the registry")
    return keys


def probe_put_key(ctx: StepContext) -> Probe:
    versions = key_versions(ctx, ctx.params.sd_aid)
    if versions is None:
        return Probe.UNKNOWN
    return Probe.PRESENT if ctx.params.kvn in versions else Probe.ABSENT


def run_put_key(ctx: StepContext) -> str:
    """PUT KEY replacing the SD's current key set by version `kvn`, diversified from the source KMC."""
    p = ctx.params
    current = _rotated(ctx)
    session = ctx.channel(p.sd_aid, current, Purpose.KEY_ROTATION)
    old = 0 if current.kvn in (0, INITIAL_KVN) else current.kvn
    _put_key(ctx, session, ChannelSpec((p.source_key,), DivMethod(p.diversification)), old, p.kvn)
    ctx.link.close_channel()
    return f"KVN {current.kvn:02X} -> {p.kvn:02X} from {p.source_key}"


def after_put_key(ctx: StepContext) -> None:
    p = ctx.params
    current = _rotated(ctx)
    registry.record_key_set(ctx.tsm, ctx.se.id, p.sd_aid, p.kvn, (p.source_key,), p.diversification,
                            replaces=current.kvn if current.kvn != p.kvn else None)
