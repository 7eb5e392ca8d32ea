"""The service life cycle's operations (docs/lifecycle.md): each is a job, or a short series of jobs, on the
engine of tsm_core/jobs, over any transport (an in-process card, a PC/SC reader, the phone relay).

Every operation checks the state machine first (tsm_core/lifecycle/states.py): one whose target state is already
reached answers "already <state>" and changes nothing; an impossible one is InvalidTransition naming the current
state. A card-side action for a device that is not reachable (no transport given) is a job WAITING for the
device's next contact: `contact` runs those first whenever a transport to that SE is at hand. Services are seen
and touched only within the caller's tenancy (`Tsm.scope`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import select, update

from tsm_core.billing import service as billing
from tsm_core.catalog import service as catalog
from tsm_core.catalog.perso import Source, masked
from tsm_core.catalog.perso import card_number as checked_number
from tsm_core.catalog.views import AppView
from tsm_core.context import Tsm, now
from tsm_core.errors import InvalidRequest, NotFound, TsmCoreError
from tsm_core.flows.errors import WrongCard
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.jobs.models import Job
from tsm_core.jobs.perso import seal_card_number, unseal_card_number
from tsm_core.jobs.plan import JobParams, steps_for
from tsm_core.jobs.views import JobView
from tsm_core.lifecycle import states
from tsm_core.lifecycle.models import ServiceEvent, TopUp
from tsm_core.lifecycle.states import State
from tsm_core.lifecycle.views import ServiceView, TopUpView, service_row, service_view, topup_view
from tsm_core.registry import service as registry
from tsm_core.registry.models import ServiceInstance
from tsm_core.transport.base import Transport
from tsm_core.transport.errors import TransportError
from tsm_core.webhooks import events

MAX_AMOUNT: Final = 0xFFFFFFFF


class JobFailed(TsmCoreError):
    """The operation's job stopped IN_ERROR; `tsm job run JOB` resumes it."""

    code = "job_in_error"
    status = 409

    def __init__(self, view: JobView) -> None:
        super().__init__(f"job {view.id} stopped: {view.error} (`tsm job run {view.id}` resumes it)")
        self.job = view


def _codes(error: type[TsmCoreError]) -> frozenset[str]:
    return frozenset({error.code}).union(*(_codes(sub) for sub in error.__subclasses__()))


UNREACHED: Final = _codes(TransportError) | {WrongCard.code}
"""Error codes of a job that did not reach the device (or reached another card): it waits for the next contact."""


def unreached(view: JobView) -> bool:
    """Whether a job stopped because its device could not be reached."""
    return view.error.partition(":")[0] in UNREACHED


@dataclass(frozen=True)
class Outcome:
    """What an operation did: the service as it now is, and one line saying what happened."""

    service: ServiceView
    message: str
    job_id: str | None = None
    """The card-side job the operation made (None: nothing to do on the card)."""


# ---- helpers ----------------------------------------------------------------------------------------------------


def show(tsm: Tsm, service_id: str) -> ServiceView:
    """A service with its history and jobs, or NotFound (also outside the caller's tenancy)."""
    with tsm.sessions() as db:
        return service_view(db, service_id, tsm.scope)


def list_services(tsm: Tsm, se_id: str | None = None, limit: int = 500) -> list[ServiceView]:
    """The caller's services (of one SE, or all), newest first."""
    query = select(ServiceInstance.id).order_by(ServiceInstance.created_at.desc()).limit(limit)
    if se_id is not None:
        query = query.where(ServiceInstance.se_id == se_id)
    with tsm.sessions() as db:
        out = []
        for service_id in db.execute(query).scalars():
            try:
                out.append(service_view(db, service_id, tsm.scope))
            except NotFound:
                continue  # another tenant's
        return out


