"""The steps of provisioning jobs, each with its re-entry probe.

A step's probe asks the card (GET STATUS, GPCS 2.3.1 §11.4; GET DATA 'E0' key information, §11.3.3.1) whether
the step's effect is already there; the engine runs the probe before every step, so a resumed job never repeats a
non-idempotent step blindly. A probe that cannot tell (a personalization the application does not report) on a
step that may have left part of its effect on the card (a STORE DATA was sent) ends the job IN_ERROR with the
reason.

Content management goes through the security domain the GP mode names (GPCS 2.3.1 §9.1): the ISD for
issuer-centric SSDs (the ISD loads with the SSD as associated SD, installs, then extradites, §11.5.2.3.4); the
SSD itself with Authorized or Delegated Management (DM commands carry the issuer's token, §C.4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from globalplatform import keyinfo, sw, tlv
from globalplatform.apdu import CommandApdu, ResponseApdu
from globalplatform.dataobjects import parse_card_resources
from globalplatform.errors import GpError
from globalplatform.keys import ReservedKvn
from globalplatform.scp import Scp
from keyservice.channels import ChannelSession, ChannelSpec, DivMethod
from keyservice.policy import Purpose
from tsm_core.catalog.views import AppView
from tsm_core.context import Tsm
from tsm_core.errors import Conflict, InvalidRequest
from tsm_core.flows.channel import check
from tsm_core.flows.list_content import read_registry
from tsm_core.gp import commands, getstatus, install, storedata
from tsm_core.gp.commands import DataObject
from tsm_core.gp.getstatus import Privilege, StatusEntry, StatusSubset
from tsm_core.jobs.link import CardLink
from tsm_core.jobs.plan import JobParams
from tsm_core.registry import service as registry
from tsm_core.registry.views import KeySetView, SeView

NO_MATCH: Final = 0x6A88
WRONG_P1P2: Final = 0x6A86
APP_SPECIFIC: Final = 0x78
"""Application life-cycle bits b7..b4: states the application sets itself, e.g. PERSONALIZED (§5.3.1.3)."""
SELECTABLE: Final = 0x07
SSD_PRIVILEGES: Final = {
    "cm": Privilege.SECURITY_DOMAIN,
    "am": Privilege.SECURITY_DOMAIN | Privilege.AUTHORIZED_MANAGEMENT,
    "dm": Privilege.SECURITY_DOMAIN | Privilege.DELEGATED_MANAGEMENT,
}
"""Privileges of an SP's SSD in each GP mode (GPCS 2.3.1 §6.6, Table 6-1)."""
INITIAL_KVN: Final = 0xFF
"""The initial key set a new SD starts with, replaced by the first PUT KEY that adds a key set (§11.8.2.2)."""


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
    perso: list[tuple[int, bytes | None, bool]] = field(default_factory=list)
    """(DGI, value, encrypted) of the personalization in the app profile's order; a sensitive value not given
    for this run is None."""
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


def _block_size(ctx: StepContext) -> int:
    """The largest LOAD / STORE DATA block the channel's protection leaves room for."""
    return commands.max_block_size(ctx.link.level, Scp(f"{ctx.se.profile.scp:02X}"))


def _ok(response: ResponseApdu, step: str) -> ResponseApdu:
    check(response.sw, step)
    return response


def _system_parameters(nv: int | None, volatile: int | None, code: int | None = None) -> bytes:
    """'EF' system parameters: C6 non-volatile code, C7 volatile data, C8 non-volatile data (§11.5.2.3.7)."""
    inner = b""
    for tag, value in ((0xC6, code), (0xC7, volatile), (0xC8, nv)):
        if value is not None:
            inner += tlv.encode(tag, value.to_bytes(2 if value <= 0xFFFF else 4, "big"))
    return tlv.encode(0xEF, inner) if inner else b""


# ---- SSD ---------------------------------------------------------------------------------------------------------


