"""What a finished job means for its service instance, in the transaction that ends the job: the service's
new state (docs/lifecycle.md), its history, and the metering event of a completed operation.

A job that ends IN_ERROR puts an install or a deletion IN_ERROR with the reason and what the card was last seen to
hold for the instance (no automatic rollback); a failed lock, unlock, top-up or read leaves the service's state
as it is and records the reason (running the job again resumes it).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from tsm_core.billing import service as billing
from tsm_core.catalog.models import App
from tsm_core.catalog.perso import BALANCE, Source, parse
from tsm_core.context import now
from tsm_core.jobs.models import Job
from tsm_core.jobs.plan import JobParams
from tsm_core.lifecycle.models import ServiceEvent, TopUp
from tsm_core.registry.models import CardEntry, SecureElement, ServiceInstance

DONE_STATE: Final = {"install-app": "active", "delete-app": "deleted"}
ERROR_STATE: Final = {"install-app": "in_error", "delete-app": "in_error"}
METERED: Final = frozenset({"open", "migrate", "reissue", "delete", "unsubscribe", "topup"})
"""Operations metered when their job completes; lock, unlock, suspend and resume are metered when the registry
blocks or releases the service (tsm_core/lifecycle/service.py), whenever the card follows."""


def seen(db: Session, service: ServiceInstance, instance_aid: str) -> str:
    """What the registry last saw of the instance on the card, and when."""
    se = db.get(SecureElement, service.se_id)
    when = f" (card last read {se.seen_at:%Y-%m-%d %H:%M:%S} UTC)" if se is not None and se.seen_at else ""
    entry = db.execute(select(CardEntry).where(CardEntry.se_id == service.se_id,
                                               CardEntry.aid == instance_aid)).scalar_one_or_none()
    if entry is None:
        return f"the card does not show {instance_aid}{when}"
    return (f"the card shows {instance_aid} with life cycle {entry.life_cycle:02X}"
            f"{', associated with ' + entry.associated_sd if entry.associated_sd else ''}{when}")


def record(db: Session, job: Job, state: str, error: str, actor: str) -> None:
    """The service-side meaning of job `job` ending in `state` ("done" or "in_error")."""
    if job.service_id is None:
        return
    service = db.get(ServiceInstance, job.service_id)
    app = db.get(App, service.app_id) if service is not None else None
    if service is None or app is None:
        return
    params = JobParams.loads(job.params)
    operation = params.operation or job.kind
    before = service.state
    if state == "done":
        _done(db, job, service, app, params)
        detail = f"job {job.id} done"
    else:
        service.reason = error
        if job.kind in ERROR_STATE and operation != "migrate-out":  # a device change stays MIGRATING
            service.state = ERROR_STATE[job.kind]
            service.seen = seen(db, service, app.instance_aid)
        detail = f"job {job.id}: {error}"
    service.updated_at = now()
    db.add(ServiceEvent(service_id=service.id, operation=operation, from_state=before, to_state=service.state,
                        detail=detail[:2000], job_id=job.id, actor=actor, at=now()))
    if state == "done" and operation in METERED:
        se = db.get(SecureElement, service.se_id)
        kind = se.device_kind if se is not None else ""
        if job.kind == "install-app":
            billing.meter(db, sp_id=app.sp_id, operation="download", app_id=app.id, se_id=service.se_id,
                          se_kind=kind, service_id=service.id, job_id=job.id)
        billing.meter(db, sp_id=app.sp_id, operation=operation, app_id=app.id, se_id=service.se_id, se_kind=kind,
                      service_id=service.id, job_id=job.id)


def _done(db: Session, job: Job, service: ServiceInstance, app: App, params: JobParams) -> None:
    if job.kind in DONE_STATE:
        service.state = DONE_STATE[job.kind]
        service.reason = ""
    if job.kind == "delete-app":
        service.live = None
        service.card_locked = False
        service.seen = f"deleted from the card by job {job.id}"
    elif job.kind == "lock-app":
        service.card_locked = True
    elif job.kind == "unlock-app":
        service.card_locked = False
    elif job.kind == "install-app":
        service.seen = f"installed and activated by job {job.id}"
        purse = next((i for i in parse(app.perso) if i.source is Source.PURSE), None)
        if purse is not None:  # the first backup: what was personalized
            service.balance = params.balance if params.balance is not None else \
                int.from_bytes(purse.value[BALANCE], "big")
            service.purse_counter, service.backed_up_at = 0, now()
    elif job.kind == "topup":
        order = db.get(TopUp, params.topup)
        if order is not None and order.state == "credited":
            service.balance, service.purse_counter = order.balance_after, order.counter_after
            service.backed_up_at = order.finished_at