def _event(tsm: Tsm, service_id: str, operation: str, to_state: str | None, detail: str, **values: object) -> None:
    """Record an operation on the service (and its new state and fields) in one transaction."""
    with tsm.transaction() as db:
        service = db.get(ServiceInstance, service_id)
        assert service is not None  # checked by the caller's service_row
        before = service.state
        if to_state is not None:
            service.state = to_state
        for name, value in values.items():
            setattr(service, name, value)
        service.updated_at = now()
        db.add(ServiceEvent(service_id=service_id, operation=operation, from_state=before, to_state=service.state,
                            detail=detail[:2000], actor=tsm.caller.name, at=now()))
        events.service_changed(db, service, before, operation)


def _meter(tsm: Tsm, service_id: str, operation: str) -> None:
    """A registry-side operation's metering event (a job's completion meters itself: tsm_core/jobs/outcome.py)."""
    with tsm.transaction() as db:
        service, app, _ = service_row(db, service_id, tsm.scope)
        se = registry.se_row(db, service.se_id)
        billing.meter(db, sp_id=app.sp_id, operation=operation, app_id=app.id, se_id=se.id, se_kind=se.device_kind,
                      service_id=service.id)


def _waiting(tsm: Tsm, service_id: str, kinds: tuple[str, ...]) -> list[str]:
    with tsm.sessions() as db:
        return list(db.execute(select(Job.id).where(Job.service_id == service_id, Job.kind.in_(kinds),
                                                    Job.state == engine.WAITING).order_by(Job.created_at)).scalars())


def _cancel(tsm: Tsm, job_ids: list[str]) -> None:
    if job_ids:
        with tsm.transaction() as db:
            db.execute(update(Job).where(Job.id.in_(job_ids), Job.state == engine.WAITING)
                       .values(state=engine.CANCELLED, finished_at=now()))


def _defer(tsm: Tsm, job_id: str) -> None:
    """Queue a job that could not finish for the device's next contact."""
    with tsm.transaction() as db:
        db.execute(update(Job).where(Job.id == job_id, Job.running_se.is_(None)).values(state=engine.WAITING))


def contact(tsm: Tsm, se_id: str, transport: Transport) -> list[JobView]:
    """The device is reachable: run the jobs waiting for its next contact, oldest first (a card-side lock, a
    deletion); one that did not reach the device waits for the next contact again."""
    registry.show(tsm, se_id)  # NotFound outside the caller's tenancy
    return _run_waiting(tsm, se_id, transport)


def _run_waiting(tsm: Tsm, se_id: str, transport: Transport) -> list[JobView]:
    with tsm.sessions() as db:
        waiting = list(db.execute(select(Job.id).where(Job.se_id == se_id, Job.state == engine.WAITING)
                                  .order_by(Job.created_at)).scalars())
    ran = []
    for job_id in waiting:
        view = engine.run(tsm, job_id, transport)
        if view.state == engine.IN_ERROR and unreached(view):
            _defer(tsm, job_id)  # lost again: the next contact retries
        ran.append(view)
    return ran


def _run(tsm: Tsm, job_id: str, transport: Transport, perso: dict[int, bytes] | None = None) -> JobView:
    """Run a job after what waits for the device; JobFailed when it stops IN_ERROR."""
    with tsm.sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None  # just created
        se_id = job.se_id
    ran = {view.id: view for view in _run_waiting(tsm, se_id, transport)}
    view = ran[job_id] if job_id in ran and ran[job_id].state == engine.DONE else \
        engine.run(tsm, job_id, transport, perso=perso)
    if view.state == engine.IN_ERROR:
        raise JobFailed(view)
    return view


def _run_or_defer(tsm: Tsm, job_id: str, transport: Transport) -> bool:
    """Run a card-side lock or unlock now; False when the device did not answer (the job then waits for its
    next contact: a registry-side block never fails for an unreachable device)."""
    try:
        _run(tsm, job_id, transport)
    except JobFailed as exc:
        if not unreached(exc.job):
            raise
        _defer(tsm, job_id)
        return False
    return True


