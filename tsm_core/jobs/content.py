"""Steps on card content: LOAD, INSTALL, extradition, personalization, activation.

Content management goes through the security domain the GP mode names (GPCS 2.3.1 §9.1): the ISD for
issuer-centric SSDs (the ISD loads with the SSD as associated SD, installs, then extradites, §11.5.2.3.4); the
SSD itself with Authorized or Delegated Management (DM commands carry the issuer's token, §C.4). A probe that
cannot tell (a personalization the application does not report) on a step that may have left part of its effect
on the card (a STORE DATA was sent) ends the job IN_ERROR with the reason.
"""

from __future__ import annotations

import hashlib
from typing import Final

from globalplatform import tlv
from keyservice.policy import Purpose
from tsm_core.catalog.views import AppView
from tsm_core.errors import Conflict, InvalidRequest
from tsm_core.gp import install, storedata
from tsm_core.gp.getstatus import Privilege, StatusSubset
from tsm_core.jobs.dm import lv, receipt, tokened
from tsm_core.jobs.stepcontext import Probe, StepContext, block_size, fits, ok, system_parameters

APP_SPECIFIC: Final = 0x78
"""Application life-cycle bits b7..b4: states the application sets itself, e.g. PERSONALIZED (§5.3.1.3)."""
SELECTABLE: Final = 0x07


def app_of(ctx: StepContext) -> AppView:
    assert ctx.app is not None  # install-app jobs always carry their app
    return ctx.app


def probe_load(ctx: StepContext) -> Probe:
    ctx.manager()
    found = ctx.status(StatusSubset.LOAD_FILES, app_of(ctx).load_file.package_aid)
    return Probe.PRESENT if found else Probe.ABSENT


def run_load(ctx: StepContext) -> str:
    """INSTALL [for load] then LOAD of the Load File Data Block in blocks (§11.5.2.3.1, §11.6)."""
    app, p = app_of(ctx), ctx.params
    ctx.manager()
    lfdb = ctx.lfdb
    hashed = ctx.se.profile.load_file_hash == "sha256" or bool(p.dap_key)
    digest = hashlib.sha256(lfdb).digest() if hashed else b""
    dap_blocks = [_dap_block(ctx, digest)] if p.dap_key else []
    sd_aid = bytes.fromhex(p.ssd_aid) if p.mode == "cm" else b""
    package = bytes.fromhex(app.load_file.package_aid)
    parameters = system_parameters(None, None, len(lfdb))
    command = tokened(ctx, lambda token: install.install_for_load(package, sd_aid, load_file_hash=digest,
                                                                   load_parameters=parameters, token=token))
    ok(ctx.link.secure(command), "INSTALL [for load]")
    blocks = install.load_commands(lfdb, dap_blocks=dap_blocks, block_size=block_size(ctx))
    for block in blocks:
        response = ok(ctx.link.secure(block), f"LOAD block {block.p2}")
    receipt(ctx, response, lv(package) + lv(bytes.fromhex(p.ssd_aid)))
    return f"{app.load_file.package_aid} loaded: {len(lfdb)} bytes in {len(blocks)} LOAD commands"


def _dap_block(ctx: StepContext, digest: bytes) -> bytes:
    """'E2' {'4F' SSD AID, 'C3' the SP's DAP over the load file hash, made in the HSM} (GPCS 2.3.1 §11.6.2.3)."""
    request = ctx.tsm.request(Purpose.SE_MANAGEMENT, ctx.se.id)
    signature = ctx.tsm.keys.tokens.dap_signature(request, ctx.params.dap_key, digest)
    return tlv.encode(0xE2, tlv.encode(0x4F, bytes.fromhex(ctx.params.ssd_aid)) + tlv.encode(0xC3, signature))


def probe_install(ctx: StepContext) -> Probe:
    ctx.manager()
    return Probe.PRESENT if ctx.status(StatusSubset.APPLICATIONS, app_of(ctx).instance_aid) else Probe.ABSENT


def install_parameters(app: AppView) -> bytes:
    """'C9' application parameters and 'EF' memory quotas of an app's INSTALL (§11.5.2.3.7)."""
    return tlv.encode(0xC9, bytes.fromhex(app.install_params)) + system_parameters(app.nv_quota,
                                                                                    app.volatile_quota)


def check_space(ctx: StepContext) -> None:
    """The app's quota, and its load file unless the card has it, fit the free memory the card last reported
    (a job that was ordered when they fitted may find the space taken by then)."""
    app = app_of(ctx)
    aids = {e.aid for e in ctx.se.content}
    fits(ctx.se, (0 if app.load_file.package_aid in aids else app.load_file.size)
         + (0 if app.instance_aid in aids else app.nv_quota or 0))


def run_install(ctx: StepContext) -> str:
    app = app_of(ctx)
    ctx.manager()
    privileges = Privilege.from_bytes(bytes.fromhex(app.privileges)) if app.privileges else Privilege(0)
    package, instance = bytes.fromhex(app.load_file.package_aid), bytes.fromhex(app.instance_aid)
    command = tokened(ctx, lambda token: install.install_for_install(
        package, bytes.fromhex(app.module_aid), instance, privileges=privileges, parameters=install_parameters(app),
        token=token))
    response = ok(ctx.link.secure(command), "INSTALL [for install and make selectable]")
    receipt(ctx, response, lv(package) + lv(instance))
    return f"{app.instance_aid} installed from {app.module_aid}"


