"""Creating jobs (a service order, an SSD, a key rotation), listing and showing them.

A job is created with its whole plan, checked before anything reaches a card: the app is approved and meant for
the SE's profile, the content fits the memory the card last reported, the keys exist. Keys are made here, by the
officer who asks, never by a worker: the SP's SSD master key (owner `sp:NAME`) is generated in the HSM when its
first SSD is created unless one is already active.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from globalplatform.keys import KeyAlgorithm
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose
from keyservice.views import KeyView, NewKey
from tsm_core.catalog import service as catalog
from tsm_core.catalog.models import App
from tsm_core.catalog.perso import Source
from tsm_core.catalog.views import AppView
from tsm_core.context import Tsm, now
from tsm_core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from tsm_core.jobs.models import Job, JobStep
from tsm_core.jobs.plan import JobParams, steps_for
from tsm_core.jobs.stepcontext import DoesNotFit, fits
from tsm_core.jobs.views import JobView, job_view
from tsm_core.registry import service as registry
from tsm_core.registry.models import SdKeySet, SecurityDomain, ServiceInstance, Tenant
from tsm_core.registry.views import SeView

DAP_VERIFICATION_BIT: Final = 0x40
"""Privilege byte 1 b7: the SD verifies a DAP on loads (GPCS 2.3.1 §11.1.2)."""
SSD_KVN: Final = 0x01
"""The key version of an SP's keys in its SSD."""
ISSUER_OWNER: Final = "issuer"
SSD_AID_PREFIX: Final = "F0535344"
"""Default SSD AIDs: proprietary (first byte 'F', ISO/IEC 7816-5) 'SSD' then the SP's number."""
DIVERSIFICATION: Final = {0x02: "emv", 0x03: "kdf3"}
"""How the per-SE keys are diversified from a master key for each SCP (EMV CPS for SCP02, GP KDF for SCP03)."""
ALGORITHM: Final = {0x02: (KeyAlgorithm.DES3, 16), 0x03: (KeyAlgorithm.AES, 16)}