def _service_of_job(tsm: Tsm, job_id: str) -> str:
    with tsm.sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.service_id is not None  # an install-app job made its service
        return job.service_id


def _start(tsm: Tsm, service_id: str, operation: str) -> tuple[ServiceInstance, str, bool]:
    """The service row, its SP, and whether `operation` may start (False: already in its target state)."""
    with tsm.sessions() as db:
        service, _, sp = service_row(db, service_id, tsm.scope)
        db.expunge(service)
    return service, sp, states.check(operation, service.state, service_id)


# ---- open -------------------------------------------------------------------------------------------------------


def _sealer(tsm: Tsm, number: str | None) -> jobs.Order:
    if number is None:
        return jobs.Order()
    digits = checked_number(number)
    return jobs.Order(card_number_sealed=lambda service_id: seal_card_number(tsm, service_id, digits))


def _check_perso(app: AppView, number: str | None, given: dict[int, bytes]) -> None:
    """What the app's personalization needs from the caller is there before anything is ordered."""
    missing = [f"{i.dgi:04X}" for i in app.perso_items if i.source is Source.GIVEN and i.dgi not in given]
    if missing:
        raise InvalidRequest(f"app {app.id} personalizes DGI(s) {', '.join(missing)} given per card: --perso FILE")
    if number is None and any(i.source is Source.CARD_NUMBER for i in app.perso_items):
        raise InvalidRequest(f"app {app.id} personalizes a card number: --card-number N")


@dataclass(frozen=True)
class Ordered:
    """A service ordered for the device's next contact: the new instance and the job that installs it."""

    service_id: str
    job: JobView


def order(tsm: Tsm, se_id: str, app_id: str) -> Ordered:
    """Open card, ordered now and run later (by a worker, or at the device's next contact; ordered by the device
    itself, its job waits for that contact): eligibility checked, the service instance ORDERED and its install
    job planned. An app whose personalization needs data given per card (`DGI!`, a card number) is opened with
    `open_service` instead."""
    _check_perso(catalog.app(tsm, app_id), None, {})
    job_id = jobs.order(tsm, se_id, app_id)
    if tsm.scope.kind == "device":
        _defer(tsm, job_id)  # only the device itself runs it (its relay session): WAITING for its contact
    service_id = _service_of_job(tsm, job_id)
    _event(tsm, service_id, "open", None, f"ordered: job {job_id}")
    return Ordered(service_id, jobs.show(tsm, job_id, apdus=False))


def open_service(tsm: Tsm, se_id: str, app_id: str, transport: Transport, *, card_number: str | None = None,
                 perso: dict[int, bytes] | None = None) -> ServiceView:
    """Open card: order (eligibility checked) -> the SP's SSD if missing -> load -> install -> personalize (the
    card number and the app's key encrypted by the key service) -> activate."""
    if card_number is not None:
        checked_number(card_number)
    _check_perso(catalog.app(tsm, app_id), card_number, perso or {})
    spec = _sealer(tsm, card_number)
    job_id = jobs.order(tsm, se_id, app_id, spec)
    service_id = _service_of_job(tsm, job_id)
    _event(tsm, service_id, "open", None, f"ordered: job {job_id}",
           card_number=masked(card_number) if card_number else "")
    _run(tsm, job_id, transport, perso)
    return show(tsm, service_id)


# ---- lock, unlock, suspend, resume --------------------------------------------------------------------------------


