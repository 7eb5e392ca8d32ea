"""The app catalog: an SP submits a CAP file and an app on it; the operator reviews it; only approved apps are
installed.

A CAP file (JAR or concatenated components, JCVM 3.0.5 §6) is parsed for its package AID and version, applet
AIDs, imports and component sizes; the Load File Data Block (the components in load order, what LOAD sends) is
stored with its SHA-256. The review checks it again: the stored block still hashes to its recorded value, no AID
clashes with another SP's package or app, the target profiles exist.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from globalplatform.errors import GpError
from keyservice.inventory import KeyState, KeyUsage
from tsm_core.catalog import perso
from tsm_core.catalog.models import App, LoadFile
from tsm_core.catalog.views import AppView, LoadFileView
from tsm_core.context import Tsm, now
from tsm_core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from tsm_core.gp.cap import CapFile, parse_cap
from tsm_core.registry import service as registry
from tsm_core.registry.models import SecurityDomain, SeProfile, Tenant
from tsm_core.registry.views import SeView

REVIEW_STATES: Final = ("pending", "approved", "rejected")
"""DGIs a card decrypts under application-dependent encryption (EMV CPS §A.3): the only ones given per card."""
MAX_REASON: Final = 1000
DAP_VERIFICATION: Final = 0x40
"""Privilege byte 1 b7 (GPCS 2.3.1 §11.1.2)."""


def _aid(value: str, what: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidRequest(f"{what} {value!r} is not hex") from None
    if not 5 <= len(raw) <= 16:
        raise InvalidRequest(f"{what} {value} is {len(raw)} bytes; an AID is 5 to 16 (ISO/IEC 7816-5)")
    return raw.hex().upper()


def check_perso(profile: str) -> str:
    """A personalization profile (tsm_core/catalog/perso.py), normalised, or InvalidRequest."""
    return " ".join(str(item) for item in perso.parse(profile))


@dataclass(frozen=True)
class Submission:
    """An SP's app on a CAP file."""

    sp: str
    cap: bytes
    name: str = ""
    module_aid: str = ""
    instance_aid: str = ""
    privileges: str = "00"
    install_params: str = ""
    nv_quota: int | None = None
    volatile_quota: int | None = None
    target_profiles: Sequence[str] = ()
    perso: str = ""


def _load_file(db: Session, sp: Tenant, cap: CapFile) -> LoadFile:
    lfdb = cap.load_file_data_block()
    digest = hashlib.sha256(lfdb).hexdigest()
    version = f"{cap.package_version.major}.{cap.package_version.minor}"
    package = cap.package_aid.hex().upper()
    row = db.execute(select(LoadFile).where(LoadFile.package_aid == package, LoadFile.version == version,
                                            LoadFile.sp_id == sp.id)).scalar_one_or_none()
    if row is not None:
        if row.sha256 != digest:
            raise Conflict(f"{sp.name} already submitted package {package} version {version} with other content; "
                           "a changed package needs a new version")
        return row
    row = LoadFile(sp_id=sp.id, package_aid=package, version=version,
                   module_aids=" ".join(a.hex().upper() for a in cap.applet_aids),
                   imports=" ".join(f"{i.aid.hex().upper()}:{i.version.major}.{i.version.minor}" for i in cap.imports),
                   size=len(lfdb), sha256=digest, lfdb=lfdb, submitted_at=now())
    db.add(row)
    db.flush()
    return row


