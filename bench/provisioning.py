"""Full provisioning of secure elements against in-process cards, PostgreSQL and the job engine, against the leanest
host in the same run; registry lookups with a million SEs (issue 9 targets).

    .venv/bin/python bench/provisioning.py [--cards 100] [--rounds 3] [--ses 100000] [--seconds 2] [--page 100]
        [--database-url postgresql+psycopg://root@127.0.0.1:5432/postgres] [--profile]

Setup (not measured): a scratch test token and a throwaway PostgreSQL database (bench/scratch.py: `tsm init`'s
path, `storage.session.upgrade`), the vendor's ISD and initial SSD keys imported, SP `transitco` (issuer-centric)
with the transit app (its 10,277-byte Load File Data Block, personalization `0101=...` plain and `8001!` given per
card) submitted and approved; per measurement `--cards` wearable cardsim cards discovered (`discover_se`) and an order
placed for each (`jobs.order`: SSD, SSD keys, LOAD, INSTALL, extradition, personalization, activation).

Measured, per round, each on its own fresh cards, as SEs provisioned per second:
(a) the baseline (1.00): bench/raw_provisioning.py, the same card dialog from a minimal SCP03 host in pure
    `cryptography` (no HSM, no database, no audit, no probes);
(b) the job engine in this process: `engine.run` per job over a `LocalTransport`;
(c), (d) Procrastinate with 1 and 2 worker processes (`queue.bind`, `run_worker(wait=False)`): the jobs are queued
    first; each worker opens the key service, runs one warm-up job, and starts with the others; the time runs
    from the start to the last worker's end. A worker reaches an SE's card by loading the state file discovery
    left (like `tsm job worker --cards DIR`), and gets the card's sensitive DGI from a per-SE derivation (the
    SP's data preparation in production).
A job that does not end DONE is not counted (its error is printed). Prints SEs/s and the ratio to (a) as min /
median / max of the rounds, with the load average of the machine before and after. Then `--ses` SEs are bulk-loaded
(bench/registry_lookups.py) and `registry.show` and `registry.list_ses` (`--page` SEs after a random id) are
timed for `--seconds` each per round against a raw primary-key SELECT through psycopg: p50 and p99 in µs.
`--profile` adds where an in-process job's time goes: CPU of this process and of PostgreSQL, SQL statements and
transactions per job, and a cProfile by package and by function.
Targets: >= 50 SEs/s with the job engine on this 2-core machine (2 worker processes); p50/p99 of the lookups
with 1,000,000 SEs (docs/performance.md).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import multiprocessing
import multiprocessing.synchronize
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from profiling import cpu_split, spread, sql_and_cprofile
from raw_provisioning import Command, Dialog, provision
from registry_lookups import bulk_load, time_lookups
from scratch import scratch_settings
from workers import collect

from cardsim.capbuild import demo_cap
from cardsim.card import Card
from cardsim.state import load_card, new_card, save_card
from globalplatform import tlv
from globalplatform.apdu import CommandApdu
from globalplatform.keys import KeyAlgorithm
from globalplatform.scp import Scp, SecurityLevel
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.runtime import open_service
from keyservice.views import NewKey
from storage.config import Settings
from storage.session import make_engine, session_factory
from tsm_core.catalog import service as catalog
from tsm_core.catalog.views import AppView
from tsm_core.context import Tsm
from tsm_core.gp import commands, install, storedata
from tsm_core.gp.getstatus import Privilege
from tsm_core.jobs import engine, queue
from tsm_core.jobs import service as jobs
from tsm_core.jobs.content import install_parameters
from tsm_core.jobs.views import JobView
from tsm_core.registry import discovery
from tsm_core.registry import service as registry
from tsm_core.registry.views import SeView
from tsm_core.transport.local import LocalTransport

SERVER: Final = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
VENDOR_KEY: Final = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
"""The wearable profile's ISD key (KVN FF, not diversified) and cardsim's initial SSD key."""
PROFILE: Final = "wearable"
SP: Final = "transitco"
INSTANCE: Final = "F00000000101010101"
PURSE: Final = "0978" + "000003E8" + "00002710" + "0000012C"
"""DGI 0101 of the transit purse: currency, balance, max balance, max debit (cardsim/applets/transit.py)."""
TOPUP_DGI: Final = 0x8001
OFFICER: Final = Caller("bench-officer", CallerKind.OFFICER)
WORKER: Final = Caller("bench-worker", CallerKind.SERVICE)
GIVEN: Final = discovery.Discovery(keys=("vendor-isd",), device_kind="wearable", initial_ssd_key="vendor-ssd")


def perso(se_id: str) -> dict[int, bytes]:
    """The card's sensitive DGI (the purse's top-up key), derived from its SE id."""
    return {TOPUP_DGI: hashlib.sha256(b"bench top-up key " + se_id.encode()).digest()[:16]}


@dataclass(frozen=True)
class Bench:
    """The scratch installation: settings, the officer's and the worker's TSM contexts, the app, the cards."""

    settings: Settings
    officer: Tsm
    worker: Tsm
    app: AppView
    cards_dir: Path
    failed: Counter[str]
    """Errors of the measured jobs that did not end DONE."""


@dataclass(frozen=True)
class Prepared:
    """A discovered SE with its ordered job and its card (also saved under the cards directory)."""

    job_id: str
    se_id: str
    card: Card


def setup(database_url: str) -> Bench:
    """Scratch token and database, the vendor's keys, the SP and its approved transit app."""
    if not database_url.startswith("postgresql"):
        raise SystemExit("the job queue needs PostgreSQL: --database-url postgresql+psycopg://...")
    settings = scratch_settings("bench-prov", database_url)
    service = open_service(settings)
    sessions = session_factory(make_engine(settings.database_url, settings.database_busy_timeout))
    officer, worker = Tsm(sessions, service, OFFICER), Tsm(sessions, service, WORKER)
    for label, usage in (("vendor-isd", KeyUsage.ISD_KEYSET), ("vendor-ssd", KeyUsage.SSD_KEYSET)):
        service.keys.import_test(Request(OFFICER, Purpose.KEY_MANAGEMENT, label),
                                 NewKey(label, KeyAlgorithm.AES, 16, usage, "lab"), VENDOR_KEY)
    registry.add_tenant(officer, SP, "sp")
    app_id = catalog.submit(officer, catalog.Submission(sp=SP, cap=demo_cap("transit").jar(), instance_aid=INSTANCE,
                                                        perso=f"0101={PURSE} {TOPUP_DGI:04X}!"))
    app = catalog.review(officer, app_id, approve=True)
    cards_dir = Path(tempfile.mkdtemp(prefix="tsm-bench-cards-"))
    atexit.register(shutil.rmtree, cards_dir, ignore_errors=True)
    return Bench(settings, officer, worker, app, cards_dir, Counter())