def _block(tsm: Tsm, service_id: str, operation: str, transport: Transport | None) -> Outcome:
    """lock / suspend: blocked in the registry at once; the card-side lock now, or at the next contact."""
    service, _, go = _start(tsm, service_id, operation)
    if not go:
        return Outcome(show(tsm, service_id), f"already {service.state}")
    target = states.TARGET[operation]
    _cancel(tsm, _waiting(tsm, service_id, ("unlock-app",)))
    job_id = jobs.job_for(tsm, service_id, "lock-app", steps_for("lock-app"), _params(tsm, service_id, operation),
                          waiting=transport is None)
    _event(tsm, service_id, operation, target, f"blocked in the registry; card-side lock: job {job_id}",
           reason="reported lost" if operation == "lock" else "suspended")
    _meter(tsm, service_id, operation)
    if transport is None:
        return Outcome(show(tsm, service_id), f"{target}: the card-side lock waits for the device's next contact "
                                              f"(job {job_id})", job_id)
    if not _run_or_defer(tsm, job_id, transport):
        return Outcome(show(tsm, service_id), f"{target}: the device did not answer; the card-side lock waits for "
                                              f"its next contact (job {job_id})", job_id)
    return Outcome(show(tsm, service_id), f"{target}: locked on the card", job_id)


def _release(tsm: Tsm, service_id: str, operation: str, transport: Transport | None) -> Outcome:
    """unlock / resume: a card-side lock still waiting is cancelled; otherwise the card is unlocked now or at
    the next contact. The registry lets the service be used again at once."""
    service, _, go = _start(tsm, service_id, operation)
    if not go:
        return Outcome(show(tsm, service_id), f"already {service.state}")
    pending = _waiting(tsm, service_id, ("lock-app",))
    _cancel(tsm, pending)
    job_id = None
    if not pending or service.card_locked:
        job_id = jobs.job_for(tsm, service_id, "unlock-app", steps_for("unlock-app"),
                              _params(tsm, service_id, operation), waiting=transport is None)
    _event(tsm, service_id, operation, State.ACTIVE,
           f"card-side unlock: job {job_id}" if job_id else f"the waiting card-side lock {pending[0]} was cancelled",
           reason="")
    _meter(tsm, service_id, operation)
    if job_id is None:
        return Outcome(show(tsm, service_id), "active: the card was never locked")
    if transport is None:
        return Outcome(show(tsm, service_id), f"active: the card-side unlock waits for the device's next contact "
                                              f"(job {job_id})", job_id)
    if not _run_or_defer(tsm, job_id, transport):
        return Outcome(show(tsm, service_id), f"active: the device did not answer; the card-side unlock waits for "
                                              f"its next contact (job {job_id})", job_id)
    return Outcome(show(tsm, service_id), "active: unlocked on the card", job_id)


def lock(tsm: Tsm, service_id: str, transport: Transport | None = None) -> Outcome:
    """Report lost: ACTIVE -> LOCKED_LOST."""
    return _block(tsm, service_id, "lock", transport)


def unlock(tsm: Tsm, service_id: str, transport: Transport | None = None) -> Outcome:
    """Found again: LOCKED_LOST -> ACTIVE."""
    return _release(tsm, service_id, "unlock", transport)


def suspend(tsm: Tsm, service_id: str, transport: Transport | None = None) -> Outcome:
    """The SP suspends the service: ACTIVE -> SUSPENDED (locked on the card like a lost one)."""
    return _block(tsm, service_id, "suspend", transport)


def resume(tsm: Tsm, service_id: str, transport: Transport | None = None) -> Outcome:
    """SUSPENDED -> ACTIVE."""
    return _release(tsm, service_id, "resume", transport)


def observe(tsm: Tsm, service_id: str, transport: Transport) -> ServiceView:
    """The service with the card's view: what waits for the device runs, then the card's Registry (and a
    purse's balance) is read and recorded."""
    service, _, _ = _start(tsm, service_id, "show")
    purse = catalog.app(tsm, service.app_id).is_purse and service.state in states.ALLOWED["balance"]
    kind = "backup" if purse else "refresh"
    _run(tsm, jobs.job_for(tsm, service_id, kind, steps_for(kind), JobParams(operation="balance")), transport)
    return show(tsm, service_id)


# ---- purse: balance and top-up -------------------------------------------------------------------------------------