def probe_ssd(ctx: StepContext) -> Probe:
    ctx.isd()
    return Probe.PRESENT if ctx.status(StatusSubset.APPLICATIONS, ctx.params.ssd_aid) else Probe.ABSENT


def run_ssd(ctx: StepContext) -> str:
    """INSTALL [for install and make selectable] of the SD module through the ISD (§11.5.2.3.2)."""
    p, profile = ctx.params, ctx.se.profile
    ctx.isd()
    params = tlv.encode(0xC9, b"") + _system_parameters(p.nv_quota, p.volatile_quota)
    privileges = SSD_PRIVILEGES[p.mode] | (Privilege.DAP_VERIFICATION if p.dap_key else Privilege(0))
    command = install.install_for_install(bytes.fromhex(profile.ssd_package_aid),
                                          bytes.fromhex(profile.ssd_module_aid), bytes.fromhex(p.ssd_aid),
                                          privileges=privileges, parameters=params)
    _ok(ctx.link.secure(command), "INSTALL [for install] of the SSD")
    return f"SSD {p.ssd_aid} installed ({p.mode})"


def after_ssd(ctx: StepContext) -> None:
    p = ctx.params
    registry.record_domain(ctx.tsm, ctx.se.id, p.ssd_aid, sp=p.sp, mode=p.mode, parent_aid=ctx.se.profile.isd_aid,
                           nv_quota=p.nv_quota, volatile_quota=p.volatile_quota)


def _key_versions(ctx: StepContext, aid: str) -> set[int] | None:
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


def _ssd_key_versions(ctx: StepContext) -> set[int]:
    """The key versions the SSD must end with: the SP's, and the DAP key's when the SP has one."""
    return {ctx.params.kvn, *((ReservedKvn.DAP,) if ctx.params.dap_key else ())}


def probe_ssd_keys(ctx: StepContext) -> Probe:
    versions = _key_versions(ctx, ctx.params.ssd_aid)
    if versions is None:
        return Probe.UNKNOWN
    return Probe.PRESENT if _ssd_key_versions(ctx) <= versions else Probe.ABSENT


def _put_key(ctx: StepContext, session: ChannelSession, source: ChannelSpec, old_kvn: int, new_kvn: int) -> None:
    command = session.put_key(source, old_kvn, new_kvn)
    response = _ok(ctx.link.secure(command.apdu), "PUT KEY")
    session.check_put_key(command, response.data)


def run_ssd_keys(ctx: StepContext) -> str:
    """PUT KEY of the SP's keys, diversified per SE from its master key, over the initial keys (§11.8)."""
    p = ctx.params
    present = _key_versions(ctx, p.ssd_aid) or set()
    if p.kvn not in present:
        session = ctx.channel(p.ssd_aid, ctx.initial_ssd_keys(), Purpose.SE_PERSO)
        _put_key(ctx, session, ChannelSpec((p.sp_key,), DivMethod(p.diversification)), 0, p.kvn)
        ctx.link.close_channel()
    if p.dap_key and ReservedKvn.DAP not in present:  # over the SP's keys: they replaced the initial key set
        session = ctx.channel(p.ssd_aid, ctx.sp_keys(), Purpose.SE_PERSO)
        command = session.put_single_key(p.dap_key, ReservedKvn.DAP)
        session.check_put_key(command, _ok(ctx.link.secure(command.apdu), "PUT KEY 73").data)
        ctx.link.close_channel()
    return f"SSD keys KVN {p.kvn:02X} from {p.sp_key}" + (f", DAP key {p.dap_key} (73)" if p.dap_key else "")


def after_ssd_keys(ctx: StepContext) -> None:
    p = ctx.params
    registry.record_key_set(ctx.tsm, ctx.se.id, p.ssd_aid, p.kvn, (p.sp_key,), p.diversification,
                            replaces=INITIAL_KVN)


# ---- Delegated Management -----------------------------------------------------------------------------------


