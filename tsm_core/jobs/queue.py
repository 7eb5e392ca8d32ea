"""Scale-out execution of provisioning jobs on Procrastinate, a PostgreSQL task queue (no broker besides
PostgreSQL): `enqueue` defers a job as a task whose Procrastinate lock is the SE id, so a second job of the same
SE waits until the first has ended, across every worker process; the engine's own claim (engine.py) stays the
guarantee inside the TSM's tables.

A worker process runs `worker(...)`: it takes tasks of the `provisioning` queue, reaches each SE through the
card opener it was given (the phone relay in production, simulated cards in tests and benchmarks) and runs the
job with `engine.run`. A job that ends IN_ERROR is a completed task: the job records why; the task fails only
when the job could not start (another worker holds the SE).

The embedded default (SQLite) runs jobs in-process (`tsm job run`); Procrastinate needs PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Final

from procrastinate import App, PsycopgConnector
from sqlalchemy import make_url

from tsm_core.context import Tsm
from tsm_core.errors import InvalidRequest
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.jobs.views import JobView
from tsm_core.transport.base import Transport

TASK: Final = "tsm.run_job"
QUEUE: Final = "provisioning"
CardOpener = Callable[[str], AbstractContextManager[Transport]]
"""SE id -> a transport to that SE for the duration of one job."""
PersoSource = Callable[[JobView], dict[int, bytes] | None]
"""A job -> the sensitive DGIs of its card's personalization (`DGI!` in the app's profile), e.g. from the SP's data
preparation; given to `engine.run` for that run only, never stored."""


def conninfo(database_url: str) -> str:
    """The libpq connection string of a PostgreSQL SQLAlchemy URL (Procrastinate speaks psycopg directly)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise InvalidRequest("the job queue needs PostgreSQL (database_url postgresql+psycopg://...); the embedded "
                             "SQLite default runs jobs in-process with `tsm job run`")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(database_url: str) -> App:
    """A Procrastinate app on the TSM's PostgreSQL database (its tables come with the Alembic migrations)."""
    return App(connector=PsycopgConnector(conninfo=conninfo(database_url)))


def enqueue(app: App, tsm: Tsm, job_id: str) -> int:
    """Defer a job: locked on its SE (one job at a time per SE), queued once (queueing lock = job id)."""
    view = jobs.show(tsm, job_id, apdus=False)
    if view.state == engine.DONE:
        raise InvalidRequest(f"job {job_id} is done")
    with app.open():
        return app.configure_task(TASK, queue=QUEUE, lock=view.se_id, queueing_lock=job_id).defer(job_id=job_id)


def bind(app: App, context: Callable[[], Tsm], cards: CardOpener, perso: PersoSource | None = None) -> None:
    """Make this process's task run jobs: `context` gives the TSM context (the worker's service identity), `perso`
    the sensitive DGIs of a job's card (none without it: a job that needs them ends IN_ERROR and says which)."""

    def run_job(job_id: str) -> None:
        tsm = context()
        view = jobs.show(tsm, job_id, apdus=False)
        with cards(view.se_id) as transport:
            engine.run(tsm, job_id, transport, perso=perso(view) if perso is not None else None)

    app.task(name=TASK, queue=QUEUE)(run_job)