def _purse(tsm: Tsm, service: ServiceInstance) -> None:
    """InvalidRequest unless the service's app is a purse (before the card is reached)."""
    if not catalog.app(tsm, service.app_id).is_purse:
        raise InvalidRequest(f"app {service.app_id} of service {service.id} is not a purse")


def balance(tsm: Tsm, service_id: str, transport: Transport) -> ServiceView:
    """Read the purse's balance and counter from the card (and back them up)."""
    service, _, go = _start(tsm, service_id, "balance")
    _purse(tsm, service)
    if go:
        job_id = jobs.job_for(tsm, service_id, "backup", steps_for("backup"), JobParams(operation="balance"))
        _run(tsm, job_id, transport)
    return show(tsm, service_id)


def _order_topup(tsm: Tsm, service_id: str, amount: int, *, waiting: bool) -> tuple[str, str]:
    """Record a top-up order and its credit job (`waiting`: for the device's next contact): (order, job)."""
    if not 0 < amount <= MAX_AMOUNT:
        raise InvalidRequest(f"a top-up amount is 1 to {MAX_AMOUNT} minor units, not {amount}")
    _purse(tsm, _start(tsm, service_id, "topup")[0])
    order_id = jobs.new_id("top")
    job_id = jobs.job_for(tsm, service_id, "topup", steps_for("topup"), JobParams(operation="topup", topup=order_id),
                          waiting=waiting)
    with tsm.transaction() as db:
        db.add(TopUp(id=order_id, service_id=service_id, job_id=job_id, amount=amount, state="ordered",
                     created_at=now()))
    _event(tsm, service_id, "topup", None, f"top-up {order_id} of {amount} ordered: job {job_id}")
    return order_id, job_id


def _topup_view(tsm: Tsm, order_id: str) -> TopUpView:
    with tsm.sessions() as db:
        row = db.get(TopUp, order_id)
        assert row is not None  # just ordered
        return topup_view(row)


def topup(tsm: Tsm, service_id: str, amount: int, transport: Transport) -> TopUpView:
    """Top-up, two-phase: the order is recorded, then credited by a job that reads the purse before it sends
    the MACed credit and reads the new balance and counter back (tsm_core/jobs/purse.py)."""
    order_id, job_id = _order_topup(tsm, service_id, amount, waiting=False)
    _run(tsm, job_id, transport)
    return _topup_view(tsm, order_id)


def order_topup(tsm: Tsm, service_id: str, amount: int) -> TopUpView:
    """Top-up ordered for the device's next contact (a phone app's order): the credit job WAITS and runs, like
    `topup`'s, when a transport to the SE is at hand (`contact`, a device's relay session)."""
    return _topup_view(tsm, _order_topup(tsm, service_id, amount, waiting=True)[0])


# ---- delete, unsubscribe ------------------------------------------------------------------------------------------


def _params(tsm: Tsm, service_id: str, operation: str) -> JobParams:
    """A life-cycle job's parameters: the SP's SSD as the registry knows it now (its GP mode, AID and active key
    set: a key rotation of the SSD is followed), and the issuer's DM keys in Delegated Management."""
    with tsm.sessions() as db:
        service, _, sp = service_row(db, service_id, tsm.scope)
        se = registry.se_view(db, service.se_id)
    domain = se.domain_of(sp)
    keys = domain.active_key_set if domain is not None else None
    params = JobParams(operation=operation, sp=sp, mode=domain.mode if domain else "cm",
                       ssd_aid=domain.aid if domain else "", kvn=keys.kvn if keys else 0,
                       sp_key=keys.keys[0] if keys else "", diversification=keys.diversification if keys else "")
    return jobs.with_dm_keys(tsm, params, se.profile.scp) if params.mode == "dm" else params


def _delete_job(tsm: Tsm, service_id: str, operation: str, *, backup: bool, waiting: bool) -> str:
    _cancel(tsm, _waiting(tsm, service_id, ("lock-app", "unlock-app")))
    return jobs.job_for(tsm, service_id, "delete-app", steps_for("delete-app", backup=backup),
                        _params(tsm, service_id, operation), waiting=waiting)