def probe_dm_keys(ctx: StepContext) -> Probe:
    versions = _key_versions(ctx, ctx.se.profile.isd_aid)
    if versions is None:
        return Probe.UNKNOWN
    return Probe.PRESENT if {ReservedKvn.TOKEN, ReservedKvn.RECEIPT} <= versions else Probe.ABSENT


def run_dm_keys(ctx: StepContext) -> str:
    """PUT KEY of the issuer's token key (public half, key version 70) and receipt key (71) into the ISD
    (GPCS 2.3.1 §11.8, §C.4, §C.5)."""
    p = ctx.params
    versions = _key_versions(ctx, ctx.se.profile.isd_aid) or set()
    session = ctx.isd()
    for label, kvn in ((p.token_key, ReservedKvn.TOKEN), (p.receipt_key, ReservedKvn.RECEIPT)):
        if kvn in versions:
            continue
        command = session.put_single_key(label, kvn)
        response = _ok(ctx.link.secure(command.apdu), f"PUT KEY {kvn:02X}")
        session.check_put_key(command, response.data)
    return f"token key {p.token_key} (70), receipt key {p.receipt_key} (71)"


def _tokened(ctx: StepContext, build: Callable[[bytes], CommandApdu]) -> CommandApdu:
    """The command with a Delegated Management token made in the HSM (DM mode), else as built (§C.4.1)."""
    plain = build(b"")
    if ctx.params.mode != "dm":
        return plain
    signed = (plain.data or b"")[:-1]  # everything before the (empty) token's length byte
    request = ctx.tsm.request(Purpose.SE_MANAGEMENT, ctx.se.id)
    return build(ctx.tsm.keys.tokens.dm_token(request, ctx.params.token_key, plain.p1, plain.p2, signed))


def _receipt(ctx: StepContext, response: ResponseApdu, receipt_data: bytes) -> None:
    """DM mode: verify the card's receipt (in the HSM) and that its confirmation counter grew (§C.5)."""
    if ctx.params.mode != "dm":
        return
    request = ctx.tsm.request(Purpose.SE_MANAGEMENT, ctx.se.id)
    confirmed = ctx.tsm.keys.tokens.verify_receipt(request, ctx.params.receipt_key, receipt_data, response.data)
    registry.record_receipt(ctx.tsm, ctx.se.id, confirmed.counter)


def _lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


# ---- key rotation ------------------------------------------------------------------------------------------------


def _rotated(ctx: StepContext) -> KeySetView:
    domain = next((d for d in ctx.se.domains if d.aid == ctx.params.sd_aid), None)
    keys = domain.active_key_set if domain else None
    if keys is None:
        raise Conflict(f"SE {ctx.se.id} has no key set for SD {ctx.params.sd_aid} in the registry")
    return keys


def probe_put_key(ctx: StepContext) -> Probe:
    versions = _key_versions(ctx, ctx.params.sd_aid)
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


# ---- content -----------------------------------------------------------------------------------------------------


def _app(ctx: StepContext) -> AppView:
    assert ctx.app is not None  # install-app jobs always carry their app
    return ctx.app


def probe_load(ctx: StepContext) -> Probe:
    ctx.manager()
    found = ctx.status(StatusSubset.LOAD_FILES, _app(ctx).load_file.package_aid)
    return Probe.PRESENT if found else Probe.ABSENT