def prepare(bench: Bench, count: int) -> list[Prepared]:
    """`count` new wearable cards, discovered, each with a job ordered and its state file saved."""
    out = []
    for _ in range(count):
        card = new_card(PROFILE)
        with LocalTransport(card) as transport:
            se_id, _ = discovery.discover_se(bench.officer, transport, GIVEN, "bench")
        save_card(card, bench.cards_dir / f"{se_id}.json")
        out.append(Prepared(jobs.order(bench.officer, se_id, bench.app.id), se_id, card))
    return out


def _command(apdu: CommandApdu) -> Command:
    return Command(bytes((apdu.cla, apdu.ins, apdu.p1, apdu.p2)), apdu.data, apdu.le is not None)


def dialog(bench: Bench, provisioned: SeView) -> Dialog:
    """The plain commands the engine sent to the `provisioned` SE, built once with the product's pure builders."""
    app, profile = bench.app, provisioned.profile
    ssd_domain, isd_keys = provisioned.domain_of(SP), provisioned.isd.active_key_set
    if ssd_domain is None or isd_keys is None:
        raise SystemExit(f"SE {provisioned.id} has no SSD of {SP} or no ISD key set")
    lfdb = catalog.load_file_data(bench.officer, app.load_file.id)
    package, ssd = bytes.fromhex(app.load_file.package_aid), bytes.fromhex(ssd_domain.aid)
    instance = bytes.fromhex(app.instance_aid)
    code = tlv.encode(0xEF, tlv.encode(0xC6, len(lfdb).to_bytes(2, "big")))  # non-volatile code size, §11.5.2.3.7
    block = commands.max_block_size(SecurityLevel.C_MAC, Scp(f"{profile.scp:02X}"))
    return Dialog(
        isd_aid=bytes.fromhex(profile.isd_aid), isd_kvn=isd_keys.kvn, isd_key=VENDOR_KEY, ssd_aid=ssd,
        initial_ssd_key=VENDOR_KEY, sp_master=secrets.token_bytes(16), sp_kvn=jobs.SSD_KVN,
        install_ssd=_command(install.install_for_install(
            bytes.fromhex(profile.ssd_package_aid), bytes.fromhex(profile.ssd_module_aid), ssd,
            privileges=Privilege.SECURITY_DOMAIN, parameters=b"\xc9\x00")),
        install_load=_command(install.install_for_load(package, ssd, load_parameters=code)),
        load=tuple(_command(c) for c in install.load_commands(lfdb, block_size=block)),
        install_app=_command(install.install_for_install(package, bytes.fromhex(app.module_aid), instance,
                                                         parameters=install_parameters(app))),
        extradite=_command(install.install_for_extradition(ssd, instance)),
        install_perso=_command(install.install_for_personalization(instance)),
        store_data_header=bytes((0x80, 0xE2, storedata.StoreDataP1.DGI | storedata.StoreDataP1.LAST_BLOCK
                                 | storedata.StoreDataP1.APPLICATION_DEPENDENT_ENCRYPTION, 0x00)),
        plain_dgis=storedata.dgi(0x0101, bytes.fromhex(PURSE)), sensitive_dgi=TOPUP_DGI)