def delete(tsm: Tsm, service_id: str, transport: Transport) -> Outcome:
    """Delete the instance from the card (and its load file and the SP's SSD when nothing else uses them)."""
    if not _start(tsm, service_id, "delete")[2]:
        return Outcome(show(tsm, service_id), "already deleted")
    job_id = _delete_job(tsm, service_id, "delete", backup=False, waiting=False)
    _event(tsm, service_id, "delete", None, f"deletion ordered: job {job_id}")
    _run(tsm, job_id, transport)
    return Outcome(show(tsm, service_id), "deleted")


def unsubscribe(tsm: Tsm, service_id: str, transport: Transport | None = None) -> Outcome:
    """The holder ends the service: a purse's remaining balance is read (or, with the device out of reach, taken
    from the last backup) and recorded for refund; the instance is deleted now or at the next contact."""
    service, _, go = _start(tsm, service_id, "unsubscribe")
    if not go:
        return Outcome(show(tsm, service_id), "already deleted")
    purse = catalog.app(tsm, service.app_id).is_purse
    job_id = _delete_job(tsm, service_id, "unsubscribe", backup=purse and transport is not None,
                         waiting=transport is None)
    if transport is not None:
        _run(tsm, job_id, transport)
    view = show(tsm, service_id)
    refund = f"refund {view.balance} (minor units, balance as of {view.backed_up_at:%Y-%m-%d %H:%M:%S} UTC)" \
        if purse and view.balance is not None and view.backed_up_at else "nothing to refund"
    _event(tsm, service_id, "unsubscribe", None, refund)
    where = "deleted" if transport is not None else f"deletion waits for the device's next contact (job {job_id})"
    return Outcome(show(tsm, service_id), f"unsubscribed: {refund}; {where}", job_id)


# ---- device change and re-issue -------------------------------------------------------------------------------------


def _successor(tsm: Tsm, service_id: str) -> str | None:
    """A live service that replaces `service_id` (a device change or re-issue begun before)."""
    with tsm.sessions() as db:
        return db.execute(select(ServiceInstance.id).where(ServiceInstance.previous_id == service_id,
                                                           ServiceInstance.live.is_(True))).scalar_one_or_none()


def _carry(tsm: Tsm, old: ServiceInstance, operation: str, new_number: str | None) -> jobs.Order:
    """The new instance's order: the backed-up balance, and the card number (kept, or a new one)."""
    number = checked_number(new_number) if new_number is not None else \
        unseal_card_number(tsm, old.id, old.card_number_sealed) if old.card_number_sealed else None
    sealer = _sealer(tsm, number)
    return jobs.Order(operation=operation, balance=old.balance, previous_id=old.id,
                      card_number_sealed=sealer.card_number_sealed)


def _resume_successor(tsm: Tsm, service_id: str, transport: Transport) -> ServiceView | None:
    """The replacement of a device change or re-issue begun before, its install resumed; None when there is none
    or the old instance is still live on its SE (its own side goes first)."""
    show(tsm, service_id)  # NotFound outside the caller's tenancy
    existing = _successor(tsm, service_id)
    if existing is None:
        return None
    with tsm.sessions() as db:
        old = db.get(ServiceInstance, service_id)
        job_id = db.execute(select(Job.id).where(Job.service_id == existing, Job.kind == "install-app")
                            .order_by(Job.created_at.desc())).scalars().first()
    if old is not None and old.live and old.state == State.MIGRATING and not _waiting(tsm, service_id,
                                                                                       ("delete-app",)):
        return None  # the old side's deletion is to be run (or resumed) first
    if job_id is not None and show(tsm, existing).state != State.ACTIVE:
        _run(tsm, job_id, transport)
    return show(tsm, existing)