def run_load(ctx: StepContext) -> str:
    """INSTALL [for load] then LOAD of the Load File Data Block in blocks (§11.5.2.3.1, §11.6)."""
    app, p = _app(ctx), ctx.params
    ctx.manager()
    lfdb = ctx.lfdb
    hashed = ctx.se.profile.load_file_hash == "sha256" or bool(p.dap_key)
    digest = hashlib.sha256(lfdb).digest() if hashed else b""
    dap_blocks = [_dap_block(ctx, digest)] if p.dap_key else []
    sd_aid = bytes.fromhex(p.ssd_aid) if p.mode == "cm" else b""
    package = bytes.fromhex(app.load_file.package_aid)
    parameters = _system_parameters(None, None, len(lfdb))
    command = _tokened(ctx, lambda token: install.install_for_load(package, sd_aid, load_file_hash=digest,
                                                                   load_parameters=parameters, token=token))
    _ok(ctx.link.secure(command), "INSTALL [for load]")
    blocks = install.load_commands(lfdb, dap_blocks=dap_blocks, block_size=_block_size(ctx))
    for block in blocks:
        response = _ok(ctx.link.secure(block), f"LOAD block {block.p2}")
    _receipt(ctx, response, _lv(package) + _lv(bytes.fromhex(p.ssd_aid)))
    return f"{app.load_file.package_aid} loaded: {len(lfdb)} bytes in {len(blocks)} LOAD commands"


def _dap_block(ctx: StepContext, digest: bytes) -> bytes:
    """'E2' {'4F' SSD AID, 'C3' the SP's DAP over the load file hash, made in the HSM} (GPCS 2.3.1 §11.6.2.3)."""
    request = ctx.tsm.request(Purpose.SE_MANAGEMENT, ctx.se.id)
    signature = ctx.tsm.keys.tokens.dap_signature(request, ctx.params.dap_key, digest)
    return tlv.encode(0xE2, tlv.encode(0x4F, bytes.fromhex(ctx.params.ssd_aid)) + tlv.encode(0xC3, signature))


def probe_install(ctx: StepContext) -> Probe:
    ctx.manager()
    return Probe.PRESENT if ctx.status(StatusSubset.APPLICATIONS, _app(ctx).instance_aid) else Probe.ABSENT


def install_parameters(app: AppView) -> bytes:
    """'C9' application parameters and 'EF' memory quotas of an app's INSTALL (§11.5.2.3.7)."""
    return tlv.encode(0xC9, bytes.fromhex(app.install_params)) + _system_parameters(app.nv_quota,
                                                                                    app.volatile_quota)


def check_space(ctx: StepContext) -> None:
    """The app's quota, and its load file unless the card has it, fit the free memory the card last reported
    (a job that was ordered when they fitted may find the space taken by then)."""
    app = _app(ctx)
    aids = {e.aid for e in ctx.se.content}
    fits(ctx.se, (0 if app.load_file.package_aid in aids else app.load_file.size)
         + (0 if app.instance_aid in aids else app.nv_quota or 0))


def run_install(ctx: StepContext) -> str:
    app = _app(ctx)
    ctx.manager()
    privileges = Privilege.from_bytes(bytes.fromhex(app.privileges)) if app.privileges else Privilege(0)
    package, instance = bytes.fromhex(app.load_file.package_aid), bytes.fromhex(app.instance_aid)
    command = _tokened(ctx, lambda token: install.install_for_install(
        package, bytes.fromhex(app.module_aid), instance, privileges=privileges, parameters=install_parameters(app),
        token=token))
    response = _ok(ctx.link.secure(command), "INSTALL [for install and make selectable]")
    _receipt(ctx, response, _lv(package) + _lv(instance))
    return f"{app.instance_aid} installed from {app.module_aid}"


def probe_extradite(ctx: StepContext) -> Probe:
    ctx.isd()
    entry = ctx.status(StatusSubset.APPLICATIONS, _app(ctx).instance_aid)
    if entry is None:
        raise Conflict(f"the card no longer has {_app(ctx).instance_aid}")
    owner = (entry.associated_sd_aid or b"").hex().upper()
    return Probe.PRESENT if owner == ctx.params.ssd_aid.upper() else Probe.ABSENT