def probe_extradite(ctx: StepContext) -> Probe:
    ctx.isd()
    entry = ctx.status(StatusSubset.APPLICATIONS, app_of(ctx).instance_aid)
    if entry is None:
        raise Conflict(f"the card no longer has {app_of(ctx).instance_aid}")
    owner = (entry.associated_sd_aid or b"").hex().upper()
    return Probe.PRESENT if owner == ctx.params.ssd_aid.upper() else Probe.ABSENT


def run_extradite(ctx: StepContext) -> str:
    """INSTALL [for extradition] of the app to the SP's SSD (§11.5.2.3.4)."""
    app, p = app_of(ctx), ctx.params
    ctx.isd()
    ok(ctx.link.secure(install.install_for_extradition(bytes.fromhex(p.ssd_aid), bytes.fromhex(app.instance_aid))),
        "INSTALL [for extradition]")
    return f"{app.instance_aid} associated with {p.ssd_aid}"


def probe_personalize(ctx: StepContext) -> Probe:
    ctx.ssd(Purpose.SE_PERSO)
    entry = ctx.status(StatusSubset.APPLICATIONS, app_of(ctx).instance_aid)
    if entry is None:
        raise Conflict(f"the card no longer has {app_of(ctx).instance_aid}")
    return Probe.PRESENT if entry.life_cycle & APP_SPECIFIC else Probe.UNKNOWN


def _blocks(dgis: list[bytes], size: int) -> list[bytes]:
    """Whole DGIs packed into STORE DATA blocks of at most `size` bytes (a DGI is never split)."""
    blocks: list[bytes] = []
    for item in dgis:
        if len(item) > size:
            raise InvalidRequest(f"DGI {item[:2].hex().upper()} is {len(item)} bytes: more than one STORE DATA")
        if blocks and len(blocks[-1]) + len(item) <= size:
            blocks[-1] += item
        else:
            blocks.append(item)
    return blocks


def check_personalize(ctx: StepContext) -> None:
    """Every DGI is at hand (the sensitive ones are given per run, or come from the service and the HSM)."""
    missing = [f"{d.tag:04X}" for d in ctx.perso if d.value is None]
    if missing:
        raise InvalidRequest(f"app {app_of(ctx).id} needs this card's DGI(s) {', '.join(missing)}: give them to the "
                             "run (tsm job run JOB --perso FILE; they are never stored), or the service's card "
                             "number, or the app's key (tsm app review)")


def run_personalize(ctx: StepContext) -> str:
    """INSTALL [for personalization] then STORE DATA of the DGIs through the SP's SSD; sensitive DGIs are
    encrypted by the key service under the channel's DEK, the app's key for this SE made there too
    (§11.5.2.3.5, §11.11; EMV CPS)."""
    app = app_of(ctx)
    session = ctx.ssd(Purpose.SE_PERSO)
    ok(ctx.link.secure(install.install_for_personalization(bytes.fromhex(app.instance_aid))),
        "INSTALL [for personalization]")
    kdd = bytes.fromhex(ctx.se.kdd)
    items = [session.app_key_dgi(d.tag, d.key, kdd) if d.key else
             session.encrypt_dgi(d.tag, d.value) if d.encrypted else storedata.dgi(d.tag, d.value)
             for d in ctx.perso if d.value is not None]
    encrypted = sum(d.encrypted for d in ctx.perso)
    encryption = (storedata.StoreDataP1.APPLICATION_DEPENDENT_ENCRYPTION if encrypted
                  else storedata.StoreDataP1.NONE)
    blocks = _blocks(items, block_size(ctx))
    ctx.start()
    for n, block in enumerate(blocks):
        command = storedata.store_data(block, structure=storedata.StoreDataP1.DGI, encryption=encryption,
                                       first_block=n, last=n == len(blocks) - 1)[0]
        ok(ctx.link.secure(command), f"STORE DATA block {n}")
        ctx.progress += 1
    return f"{len(items)} DGI(s) in {len(blocks)} STORE DATA ({encrypted} encrypted)"


def probe_activate(ctx: StepContext) -> Probe:
    return Probe.ABSENT


def run_activate(ctx: StepContext) -> str:
    """The card shows the app selectable and associated with the SP's SSD: the service is active."""
    app, p = app_of(ctx), ctx.params
    ctx.manager()
    entry = ctx.status(StatusSubset.APPLICATIONS, app.instance_aid)
    if entry is None or entry.life_cycle & SELECTABLE != SELECTABLE:
        raise Conflict(f"the card does not show {app.instance_aid} selectable")
    owner = (entry.associated_sd_aid or b"").hex().upper()
    if owner and owner != p.ssd_aid.upper():
        raise Conflict(f"the card associates {app.instance_aid} with {owner}, not with the SSD {p.ssd_aid}")
    return f"{app.instance_aid} life cycle {entry.life_cycle:02X}"