def _install_successor(tsm: Tsm, old: ServiceInstance, to_se: str, transport: Transport, operation: str,
                       new_number: str | None) -> ServiceView:
    existing = _successor(tsm, old.id)
    if existing is not None:
        return _resume_successor(tsm, old.id, transport) or show(tsm, existing)
    spec = _carry(tsm, old, operation, new_number)
    job_id = jobs.order(tsm, to_se, old.app_id, spec)
    new_id = _service_of_job(tsm, job_id)
    _event(tsm, new_id, operation, None, f"replaces {old.id} of SE {old.se_id}: job {job_id}",
           card_number=masked(new_number) if new_number else old.card_number)
    _run(tsm, job_id, transport)
    return show(tsm, new_id)


def _replaceable(tsm: Tsm, service_id: str, to_se: str, operation: str) -> ServiceInstance:
    """The service a device change or re-issue (`operation`) starts from, onto another registered SE."""
    service, _, _ = _start(tsm, service_id, operation)
    registry.show(tsm, to_se)
    if to_se == service.se_id:
        raise InvalidRequest(f"service {service_id} already lives on SE {to_se}")
    return service


def migrate(tsm: Tsm, service_id: str, to_se: str, transport: Transport,
            from_transport: Transport | None = None) -> ServiceView:
    """Device change: migrate out (the purse read and saved server-side; the old instance deleted now, or at
    the old device's next contact) -> migrate in on the new SE (install, personalize with the saved balance).
    Called again after a failure, it resumes: the old side's job, then the same new instance's."""
    resumed = _resume_successor(tsm, service_id, transport)
    if resumed is not None:
        return resumed
    service = _replaceable(tsm, service_id, to_se, "migrate")
    if service.state != State.MIGRATING:
        _event(tsm, service_id, "migrate", State.MIGRATING, f"moving to SE {to_se}")
    purse = catalog.app(tsm, service.app_id).is_purse
    out = _migrate_out_job(tsm, service_id, backup=purse and from_transport is not None,
                           waiting=from_transport is None)
    state = jobs.show(tsm, out, apdus=False).state
    if from_transport is not None and state != engine.DONE:
        _run(tsm, out, from_transport)
    elif from_transport is None and state in (engine.PENDING, engine.IN_ERROR):
        _defer(tsm, out)  # the old device is out of reach now: its side at its next contact
    with tsm.sessions() as db:
        old = db.get(ServiceInstance, service_id)
        assert old is not None
        db.expunge(old)
    return _install_successor(tsm, old, to_se, transport, "migrate", None)


def _migrate_out_job(tsm: Tsm, service_id: str, *, backup: bool, waiting: bool) -> str:
    """The old SE's deletion job of a device change (one, resumed if begun)."""
    with tsm.sessions() as db:
        found = db.execute(select(Job.id).where(Job.service_id == service_id, Job.kind == "delete-app",
                                                Job.state.not_in((engine.CANCELLED,)))
                           .order_by(Job.created_at.desc())).scalars().first()
    if found is not None:
        return found
    return _delete_job(tsm, service_id, "migrate-out", backup=backup, waiting=waiting)


def reissue(tsm: Tsm, service_id: str, to_se: str, transport: Transport, *,
            new_card_number: str | None = None) -> ServiceView:
    """Re-issue onto a new SE from the server-side backup (balance, card number; a new number if given); the old
    instance is blocked at once and deleted at the old device's next contact."""
    resumed = _resume_successor(tsm, service_id, transport)
    if resumed is not None:
        return resumed
    service = _replaceable(tsm, service_id, to_se, "reissue")
    if _successor(tsm, service_id) is None:
        old_number = f"; card number {service.card_number} blocked" if new_card_number and service.card_number \
            else ""
        _event(tsm, service_id, "reissue", State.MIGRATING, f"re-issued onto SE {to_se}{old_number}",
               reason=f"re-issued onto SE {to_se}")
        _migrate_out_job(tsm, service_id, backup=False, waiting=True)
    return _install_successor(tsm, service, to_se, transport, "reissue", new_card_number)
