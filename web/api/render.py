"""The service layers' records as the API's documents (web/api/schemas.py); operations are jobs seen from
outside: their state mapped to PENDING -> WAITING_DEVICE -> RUNNING -> SUCCEEDED | FAILED | CANCELLED and their
progress counted in steps done (docs/api.md, "Operations")."""

from __future__ import annotations

from typing import Any, Final

from tsm_core.catalog.views import AppView
from tsm_core.jobs.views import JobView
from tsm_core.lifecycle.views import ServiceView
from tsm_core.registry.views import SeView

OPERATION_STATE: Final = {
    "pending": "PENDING",
    "waiting": "WAITING_DEVICE",
    "running": "RUNNING",
    "done": "SUCCEEDED",
    "in_error": "FAILED",
    "cancelled": "CANCELLED",
}
STEP_DONE: Final = frozenset({"done", "present"})
"""Step states of a step that needs nothing more (tsm_core/jobs/engine.py)."""


def secure_element(view: SeView) -> dict[str, Any]:
    """An SE without key labels (key versions only)."""
    return {"id": view.id, "cin": view.cin, "iin": view.iin, "cplc": view.cplc, "device_kind": view.device_kind,
            "profile": view.profile.name, "vendor": view.vendor, "life_cycle": view.life_cycle,
            "free_nv": view.free_nv, "registered_at": view.registered_at, "seen_at": view.seen_at,
            "domains": [{"aid": d.aid, "parent_aid": d.parent_aid, "mode": d.mode, "sp": d.sp,
                         "privileges": d.privileges, "life_cycle": d.life_cycle, "nv_quota": d.nv_quota,
                         "key_versions": [{"kvn": k.kvn, "diversification": k.diversification, "active": k.active}
                                          for k in d.key_sets]} for d in view.domains],
            "content": [{"aid": e.aid, "kind": e.kind, "life_cycle": e.life_cycle, "associated_sd": e.associated_sd}
                        for e in view.content]}


def app(view: AppView) -> dict[str, Any]:
    """An app of the catalog (never its key label or personalization profile)."""
    return {"id": view.id, "sp": view.sp, "name": view.name, "instance_aid": view.instance_aid,
            "review": view.review, "target_profiles": list(view.target_profiles), "purse": view.is_purse,
            "load_file": {"package_aid": view.load_file.package_aid, "version": view.load_file.version,
                          "size": view.load_file.size, "sha256": view.load_file.sha256},
            "submitted_at": view.submitted_at}


def service(view: ServiceView) -> dict[str, Any]:
    return {"id": view.id, "se_id": view.se_id, "app_id": view.app_id, "sp": view.sp,
            "instance_aid": view.instance_aid, "state": view.state, "card_locked": view.card_locked,
            "reason": view.reason, "card_number": view.card_number, "balance": view.balance,
            "created_at": view.created_at, "updated_at": view.updated_at,
            "operations": [job_id for job_id, _, _ in view.jobs],
            "history": [{"at": e.at, "operation": e.operation, "from_state": e.from_state, "to_state": e.to_state,
                         "detail": e.detail} for e in view.history]}


def _steps(view: JobView) -> list[dict[str, Any]]:
    return [{"name": s.name, "state": s.state, "finished_at": s.finished_at} for s in view.steps]


def operation(view: JobView) -> dict[str, Any]:
    done = sum(1 for s in view.steps if s.state in STEP_DONE)
    progress = 100 if view.state == "done" else done * 100 // max(len(view.steps), 1)
    return {"id": view.id, "kind": view.kind, "state": OPERATION_STATE.get(view.state, "PENDING"),
            "progress": progress, "se_id": view.se_id, "app_id": view.app_id, "error": view.error,
            "created_at": view.created_at, "finished_at": view.finished_at, "steps": _steps(view)}


def job(view: JobView) -> dict[str, Any]:
    return {"id": view.id, "kind": view.kind, "se_id": view.se_id, "app_id": view.app_id, "state": view.state,
            "error": view.error, "attempts": view.attempts, "created_at": view.created_at,
            "finished_at": view.finished_at, "steps": _steps(view)}