def baseline(plan: Dialog, count: int) -> float:
    """(a) SEs/s of the raw dialog on `count` factory-fresh cards."""
    cards = [new_card(PROFILE) for _ in range(count)]
    start = time.perf_counter()
    for card in cards:
        provision(card, plan, secrets.token_bytes(16))
    return count / (time.perf_counter() - start)


def done(view: JobView, failed: Counter[str]) -> int:
    """1 for a job that ended DONE; else 0, and its error counted (a provisioned SE is a DONE job)."""
    if view.state == engine.DONE:
        return 1
    failed[f"{view.state}: {view.error}"] += 1
    return 0


def run_one(bench: Bench, job: Prepared) -> int:
    with LocalTransport(job.card) as transport:
        return done(engine.run(bench.worker, job.job_id, transport, perso=perso(job.se_id)), bench.failed)


def in_process(bench: Bench, prepared: list[Prepared]) -> float:
    """(b) SEs/s of `engine.run` in this process."""
    start = time.perf_counter()
    provisioned = sum(run_one(bench, job) for job in prepared)
    return provisioned / (time.perf_counter() - start)


@contextmanager
def card_file(cards_dir: Path, se_id: str) -> Iterator[LocalTransport]:
    """A worker's way to an SE: the card as discovery left it (its state file), driven in process."""
    with LocalTransport(load_card(cards_dir / f"{se_id}.json")) as transport:
        yield transport


def _worker(settings: Settings, cards_dir: Path, warm_up: tuple[str, str], ready: multiprocessing.Queue[int],
            go: multiprocessing.synchronize.Event, ended: multiprocessing.Queue[float]) -> None:
    service = open_service(settings)
    tsm = Tsm(session_factory(make_engine(settings.database_url, settings.database_busy_timeout)), service, WORKER)
    job_id, se_id = warm_up
    with card_file(cards_dir, se_id) as transport:
        engine.run(tsm, job_id, transport, perso=perso(se_id))
    app = queue.make_app(settings.database_url)
    queue.bind(app, lambda: tsm, lambda se: card_file(cards_dir, se), perso=lambda view: perso(view.se_id))
    ready.put(os.getpid())
    go.wait()
    app.run_worker(queues=[queue.QUEUE], concurrency=1, wait=False, install_signal_handlers=False)
    ended.put(time.time())


