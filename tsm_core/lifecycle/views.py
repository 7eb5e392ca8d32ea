"""What the life-cycle service tells its callers: service instances with their history, top-ups, as records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tsm_core.catalog.models import App
from tsm_core.errors import NotFound
from tsm_core.jobs.models import Job
from tsm_core.lifecycle.models import ServiceEvent, TopUp
from tsm_core.registry.models import CardEntry, ServiceInstance, Tenant
from tsm_core.tenancy import Scope


@dataclass(frozen=True)
class EventView:
    """One entry of a service's history."""

    at: datetime
    operation: str
    from_state: str
    to_state: str
    detail: str
    job_id: str | None
    actor: str


@dataclass(frozen=True)
class ServiceView:
    """A service instance: where it lives, its state, its backup and history, the jobs on it."""

    id: str
    se_id: str
    app_id: str
    sp: str
    instance_aid: str
    state: str
    card_locked: bool
    reason: str
    seen: str
    card_number: str
    """Masked (all but the last four digits)."""
    balance: int | None
    purse_counter: int | None
    backed_up_at: datetime | None
    previous_id: str
    created_at: datetime
    updated_at: datetime
    history: tuple[EventView, ...]
    jobs: tuple[tuple[str, str, str], ...]
    """(job id, kind, state) of the jobs on this service, oldest first."""
    card_life_cycle: int | None
    """The instance's life cycle as the card last showed it (None: the card does not show it)."""

    @property
    def waiting(self) -> tuple[str, ...]:
        """Jobs queued for the device's next contact."""
        return tuple(job for job, _, state in self.jobs if state == "waiting")


@dataclass(frozen=True)
class TopUpView:
    """A top-up order and what the purse showed around it."""

    id: str
    service_id: str
    job_id: str | None
    amount: int
    state: str
    balance_before: int | None
    balance_after: int | None
    counter_after: int | None


def service_row(db: Session, service_id: str, scope: Scope) -> tuple[ServiceInstance, App, str]:
    """The service, its app and its SP's name, or NotFound (also for a service outside the scope)."""
    service = db.get(ServiceInstance, service_id)
    app = db.get(App, service.app_id) if service is not None else None
    sp = db.get(Tenant, app.sp_id) if app is not None else None
    if service is None or app is None or sp is None or not scope.sees_service(sp.name, service.se_id):
        raise NotFound(f"no service {service_id!r} (tsm service list)")
    return service, app, sp.name


def service_view(db: Session, service_id: str, scope: Scope) -> ServiceView:
    service, app, sp = service_row(db, service_id, scope)
    events = db.execute(select(ServiceEvent).where(ServiceEvent.service_id == service_id)
                        .order_by(ServiceEvent.id)).scalars()
    jobs = db.execute(select(Job.id, Job.kind, Job.state).where(Job.service_id == service_id)
                      .order_by(Job.created_at)).all()
    entry = db.execute(select(CardEntry.life_cycle).where(CardEntry.se_id == service.se_id,
                                                          CardEntry.aid == app.instance_aid)).scalar_one_or_none()
    return ServiceView(service.id, service.se_id, app.id, sp, app.instance_aid, service.state, service.card_locked,
                       service.reason, service.seen, service.card_number, service.balance, service.purse_counter,
                       service.backed_up_at, service.previous_id, service.created_at, service.updated_at,
                       tuple(EventView(e.at, e.operation, e.from_state, e.to_state, e.detail, e.job_id, e.actor)
                             for e in events),
                       tuple((j.id, j.kind, j.state) for j in jobs),
                       None if service.live is None else entry)


def topup_view(row: TopUp) -> TopUpView:
    return TopUpView(row.id, row.service_id, row.job_id, row.amount, row.state, row.balance_before,
                     row.balance_after, row.counter_after)
