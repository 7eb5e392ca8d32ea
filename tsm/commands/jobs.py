"""`tsm job ...`, `tsm sd create`: provisioning jobs, run in this process against a card
in a reader or a simulated card (docs/cli.md, docs/tsm.md)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from storage.config import load_settings
from tsm.cards import card_options, card_transport, require_card
from tsm.identity import worker_service
from tsm.output import emit_json, json_option, table
from tsm.service import key_service, tsm_context
from tsm.service import sessions as _context_sessions
from tsm_core.context import Tsm
from tsm_core.errors import InvalidRequest, TsmCoreError
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.jobs.views import JobView
from tsm_core.registry import service as registry
from tsm_core.transport.base import Transport

if TYPE_CHECKING:
    from tsm_core.jobs.queue import CardOpener


class JobInError(TsmCoreError):
    """The job stopped IN_ERROR; running it again resumes it."""

    code = "job_in_error"
    status = 409


def run_now(tsm: Tsm, job_id: str, reader: str | None, card_path: Path | None,
            perso: dict[int, bytes] | None = None, *, relay: str | None = None,
            listen: tuple[str, int] | None = None) -> JobView:
    """Run a job against the card given on the command line (with --relay, the job's SE behind the phone)."""
    se_id = None if relay is None else jobs.show(tsm, job_id, apdus=False).se_id
    with card_transport(reader, card_path, relay, se_id=se_id, listen=listen, job_id=job_id) as transport:
        return engine.run(tsm, job_id, transport, perso=perso)


def print_job(view: JobView) -> None:
    """The steps, then the job id on the last line; a job that stopped is the one-line error."""
    table(("STEP", "STATE", "DETAIL"), [(s.name, s.state, s.detail) for s in view.steps])
    if view.state == engine.IN_ERROR:
        raise JobInError(f"job {view.id} stopped: {view.error} (`tsm job run {view.id}` resumes it)")
    click.echo(view.id)


def perso_file(path: Path | None) -> dict[int, bytes] | None:
    """A card's sensitive DGIs: a JSON object {"8101": "hex", ...}; never stored."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        return {int(tag, 16): bytes.fromhex(value) for tag, value in dict(data).items()}
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{path.name}: personalization data is a JSON object of DGI: hex ({exc})") from None


@click.group("job")
def job_group() -> None:
    """Provisioning jobs: run (or resume), show, list."""


@job_group.command("run")
@click.argument("job_id", metavar="JOB")
@card_options
@click.option("--perso", "perso_path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="This card's sensitive DGIs, JSON {\"8101\": \"hex\"}: encrypted for the card, never stored.")
def job_run(job_id: str, reader: str | None, card_path: Path | None, relay: str | None,
            relay_listen: tuple[str, int] | None, perso_path: Path | None) -> None:
    """Run or resume a job; each step runs after the card was asked whether it is already done."""
    require_card(reader, card_path, relay)
    print_job(run_now(tsm_context(), job_id, reader, card_path, perso_file(perso_path), relay=relay,
                      listen=relay_listen))


@job_group.command("enqueue")
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True)
def job_enqueue(job_ids: tuple[str, ...]) -> None:
    """Queue jobs for the workers (PostgreSQL): one job at a time per SE, whichever worker takes it."""
    from tsm_core.jobs import queue  # Procrastinate only when jobs are queued: it slows every command's start

    tsm = tsm_context()
    app = queue.make_app(load_settings().database_url)
    for job_id in job_ids:
        click.echo(f"{job_id} queued (task {queue.enqueue(app, tsm, job_id)})")


def _card_files(folder: Path) -> CardOpener:
    """Simulated cards by SE id: FOLDER/<SE id>.json state files."""

    def opener(se_id: str) -> AbstractContextManager[Transport]:
        return card_transport(None, folder / f"{se_id}.json")

    return opener


@job_group.command("worker")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Jobs run at once by this process (for different SEs).")
@click.option("--cards", "cards_dir", required=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Simulated cards, one state file per SE named <SE id>.json (phones: `tsm job run JOB "
                   "--relay SESSION`).")
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit (else wait for more).")
def job_worker(concurrency: int, cards_dir: Path, once: bool) -> None:
    """Run queued jobs and send webhooks (PostgreSQL, Procrastinate): start one worker process per core."""
    from tsm_core.jobs import queue  # Procrastinate only when jobs are queued: it slows every command's start
    from tsm_core.webhooks import tasks

    settings = load_settings()
    app = queue.make_app(settings.database_url)

    def context() -> Tsm:
        return Tsm(_context_sessions(), key_service(), worker_service())

    queue.bind(app, context, _card_files(cards_dir))
    tasks.bind(app, context)
    with app.open():
        app.run_worker(queues=[queue.QUEUE, tasks.QUEUE], concurrency=concurrency, wait=not once,
                       install_signal_handlers=True)


@job_group.command("show")
@click.argument("job_id", metavar="JOB")
@json_option
def job_show(job_id: str, as_json: bool) -> None:
    """A job, its steps and its APDU log (headers and status words, never data)."""
    view = jobs.show(tsm_context(), job_id)
    if as_json:
        emit_json(view)
        return
    click.echo(f"job        {view.id}  {view.kind}  SE {view.se_id}{'  app ' + view.app_id if view.app_id else ''}")
    click.echo(f"state      {view.state}{'  — ' + view.error if view.error else ''}")
    click.echo(f"attempts   {view.attempts}   requested by {view.requested_by}")
    click.echo("")
    table(("STEP", "STATE", "DETAIL"), [(s.name, s.state, s.detail) for s in view.steps])
    if view.apdus:
        click.echo("")
        table(("STEP", "HEADER", "LC", "SW", "µs"), [(a.step, a.header, a.lc, a.sw, a.micros) for a in view.apdus])


@job_group.command("list")
@click.option("--se", "se_id", default=None, metavar="SE", help="Only this SE's jobs.")
@json_option
def job_list(se_id: str | None, as_json: bool) -> None:
    """The most recent jobs."""
    found = jobs.list_jobs(tsm_context(), se_id)
    if as_json:
        emit_json(found)
        return
    table(("JOB", "KIND", "SE", "APP", "STATE", "STEPS", "CREATED"),
          [(j.id, j.kind, j.se_id, j.app_id, j.state, f"{sum(s.state in ('done', 'present') for s in j.steps)}/"
            f"{len(j.steps)}", f"{j.created_at:%Y-%m-%d %H:%M:%S}") for j in found])


@click.group("sd")
def sd_group() -> None:
    """Security domains."""


@sd_group.command("create")
@click.argument("se_id", metavar="SE")
@click.option("--sp", required=True, help="The service provider the SSD is for.")
@click.option("--mode", type=click.Choice(registry.SD_MODES), required=True,
              help="cm issuer-centric, am Authorized Management, dm Delegated Management.")
@click.option("--aid", default=None, metavar="AID", help="The SSD's AID (default: from the SP's number).")
@click.option("--nv-quota", type=click.IntRange(0, 0xFFFFFFFF), default=None,
              help="Non-volatile memory quota of the SSD and its apps (C8), bytes.")
@click.option("--volatile-quota", type=click.IntRange(0, 0xFFFFFFFF), default=None, help="Volatile quota (C7).")
@card_options
def sd_create(se_id: str, sp: str, mode: str, aid: str | None, nv_quota: int | None, volatile_quota: int | None,
              reader: str | None, card_path: Path | None, relay: str | None,
              relay_listen: tuple[str, int] | None) -> None:
    """Create an SP's SSD on an SE and put the SP's keys in it, as a job run now; the job id is the last line."""
    require_card(reader, card_path, relay)
    tsm = tsm_context()
    job_id = jobs.create_ssd(tsm, se_id, sp, mode, aid, nv_quota=nv_quota, volatile_quota=volatile_quota)
    print_job(run_now(tsm, job_id, reader, card_path, relay=relay, listen=relay_listen))