def with_workers(bench: Bench, prepared: list[Prepared], processes: int) -> float:
    """(c), (d) SEs/s of `processes` Procrastinate workers; the first `processes` jobs are their warm-ups."""
    warm_ups, measured = prepared[:processes], prepared[processes:]
    app = queue.make_app(bench.settings.database_url)
    for job in measured:
        queue.enqueue(app, bench.officer, job.job_id)
    ctx = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[int] = ctx.Queue()
    ended: multiprocessing.Queue[float] = ctx.Queue()
    go = ctx.Event()
    workers = [ctx.Process(target=_worker, args=(bench.settings, bench.cards_dir, (w.job_id, w.se_id), ready, go,
                                                 ended)) for w in warm_ups]
    for w in workers:
        w.start()
    collect(ready, workers)
    start = time.time()
    go.set()
    end = max(collect(ended, workers))
    for w in workers:
        w.join()
    provisioned = sum(done(jobs.show(bench.officer, job.job_id, apdus=False), bench.failed) for job in measured)
    return provisioned / (end - start)


def profile_run(bench: Bench, count: int) -> None:
    """Where the time of an in-process job goes: CPU of this process and of PostgreSQL (unprofiled run), then
    the SQL statements each job sends by table, and a cProfile of `count` jobs by package and by function."""
    prepared = prepare(bench, count)
    cpu_split(lambda: in_process(bench, prepared), count, "job")
    prepared = prepare(bench, count)
    sql_and_cprofile(lambda: in_process(bench, prepared), count, "job")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=100, help="SEs provisioned per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ses", type=int, default=100_000, help="SEs in the registry for the lookups")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per lookup kind per round")
    parser.add_argument("--page", type=int, default=100, help="SEs per list_ses page")
    parser.add_argument("--database-url", default=os.environ.get("TSM_DATABASE_URL", SERVER))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    load = os.getloadavg()
    bench = setup(args.database_url)
    warm = prepare(bench, 1)[0]
    if not run_one(bench, warm):
        raise SystemExit(f"the first job failed: {next(iter(bench.failed))}")
    plan = dialog(bench, registry.show(bench.officer, warm.se_id))
    baseline(plan, 5)
    figures: dict[str, list[float]] = {"raw": [], "engine": [], "1 worker": [], "2 workers": []}
    for _ in range(args.rounds):
        raw = baseline(plan, args.cards)
        figures["raw"].append(raw)
        figures["engine"].append(in_process(bench, prepare(bench, args.cards)))
        for n in (1, 2):
            figures[f"{n} worker{'s' if n > 1 else ''}"].append(with_workers(bench, prepare(bench, args.cards + n), n))
    raws = figures["raw"]
    print(f"Full provisioning (SSD, SSD keys, LOAD of {bench.app.load_file.size:,} bytes, INSTALL, extradition, "
          f"personalization), {args.cards} SEs per measurement, PostgreSQL; load average "
          f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after; min / median / max of {args.rounds} rounds:")
    print(f"  {'':42} {'SEs/s':>22}   ratio to (a)")
    labels = {"raw": "(a) raw SCP03 host, pure cryptography", "engine": "(b) job engine, in process",
              "1 worker": "(c) Procrastinate, 1 worker process", "2 workers": "(d) Procrastinate, 2 worker processes"}
    for key, label in labels.items():
        rates = figures[key]
        ratios = spread([r / b for r, b in zip(rates, raws, strict=True)], 3) if key != "raw" else "1.00"
        target = "   target >= 50/s" if key == "2 workers" else ""
        print(f"  {label:42} {spread(rates, 1):>22}   {ratios}{target}")
    for error, n in bench.failed.items():
        print(f"  {n} job(s) did not provision their SE (not counted): {error}")
    if args.profile:
        profile_run(bench, args.cards)
    loaded = bulk_load(bench.settings.database_url, args.ses, GIVEN.device_kind)
    print(f"\nRegistry lookups, {args.ses:,} SEs in PostgreSQL (bulk-loaded in {loaded:.0f} s); "
          f"µs per call, {args.seconds:g} s per kind per round:")
    time_lookups(bench.officer, bench.settings.database_url, args.ses, args.seconds, args.rounds, args.page)


if __name__ == "__main__":
    main()