def run_extradite(ctx: StepContext) -> str:
    """INSTALL [for extradition] of the app to the SP's SSD (§11.5.2.3.4)."""
    app, p = _app(ctx), ctx.params
    ctx.isd()
    _ok(ctx.link.secure(install.install_for_extradition(bytes.fromhex(p.ssd_aid), bytes.fromhex(app.instance_aid))),
        "INSTALL [for extradition]")
    return f"{app.instance_aid} associated with {p.ssd_aid}"


def probe_personalize(ctx: StepContext) -> Probe:
    ctx.ssd(Purpose.SE_PERSO)
    entry = ctx.status(StatusSubset.APPLICATIONS, _app(ctx).instance_aid)
    if entry is None:
        raise Conflict(f"the card no longer has {_app(ctx).instance_aid}")
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
    """Every DGI is at hand (the sensitive ones are given per run)."""
    missing = [f"{tag:04X}" for tag, value, _ in ctx.perso if value is None]
    if missing:
        raise InvalidRequest(f"app {_app(ctx).id} needs this card's DGI(s) {', '.join(missing)}: give them with "
                             "--perso FILE (they are never stored)")


def run_personalize(ctx: StepContext) -> str:
    """INSTALL [for personalization] then STORE DATA of the DGIs through the SP's SSD; sensitive DGIs are
    encrypted by the key service under the channel's DEK (§11.5.2.3.5, §11.11; EMV CPS)."""
    app = _app(ctx)
    session = ctx.ssd(Purpose.SE_PERSO)
    _ok(ctx.link.secure(install.install_for_personalization(bytes.fromhex(app.instance_aid))),
        "INSTALL [for personalization]")
    items = [session.encrypt_dgi(tag, value) if encrypted else storedata.dgi(tag, value)
             for tag, value, encrypted in ctx.perso if value is not None]
    encryption = (storedata.StoreDataP1.APPLICATION_DEPENDENT_ENCRYPTION if any(e for _, _, e in ctx.perso)
                  else storedata.StoreDataP1.NONE)
    blocks = _blocks(items, _block_size(ctx))
    ctx.start()
    for n, block in enumerate(blocks):
        command = storedata.store_data(block, structure=storedata.StoreDataP1.DGI, encryption=encryption,
                                       first_block=n, last=n == len(blocks) - 1)[0]
        _ok(ctx.link.secure(command), f"STORE DATA block {n}")
        ctx.progress += 1
    return f"{len(items)} DGI(s) in {len(blocks)} STORE DATA ({sum(e for _, _, e in ctx.perso)} encrypted)"


def probe_activate(ctx: StepContext) -> Probe:
    return Probe.ABSENT


def run_activate(ctx: StepContext) -> str:
    """The card shows the app selectable and associated with the SP's SSD: the service is active."""
    app, p = _app(ctx), ctx.params
    ctx.manager()
    entry = ctx.status(StatusSubset.APPLICATIONS, app.instance_aid)
    if entry is None or entry.life_cycle & SELECTABLE != SELECTABLE:
        raise Conflict(f"the card does not show {app.instance_aid} selectable")
    owner = (entry.associated_sd_aid or b"").hex().upper()
    if owner and owner != p.ssd_aid.upper():
        raise Conflict(f"the card associates {app.instance_aid} with {owner}, not with the SSD {p.ssd_aid}")
    return f"{app.instance_aid} life cycle {entry.life_cycle:02X}"


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


STEPS: Final[dict[str, Step]] = {
    "dm-keys": Step(probe_dm_keys, run_dm_keys),
    "ssd": Step(probe_ssd, run_ssd, after_ssd),
    "ssd-keys": Step(probe_ssd_keys, run_ssd_keys, after_ssd_keys),
    "put-key": Step(probe_put_key, run_put_key, after_put_key),
    "load": Step(probe_load, run_load),
    "install": Step(probe_install, run_install, check=check_space),
    "extradite": Step(probe_extradite, run_extradite),
    "personalize": Step(probe_personalize, run_personalize, repeatable=False, check=check_personalize),
    "activate": Step(probe_activate, run_activate),
}


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