def submit(tsm: Tsm, sub: Submission) -> str:
    """Record the load file and the app (review pending); returns the app id. An SP submits its own apps."""
    tsm.scope.only("issuer", "sp", action="submitting apps")
    if tsm.scope.kind == "sp" and sub.sp != tsm.scope.name:
        raise Forbidden(f"{tsm.scope} submits its own apps only (SP {sub.sp} given)")
    try:
        cap = parse_cap(sub.cap)
    except GpError as exc:
        raise InvalidRequest(f"not a CAP file: {exc}") from None
    modules = [a.hex().upper() for a in cap.applet_aids]
    if not modules:
        raise InvalidRequest(f"package {cap.package_aid.hex().upper()} has no applet to install (a library)")
    module = _aid(sub.module_aid, "module AID") if sub.module_aid else modules[0]
    if module not in modules:
        raise InvalidRequest(f"the CAP file has no applet {module} (it has {', '.join(modules)})")
    instance = _aid(sub.instance_aid, "instance AID") if sub.instance_aid else module
    try:
        privileges = bytes.fromhex(sub.privileges)
        params = bytes.fromhex(sub.install_params)
    except ValueError:
        raise InvalidRequest("privileges and install parameters are hex") from None
    if len(privileges) not in (1, 3):
        raise InvalidRequest("privileges are 1 or 3 bytes (GPCS 2.3.1 §11.1.2)")
    for quota in (sub.nv_quota, sub.volatile_quota):
        if quota is not None and not 0 <= quota <= 0xFFFFFFFF:
            raise InvalidRequest(f"memory quota {quota} is not 0..4294967295")
    perso = check_perso(sub.perso)
    name = registry.check_name(sub.name or f"{cap.package_name or instance}".replace("/", ".")[-64:], "an app name")
    app_id = f"app-{secrets.token_hex(6)}"
    with tsm.transaction() as db:
        sp = registry.tenant_row(db, sub.sp, "sp")
        load_file = _load_file(db, sp, cap)
        db.add(App(id=app_id, sp_id=sp.id, name=name, load_file_id=load_file.id, module_aid=module,
                   instance_aid=instance, privileges=privileges.hex().upper(), install_params=params.hex().upper(),
                   nv_quota=sub.nv_quota, volatile_quota=sub.volatile_quota,
                   target_profiles=" ".join(sub.target_profiles), perso=perso, review="pending", submitted_at=now()))
    return app_id


def _findings(db: Session, app: App, load_file: LoadFile) -> list[str]:
    """Why the app may not be approved (empty: it may)."""
    found = []
    if hashlib.sha256(load_file.lfdb).hexdigest() != load_file.sha256 or len(load_file.lfdb) != load_file.size:
        found.append(f"the stored load file of {load_file.package_aid} no longer hashes to its recorded SHA-256")
    others = db.execute(select(LoadFile).where(LoadFile.sp_id != app.sp_id,
                                               LoadFile.package_aid == load_file.package_aid)).scalars().first()
    if others is not None:
        found.append(f"package {load_file.package_aid} is also another SP's package")
    clash = db.execute(select(App).where(App.id != app.id, App.review == "approved",
                                         or_(App.instance_aid == app.instance_aid,
                                             App.instance_aid == load_file.package_aid))).scalars().first()
    if clash is not None:
        found.append(f"instance AID {app.instance_aid} is already the approved app {clash.id}'s")
    if db.execute(select(SeProfile).where(or_(SeProfile.isd_aid == app.instance_aid,
                                              SeProfile.ssd_package_aid == load_file.package_aid))).first():
        found.append(f"AID {app.instance_aid} or package {load_file.package_aid} is a security domain's")
    known = set(db.execute(select(SeProfile.name)).scalars())
    unknown = [p for p in app.target_profiles.split() if p not in known]
    if unknown:
        found.append(f"target profile(s) {', '.join(unknown)} unknown")
    return found


def _dap_findings(tsm: Tsm, db: Session, app: App) -> list[str]:
    """An SP whose SSDs verify DAPs needs an active DAP key: every load of its apps carries a DAP (GPCS §C.2)."""
    verifying = db.execute(select(SecurityDomain.privileges).where(SecurityDomain.sp_id == app.sp_id)).scalars()
    if not any(p and int(p[:2], 16) & DAP_VERIFICATION for p in verifying):
        return []
    sp = db.get(Tenant, app.sp_id)
    assert sp is not None  # a foreign key
    keys = tsm.keys.keys.list_keys(KeyUsage.DAP_KEY, f"sp:{sp.name}")
    if any(k.state == KeyState.ACTIVE.value and k.signed for k in keys):
        return []
    return [f"{sp.name}'s SSDs verify DAPs, and {sp.name} has no active DAP key"]