def new_id(prefix: str) -> str:
    """A fresh id for a job (`job-`), a service instance (`svc-`), a top-up order (`top-`)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def _active_master(tsm: Tsm, owner: str, scp: int) -> KeyView | None:
    algorithm, _ = ALGORITHM[scp]
    found = [k for k in tsm.keys.keys.list_keys(KeyUsage.KMC, owner)
             if k.state == KeyState.ACTIVE.value and k.algorithm == algorithm.value and k.signed]
    return found[-1] if found else None


def sp_master_key(tsm: Tsm, sp: str, scp: int) -> str:
    """The label of the SP's active SSD master key for the SCP's algorithm; generated and activated in the HSM
    when there is none (a privileged key-service operation: the caller must be an officer)."""
    owner = f"sp:{sp}"
    found = _active_master(tsm, owner, scp)
    if found is not None:
        return found.label
    algorithm, length = ALGORITHM[scp]
    request = tsm.request(Purpose.KEY_MANAGEMENT, owner)
    label = f"sp-{sp}-ssd-{algorithm.value}-{secrets.token_hex(2)}"
    tsm.keys.keys.generate(request, NewKey(label, algorithm, length, KeyUsage.KMC, owner,
                                           note=f"SSD master key of service provider {sp}"))
    tsm.keys.keys.change_state(request, label, KeyState.ACTIVE)
    return label


def sp_dap_key(tsm: Tsm, sp: str, scp: int) -> str:
    """The label of the SP's active DAP key for the SCP's algorithm (owner `sp:NAME`, usage DAP_KEY), or ""."""
    algorithm, _ = ALGORITHM[scp]
    found = [k for k in tsm.keys.keys.list_keys(KeyUsage.DAP_KEY, f"sp:{sp}")
             if k.state == KeyState.ACTIVE.value and k.algorithm == algorithm.value and k.signed]
    return found[-1].label if found else ""


def issuer_master_key(tsm: Tsm, scp: int) -> str:
    """The label of the issuer's active KMC for the SCP's algorithm (owner `issuer`)."""
    found = _active_master(tsm, ISSUER_OWNER, scp)
    if found is None:
        algorithm, length = ALGORITHM[scp]
        raise NotFound(f"the issuer has no active {algorithm.value} KMC: tsm keys generate --label LABEL --type "
                       f"{algorithm.value} --length {length} --usage KMC --owner issuer, then tsm keys state LABEL "
                       "active")
    return found.label


def _sp(tsm: Tsm, name: str) -> Tenant:
    with tsm.sessions() as db:
        return registry.tenant_row(db, name, "sp")


def default_ssd_aid(sp_number: int) -> str:
    return f"{SSD_AID_PREFIX}{sp_number:08X}"


def _create(tsm: Tsm, kind: str, se_id: str, params: JobParams, steps: list[str], app_id: str | None = None, *,
            service: ServiceInstance | None = None, service_id: str | None = None, state: str = "pending") -> str:
    """A job with its plan; with `service`, the new service instance it makes (an SE holds one live instance of
    an app); with `service_id`, the existing instance it acts on."""
    job_id = new_id("job")
    with tsm.transaction() as db:
        if service is not None:
            try:
                with db.begin_nested():
                    db.add(service)
            except IntegrityError:
                raise Conflict(f"app {app_id} is already ordered for SE {se_id} (tsm job list --se {se_id})") \
                    from None
            service_id = service.id
        db.add(Job(id=job_id, kind=kind, se_id=se_id, app_id=app_id, service_id=service_id, params=params.dumps(),
                   state=state, requested_by=tsm.caller.name, created_at=now()))
        db.flush()
        db.add_all(JobStep(job_id=job_id, position=n, name=name, state="pending") for n, name in enumerate(steps))
    return job_id


def job_for(tsm: Tsm, service_id: str, kind: str, steps: list[str], params: JobParams, *,
            waiting: bool = False) -> str:
    """A life-cycle job on an existing service instance (`waiting`: queued for the device's next contact)."""
    with tsm.sessions() as db:
        service = db.get(ServiceInstance, service_id)
        if service is None:
            raise NotFound(f"no service {service_id!r}")
        se_id, app_id = service.se_id, service.app_id
    return _create(tsm, kind, se_id, params, steps, app_id, service_id=service_id,
                   state="waiting" if waiting else "pending")


def _ssd_params(tsm: Tsm, se: SeView, sp: str, mode: str, aid: str | None, nv_quota: int | None = None,
                volatile_quota: int | None = None) -> JobParams:
    tenant = _sp(tsm, sp)
    ssd_aid = (aid or default_ssd_aid(tenant.id)).upper()
    if any(d.aid == ssd_aid for d in se.domains):
        raise Conflict(f"SE {se.id} already has a security domain {ssd_aid}")
    if not se.profile.initial_ssd_key:
        raise Conflict(f"SE profile {se.profile.name} names no initial SSD key: tsm se profile "
                       f"{se.profile.name} --initial-ssd-key LABEL")
    fits(se, nv_quota or 0)
    params = JobParams(sp=sp, mode=mode, ssd_aid=ssd_aid, kvn=SSD_KVN,
                       sp_key=sp_master_key(tsm, sp, se.profile.scp), diversification=DIVERSIFICATION[se.profile.scp],
                       dap_key=sp_dap_key(tsm, sp, se.profile.scp), nv_quota=nv_quota, volatile_quota=volatile_quota)
    return with_dm_keys(tsm, params, se.profile.scp) if mode == "dm" else params


def _issuer_key(tsm: Tsm, usage: KeyUsage, algorithm: KeyAlgorithm, hint: str) -> str:
    found = [k for k in tsm.keys.keys.list_keys(usage, ISSUER_OWNER)
             if k.state == KeyState.ACTIVE.value and k.algorithm == algorithm.value and k.signed]
    if not found:
        raise NotFound(f"Delegated Management needs the issuer's active {hint}")
    return found[-1].label


def with_dm_keys(tsm: Tsm, params: JobParams, scp: int) -> JobParams:
    """The issuer's token key pair and receipt key (for the ISD's key versions 70 and 71, GPCS 2.3.1 §C.4-C.5)."""
    receipt_algorithm, length = ALGORITHM[scp]
    token = _issuer_key(tsm, KeyUsage.TOKEN_KEY, KeyAlgorithm.RSA,
                        "RSA token key: tsm keys generate --label LABEL --type rsa --length 1024 --usage TOKEN_KEY "
                        "--owner issuer, then activate it")
    receipt = _issuer_key(tsm, KeyUsage.RECEIPT_KEY, receipt_algorithm,
                          f"receipt key: tsm keys generate --label LABEL --type {receipt_algorithm.value} --length "
                          f"{length} --usage RECEIPT_KEY --owner issuer --exportable, then activate it")
    return replace(params, token_key=token, receipt_key=receipt)


def create_ssd(tsm: Tsm, se_id: str, sp: str, mode: str, aid: str | None = None, *, nv_quota: int | None = None,
               volatile_quota: int | None = None) -> str:
    """A job creating SP `sp`'s SSD on the SE in GP `mode` (with memory quotas) and putting the SP's keys in it."""
    if mode not in registry.SD_MODES:
        raise InvalidRequest(f"GP mode {mode!r} is not one of {', '.join(registry.SD_MODES)}")
    _own_sp(tsm, sp)
    se = registry.show(tsm, se_id)
    if se.domain_of(sp) is not None:
        raise Conflict(f"SP {sp} already has a security domain on SE {se_id}")
    params = _ssd_params(tsm, se, sp, mode, aid, nv_quota, volatile_quota)
    return _create(tsm, "create-ssd", se_id, params, steps_for("create-ssd", mode=mode))


def _check_target(app: AppView, se: SeView) -> None:
    if app.review != "approved":
        raise Conflict(f"app {app.id} is {app.review}: only approved apps are installed (tsm app review)")
    if app.target_profiles and se.profile.name not in app.target_profiles:
        raise Conflict(f"app {app.id} targets SE profiles {', '.join(app.target_profiles)}; SE {se.id} is "
                       f"{se.profile.name}")
    if any(e.aid == app.instance_aid for e in se.content):
        raise Conflict(f"SE {se.id} already has an application {app.instance_aid}")


def _space(tsm: Tsm, app: AppView, se: SeView, loaded: bool) -> None:
    """The load file and the app's quota fit the SE's free memory, and the app's quota fits its SSD's quota."""
    fits(se, (0 if loaded else app.load_file.size) + (app.nv_quota or 0))
    domain = se.domain_of(app.sp)
    if domain is None or domain.nv_quota is None or app.nv_quota is None:
        return
    with tsm.sessions() as db:
        used = int(db.execute(select(func.coalesce(func.sum(App.nv_quota), 0))
                          .join(ServiceInstance, ServiceInstance.app_id == App.id)
                          .where(ServiceInstance.se_id == se.id, App.sp_id == _sp(tsm, app.sp).id)).scalar_one()
                   or 0)
    if used + app.nv_quota > domain.nv_quota:
        raise DoesNotFit(f"SSD {domain.aid} has a quota of {domain.nv_quota} bytes with {used} given to apps; app "
                         f"{app.id} asks {app.nv_quota}")


def app_master_key(tsm: Tsm, app: AppView) -> str:
    """The label of the app's master key (usage APP_KEY, owner `sp:NAME`) for profiles with `DGI@key` items;
    generated and activated in the HSM when the app has none (a privileged operation: an officer asks)."""
    if app.app_key:
        return app.app_key
    owner = f"sp:{app.sp}"
    request = tsm.request(Purpose.KEY_MANAGEMENT, owner)
    label = f"app-{app.id}-{secrets.token_hex(2)}"
    tsm.keys.keys.generate(request, NewKey(label, KeyAlgorithm.AES, 16, KeyUsage.APP_KEY, owner,
                                           note=f"master key of app {app.id} of service provider {app.sp}"))
    tsm.keys.keys.change_state(request, label, KeyState.ACTIVE)
    with tsm.transaction() as db:
        row = db.get(App, app.id)
        assert row is not None  # the app was just read
        row.app_key = label
    return label


@dataclass(frozen=True)
class Order:
    """What a service order carries besides the SE and the app (a device change or a re-issue)."""

    operation: str = "open"
    balance: int | None = None
    """A purse balance to restore instead of the profile's."""
    previous_id: str = ""
    card_number_sealed: Callable[[str], str] | None = None
    """Seals the card number for the new service's id (the key service's data key)."""


def order(tsm: Tsm, se_id: str, app_id: str, spec: Order = Order()) -> str:
    """A job installing an approved app on an SE (its SP's SSD first, when the SE has none), and the service
    instance it makes (ORDERED: the SE's profile, its free space and the SP's SSD were checked)."""
    se = registry.show(tsm, se_id)
    app = catalog.app(tsm, app_id)
    _check_target(app, se)
    loaded = any(e.aid == app.load_file.package_aid and e.kind == "elf" for e in se.content)
    _space(tsm, app, se, loaded)
    if any(i.source is Source.KEY for i in app.perso_items) or app.is_purse:
        app_master_key(tsm, app)
    domain = se.domain_of(app.sp)
    if domain is None:
        tenant = _sp(tsm, app.sp)
        params = _ssd_params(tsm, se, app.sp, tenant.sd_mode, None)
    else:
        keys = domain.active_key_set
        if keys is None:
            raise Conflict(f"the SSD {domain.aid} of {app.sp} on SE {se_id} has no key set in the registry")
        dap = sp_dap_key(tsm, app.sp, se.profile.scp) if domain.privileges and \
            int(domain.privileges, 16) >> 16 & DAP_VERIFICATION_BIT else ""
        params = JobParams(sp=app.sp, mode=domain.mode, ssd_aid=domain.aid, kvn=keys.kvn, sp_key=keys.keys[0],
                           diversification=keys.diversification, dap_key=dap)
        if domain.mode == "dm":
            params = with_dm_keys(tsm, params, se.profile.scp)
    params = replace(params, operation=spec.operation, balance=spec.balance)
    steps = steps_for("install-app", new_ssd=domain is None, mode=params.mode, perso=bool(app.perso))
    service_id = new_id("svc")
    sealed = spec.card_number_sealed(service_id) if spec.card_number_sealed is not None else ""
    service = ServiceInstance(id=service_id, se_id=se_id, app_id=app_id, state="ordered", live=True,
                              card_number_sealed=sealed, previous_id=spec.previous_id, created_at=now(),
                              updated_at=now())
    return _create(tsm, "install-app", se_id, params, steps, app_id, service=service)


def rotate_keys(tsm: Tsm, se_id: str, to_kvn: int, sd_aid: str | None = None) -> str:
    """A job giving the ISD (or SD `sd_aid`) a new key version, diversified per SE from the issuer's KMC (the
    ISD) or the SP's master key (an SSD)."""
    if not 0x01 <= to_kvn <= 0x7F:
        raise InvalidRequest(f"key version {to_kvn:02X} is not 01..7F (GPCS 2.3.1 §11.1.8)")
    se = registry.show(tsm, se_id)
    aid = (sd_aid or se.isd.aid).upper()
    domain = next((d for d in se.domains if d.aid == aid), None)
    if domain is None:
        raise NotFound(f"SE {se_id} has no security domain {aid} in the registry")
    if domain.mode == "isd":
        tsm.scope.only("issuer", action="rotating the ISD's keys")
    current = domain.active_key_set
    if current is not None and current.kvn == to_kvn:
        raise Conflict(f"SD {aid} of SE {se_id} already uses key version {to_kvn:02X}")
    source = issuer_master_key(tsm, se.profile.scp) if domain.mode == "isd" else \
        sp_master_key(tsm, domain.sp, se.profile.scp)
    params = JobParams(sd_aid=aid, kvn=to_kvn, source_key=source, diversification=DIVERSIFICATION[se.profile.scp])
    return _create(tsm, "rotate-keys", se_id, params, steps_for("rotate-keys"))


def rollout(tsm: Tsm, to_kvn: int, *, sp: str | None = None, limit: int = 100_000) -> list[str]:
    """Rotation jobs to key version `to_kvn` for every SE whose ISD (or `sp`'s SSD) uses another one and has no
    rotation job pending; returns their ids (run them, or queue them for the workers)."""
    _own_sp(tsm, sp)
    query = (select(SecurityDomain.se_id).join(SdKeySet, SdKeySet.sd_id == SecurityDomain.id)
             .where(SdKeySet.active.is_(True), SdKeySet.kvn != to_kvn).order_by(SecurityDomain.se_id).limit(limit))
    with tsm.sessions() as db:
        if sp is None:
            query = query.where(SecurityDomain.mode == "isd")
        else:
            query = query.where(SecurityDomain.sp_id == registry.tenant_row(db, sp, "sp").id)
        pending = set(db.execute(select(Job.se_id).where(Job.kind == "rotate-keys",
                                                         Job.state.in_(("pending", "running", "in_error"))))
                      .scalars())
        targets = [se_id for se_id in db.execute(query).scalars() if se_id not in pending]
    created = []
    for se_id in targets:
        se = registry.show(tsm, se_id)
        domain = se.isd if sp is None else se.domain_of(sp)
        if domain is not None:
            created.append(rotate_keys(tsm, se_id, to_kvn, domain.aid))
    return created


def key_versions(tsm: Tsm, sp: str | None = None) -> dict[int, int]:
    """How many SEs use each key version in their ISD (or `sp`'s SSD): which SE has which, in the registry."""
    _own_sp(tsm, sp)
    query = (select(SdKeySet.kvn, func.count()).join(SecurityDomain, SdKeySet.sd_id == SecurityDomain.id)
             .where(SdKeySet.active.is_(True)).group_by(SdKeySet.kvn).order_by(SdKeySet.kvn))
    with tsm.sessions() as db:
        if sp is None:
            query = query.where(SecurityDomain.mode == "isd")
        else:
            query = query.where(SecurityDomain.sp_id == registry.tenant_row(db, sp, "sp").id)
        return {kvn: count for kvn, count in db.execute(query).all()}


def _own_sp(tsm: Tsm, sp: str | None) -> None:
    """An SP acts on its own SSDs only; an SE vendor on none; the issuer on all."""
    tsm.scope.only("issuer", "sp", action="managing security domains")
    if tsm.scope.kind == "sp" and sp != tsm.scope.name:
        raise Forbidden(f"{tsm.scope} manages its own security domains only")


def _visible(db: Session, tsm: Tsm, job: Job) -> bool:
    """Whether the caller's tenancy reaches the job: an SP sees the jobs on its apps and SSDs, a device the jobs
    on its SE."""
    if tsm.scope.kind == "issuer":
        return True
    if tsm.scope.kind == "device":
        return job.se_id == tsm.scope.name
    if tsm.scope.kind != "sp":
        return False
    app = db.get(App, job.app_id) if job.app_id else None
    if app is not None:
        tenant = db.get(Tenant, app.sp_id)
        return tenant is not None and tenant.name == tsm.scope.name
    return JobParams.loads(job.params).sp == tsm.scope.name


def show(tsm: Tsm, job_id: str, *, apdus: bool = True) -> JobView:
    """A job with its steps and APDU log."""
    with tsm.sessions() as db:
        job = db.get(Job, job_id)
        if job is None or not _visible(db, tsm, job):
            raise NotFound(f"no job {job_id!r} (tsm job list)")
        return job_view(db, job_id, apdus=apdus)


def list_jobs(tsm: Tsm, se_id: str | None = None, limit: int = 200) -> list[JobView]:
    """The most recent jobs the caller's tenancy reaches, of one SE or all."""
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if se_id is not None:
        query = query.where(Job.se_id == se_id)
    with tsm.sessions() as db:
        return [job_view(db, job.id) for job in db.execute(query).scalars() if _visible(db, tsm, job)]