def review(tsm: Tsm, app_id: str, *, approve: bool, reason: str = "") -> AppView:
    """Approve (when the review finds nothing) or reject with a reason; the reviewer is the caller (the issuer)."""
    tsm.scope.only("issuer", action="reviewing apps")
    reason = reason.strip()
    if not approve and not reason:
        raise InvalidRequest("a rejection needs a reason")
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise InvalidRequest(f"a reason is at most {MAX_REASON} printable characters")
    with tsm.transaction() as db:
        app = _app_row(db, app_id)
        load_file = db.get(LoadFile, app.load_file_id)
        assert load_file is not None  # a foreign key
        if approve:
            findings = _findings(db, app, load_file) + _dap_findings(tsm, db, app)
            if findings:
                raise Conflict(f"app {app_id} cannot be approved: {'; '.join(findings)}")
        app.review = "approved" if approve else "rejected"
        app.review_reason, app.reviewed_by, app.reviewed_at = reason, tsm.caller.name, now()
        db.flush()
        return _view(db, app)


def _app_row(db: Session, app_id: str) -> App:
    row = db.get(App, app_id)
    if row is None:
        raise NotFound(f"no app {app_id!r} (tsm app list)")
    return row


def _view(db: Session, row: App) -> AppView:
    sp = db.get(Tenant, row.sp_id)
    load_file = db.get(LoadFile, row.load_file_id)
    assert sp is not None and load_file is not None  # foreign keys
    return AppView.of(row, sp.name, LoadFileView.of(load_file, sp.name))


def app(tsm: Tsm, app_id: str) -> AppView:
    """One app with its load file (an SP's own only, for an SP; an approved one, for a device)."""
    with tsm.sessions() as db:
        view = _view(db, _app_row(db, app_id))
    if not (tsm.scope.kind == "device" and view.review == "approved"):
        tsm.scope.check_sp(view.sp, f"app {app_id!r} (tsm app list)")
    return view


def list_apps(tsm: Tsm, sp: str | None = None, review_state: str | None = None) -> list[AppView]:
    """Apps by submission time, of one SP and/or review state, or all (an SP's own, for an SP; for a device, the
    approved apps it may order: `_eligible`)."""
    tsm.scope.only("issuer", "sp", "device", action="listing apps")
    if tsm.scope.kind == "sp":
        sp = tsm.scope.name
    if tsm.scope.kind == "device":
        review_state = "approved"
    query = select(App).order_by(App.submitted_at)
    with tsm.sessions() as db:
        if sp is not None:
            query = query.where(App.sp_id == registry.tenant_row(db, sp, "sp").id)
        if review_state is not None:
            query = query.where(App.review == review_state)
        found = [_view(db, row) for row in db.execute(query).scalars()]
        if tsm.scope.kind != "device":
            return found
        se = registry.se_view(db, tsm.scope.name, tsm.scope)
    return [app for app in found if _eligible(app, se)]


def _eligible(app: AppView, se: SeView) -> bool:
    """Whether a device may order `app` on its SE: meant for the SE's profile, not on the card yet, and (when the
    card reported its free memory) fitting it, its load file counted unless the card already holds it (the
    checks `jobs.order` makes, as the registry knows the card)."""
    if app.target_profiles and se.profile.name not in app.target_profiles:
        return False
    if any(e.aid == app.instance_aid for e in se.content):
        return False
    loaded = any(e.aid == app.load_file.package_aid and e.kind == "elf" for e in se.content)
    need = (0 if loaded else app.load_file.size) + (app.nv_quota or 0)
    return se.free_nv is None or need <= se.free_nv


def load_file_data(tsm: Tsm, load_file_id: int) -> bytes:
    """The Load File Data Block LOAD sends."""
    with tsm.sessions() as db:
        row = db.get(LoadFile, load_file_id)
        if row is None:
            raise NotFound(f"no load file {load_file_id}")
        return row.lfdb
