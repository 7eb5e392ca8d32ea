"""Purse top-ups end to end against in-process cards and PostgreSQL, against the leanest host in the same run
(issue 10 target: >= 200 top-ups/s on this machine).

    .venv/bin/python bench/lifecycle.py [--cards 20] [--topups 500] [--rounds 3]
        [--database-url postgresql+psycopg://root@127.0.0.1:5432/postgres] [--profile]

Setup (not measured): a scratch test token and a throwaway PostgreSQL database (bench/scratch.py), the vendor's
ISD and initial SSD keys imported, SP `metro` with a transit purse app (`0101#purse=... 8001@key`: the top-up key
is the app's key for each SE) submitted and approved; the app's master key (usage APP_KEY) is a known value
imported on the test token, so that the baseline can derive each SE's key in pure Python (the product generates
it in the HSM otherwise: `jobs.app_master_key`). `--cards` wearable cardsim cards discovered and the service
opened on each (`lifecycle.open_service`: SSD, LOAD, INSTALL, personalization, activation).

Measured, per round, as top-ups of 1 minor unit per second, `--topups` per measurement over the cards round-robin
(one top-up at a time per card; a purse counts at most 65,535 top-ups, ≈ 2,000 per card per round at the raw
host's pace with 20 cards):
(a) the baseline (1.00): bench/raw_topup.py, the same card dialog (SELECT ISD, GET DATA 'CF', SELECT purse, GET
    BALANCE, TOP UP with the AES-CMAC under the per-SE key) from a minimal host in pure `cryptography`, repeated
    over the same cards for at least a second (a measurement of 500 would last well under 0.1 s);
(b) `lifecycle.topup` in this process, called by the SP's backend (caller kind SERVICE, scope `sp:metro`) over a
    `LocalTransport` per top-up: the order recorded, the job planned, run by the engine (SE claim and advisory
    lock, identify, read, counter recorded, MAC by `KeyService.apps.mac`, TOP UP, credited), the order read back;
(c) the same from 2 threads of this process, each on its own half of the cards (the engine holds one job per SE
    per process and, on PostgreSQL, an advisory lock per SE; the HSM session is one per process, behind a lock);
(d) the same from 2 processes (spawned; each opens the key service and loads its half of the cards from the state
    files, runs one warm-up top-up, and starts with the other; the time runs from the start to the last end).
A top-up that does not end credited is not counted (its error is printed). Prints top-ups/s and the ratio to (a)
as min / median / max of the rounds, the load average before and after, and the money check: what the cards hold
against what was credited. `--profile` adds where an in-process top-up's time goes: CPU of this process and of
PostgreSQL, SQL statements and transactions per top-up, a cProfile by package and by function.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import multiprocessing.synchronize
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from profiling import cpu_split, spread, sql_and_cprofile
from raw_topup import Purse, balance, top_up
from scratch import scratch_settings
from workers import collect

from cardsim.capbuild import demo_cap
from cardsim.card import Card
from cardsim.state import load_card, new_card, save_card
from globalplatform.keys import KeyAlgorithm
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.runtime import open_service
from keyservice.service import KeyService
from keyservice.views import NewKey
from storage.config import Settings
from storage.session import make_engine, session_factory
from tsm_core.catalog import service as catalog
from tsm_core.catalog.models import App
from tsm_core.context import Tsm
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.registry import discovery
from tsm_core.registry import service as registry
from tsm_core.tenancy import Scope
from tsm_core.transport.local import LocalTransport

SERVER: Final = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
VENDOR_KEY: Final = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
"""The wearable profile's ISD key (KVN FF, not diversified) and cardsim's initial SSD key."""
PROFILE: Final = "wearable"
SP: Final = "metro"
INSTANCE: Final = "F00000000101010101"
PURSE_PERSO: Final = "0101#purse=0978" "00000000" "05F5E100" "00002710" " 8001@key"
"""EUR purse, balance 0, at most 1,000,000.00, debits up to 100.00; DGI 8001 is the app's key for the SE."""
MASTER_LABEL: Final = "metro-purse-master"
MASTER: Final = bytes.fromhex("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")
"""The app's master key (APP_KEY), imported on the test token: the baseline derives the per-SE keys from it."""
AMOUNT: Final = 1
BASELINE_SECONDS: Final = 1.0
"""The raw dialog runs thousands of times faster than the product: it is timed over batches for at least this."""
OFFICER: Final = Caller("bench-officer", CallerKind.OFFICER)
BACKEND: Final = Caller("metro-backend", CallerKind.SERVICE)
"""The SP's backend asking for top-ups, in its own tenancy."""
GIVEN: Final = discovery.Discovery(keys=("vendor-isd",), device_kind="wearable", initial_ssd_key="vendor-ssd")


@dataclass(frozen=True)
class Wallet:
    """One SE with its purse service; its card is saved as a state file for the worker processes."""

    se_id: str
    service_id: str
    kdd: bytes
    path: Path


@dataclass
class Bench:
    """The scratch installation: settings, the officer's and the SP backend's contexts, the purses and their
    cards (in this process; the state files are written for, and read back after, the worker processes)."""

    settings: Settings
    officer: Tsm
    backend: Tsm
    purse: Purse
    wallets: list[Wallet]
    cards: dict[str, Card]
    failed: Counter[str]
    """Errors of the measured top-ups that did not end credited."""
    credited: int = 0
    """Top-ups the cards took, all measurements and warm-ups together (the money check)."""


def backend_of(settings: Settings, service: KeyService) -> Tsm:
    """The SP's backend: caller kind SERVICE, in the SP's tenancy."""
    return Tsm(session_factory(make_engine(settings.database_url, settings.database_busy_timeout)), service,
               BACKEND, Scope("sp", SP))


def setup(database_url: str, count: int) -> Bench:
    """Scratch token and database, the vendor's keys, the SP and its approved purse app, `count` opened services."""
    if not database_url.startswith("postgresql"):
        raise SystemExit("the bench measures PostgreSQL: --database-url postgresql+psycopg://...")
    settings = scratch_settings("bench-life", database_url)
    service = open_service(settings)
    officer = Tsm(session_factory(make_engine(settings.database_url, settings.database_busy_timeout)), service,
                  OFFICER)
    key_management = Request(OFFICER, Purpose.KEY_MANAGEMENT, "bench")
    for label, usage, value, owner in (("vendor-isd", KeyUsage.ISD_KEYSET, VENDOR_KEY, "lab"),
                                       ("vendor-ssd", KeyUsage.SSD_KEYSET, VENDOR_KEY, "lab"),
                                       (MASTER_LABEL, KeyUsage.APP_KEY, MASTER, f"sp:{SP}")):
        service.keys.import_test(key_management, NewKey(label, KeyAlgorithm.AES, 16, usage, owner), value)
    registry.add_tenant(officer, SP, "sp")
    app_id = catalog.submit(officer, catalog.Submission(sp=SP, cap=demo_cap("transit").jar(), instance_aid=INSTANCE,
                                                        perso=PURSE_PERSO))
    app = catalog.review(officer, app_id, approve=True)
    with officer.transaction() as db:
        row = db.get(App, app_id)
        assert row is not None
        row.app_key = MASTER_LABEL  # what `jobs.app_master_key` records for the master it generates otherwise
    cards_dir = Path(tempfile.mkdtemp(prefix="tsm-bench-purses-"))
    atexit.register(shutil.rmtree, cards_dir, ignore_errors=True)
    cards: dict[str, Card] = {}
    wallets = []
    for _ in range(count):
        card = new_card(PROFILE)
        with LocalTransport(card) as transport:
            se_id, _ = discovery.discover_se(officer, transport, GIVEN, "bench")
            opened = lifecycle.open_service(officer, se_id, app_id, transport)
        if opened.state != "active":
            raise SystemExit(f"the service on SE {se_id} is {opened.state}, not active")
        wallet = Wallet(se_id, opened.id, bytes.fromhex(registry.show(officer, se_id).kdd), cards_dir / f"{se_id}.json")
        cards[se_id] = card
        wallets.append(wallet)
    isd_aid = bytes.fromhex(registry.show(officer, wallets[0].se_id).profile.isd_aid)
    purse = Purse(isd_aid, bytes.fromhex(app.instance_aid), MASTER)
    return Bench(settings, officer, backend_of(settings, service), purse, wallets, cards, Counter())


def _round_robin(wallets: Sequence[Wallet], count: int) -> list[Wallet]:
    return [wallets[i % len(wallets)] for i in range(count)]


def baseline(bench: Bench, count: int, seconds: float = BASELINE_SECONDS) -> float:
    """(a) top-ups/s of the raw dialog: batches of `count` for at least `seconds`."""
    plan = _round_robin(bench.wallets, count)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for wallet in plan:
            top_up(bench.cards[wallet.se_id], bench.purse, wallet.kdd, AMOUNT)
        done += count
    bench.credited += done
    return done / elapsed


def topup(tsm: Tsm, card: Card, wallet: Wallet, failed: Counter[str]) -> int:
    """One top-up by the product: 1 when the card took it; else 0, and its error counted."""
    try:
        with LocalTransport(card) as transport:
            order = lifecycle.topup(tsm, wallet.service_id, AMOUNT, transport)
    except lifecycle.JobFailed as exc:
        failed[str(exc).split(": ", 1)[-1]] += 1
        return 0
    if order.state != "credited":
        failed[f"order {order.state}"] += 1
        return 0
    return 1


def _run(tsm: Tsm, cards: dict[str, Card], plan: list[Wallet], failed: Counter[str]) -> int:
    return sum(topup(tsm, cards[wallet.se_id], wallet, failed) for wallet in plan)


def in_process(bench: Bench, count: int) -> float:
    """(b) top-ups/s of `lifecycle.topup` in this process."""
    plan = _round_robin(bench.wallets, count)
    start = time.perf_counter()
    credited = _run(bench.backend, bench.cards, plan, bench.failed)
    rate = credited / (time.perf_counter() - start)
    bench.credited += credited
    return rate


def _halves(bench: Bench, count: int) -> list[list[Wallet]]:
    """Two plans of `count` / 2 top-ups, each over its own half of the cards."""
    return [_round_robin(bench.wallets[i::2], count // 2) for i in range(2)]


def with_threads(bench: Bench, count: int) -> float:
    """(c) top-ups/s of 2 threads of this process, each on its own cards."""
    plans = _halves(bench, count)
    credited = [0, 0]

    def work(i: int) -> None:
        credited[i] = _run(bench.backend, bench.cards, plans[i], bench.failed)

    threads = [threading.Thread(target=work, args=(i,), name=f"top-ups-{i}") for i in range(2)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = sum(credited) / (time.perf_counter() - start)
    bench.credited += sum(credited)
    return rate


@dataclass(frozen=True)
class Ended:
    """What a worker process reports: when it ended, what its warm-up and its plan credited, what failed."""

    end: float
    warm_up: int
    credited: int
    failed: Counter[str]


def _worker(settings: Settings, plan: list[Wallet], ready: multiprocessing.Queue[int],
            go: multiprocessing.synchronize.Event, ended: multiprocessing.Queue[Ended]) -> None:
    """A worker process: its own key service and sessions, its cards from their state files (written back at the
    end), one warm-up top-up, then its plan."""
    tsm = backend_of(settings, open_service(settings))
    paths = {w.se_id: w.path for w in plan}
    cards = {se_id: load_card(path) for se_id, path in paths.items()}
    failed: Counter[str] = Counter()
    warm = _run(tsm, cards, plan[:1], failed)
    ready.put(os.getpid())
    go.wait()
    credited = _run(tsm, cards, plan, failed)
    end = time.time()
    for se_id, card in cards.items():
        save_card(card, paths[se_id])
    ended.put(Ended(end, warm, credited, failed))


def with_processes(bench: Bench, count: int) -> float:
    """(d) top-ups/s of 2 worker processes, each on its own cards (handed over as state files and read back)."""
    for wallet in bench.wallets:
        save_card(bench.cards[wallet.se_id], wallet.path)
    ctx = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[int] = ctx.Queue()
    ended: multiprocessing.Queue[Ended] = ctx.Queue()
    go = ctx.Event()
    workers = [ctx.Process(target=_worker, args=(bench.settings, plan, ready, go, ended))
               for plan in _halves(bench, count)]
    for w in workers:
        w.start()
    collect(ready, workers)
    start = time.time()
    go.set()
    results = collect(ended, workers)
    for w in workers:
        w.join()
    for wallet in bench.wallets:
        bench.cards[wallet.se_id] = load_card(wallet.path)
    for result in results:
        bench.credited += result.warm_up + result.credited
        bench.failed.update(result.failed)
    return sum(r.credited for r in results) / (max(r.end for r in results) - start)


def money_check(bench: Bench) -> str:
    """What the purses hold on the cards (GET BALANCE) against the top-ups credited."""
    held = sum(balance(card, bench.purse) for card in bench.cards.values())
    verdict = "equal" if held == bench.credited * AMOUNT else "NOT EQUAL"
    return f"the cards hold {held} minor units; {bench.credited} top-ups of {AMOUNT} were credited: {verdict}"


def commands_of_a_topup(bench: Bench) -> str:
    """The commands the engine sent for one top-up, from its APDU log."""
    wallet = bench.wallets[0]
    with LocalTransport(bench.cards[wallet.se_id]) as transport:
        order = lifecycle.topup(bench.backend, wallet.service_id, AMOUNT, transport)
    bench.credited += 1
    assert order.job_id is not None
    log = jobs.show(bench.officer, order.job_id).apdus
    return f"{len(log)} commands ({', '.join(a.header[:4] for a in log)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=20, help="purses (SEs) the top-ups go round")
    parser.add_argument("--topups", type=int, default=500, help="top-ups per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("TSM_DATABASE_URL", SERVER))
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.cards < 2:
        parser.error("--cards: at least 2 (the threads and processes each take half)")

    load = os.getloadavg()
    bench = setup(args.database_url, args.cards)
    sent = commands_of_a_topup(bench)
    baseline(bench, args.cards, seconds=0)
    in_process(bench, args.cards)
    figures: dict[str, list[float]] = {"raw": [], "engine": [], "2 threads": [], "2 processes": []}
    for _ in range(args.rounds):
        raws = baseline(bench, args.topups)
        figures["raw"].append(raws)
        figures["engine"].append(in_process(bench, args.topups))
        figures["2 threads"].append(with_threads(bench, args.topups))
        figures["2 processes"].append(with_processes(bench, args.topups))
    print(f"Purse top-ups of {AMOUNT} minor unit, {args.topups} per measurement over {args.cards} in-process "
          f"wearable cards, PostgreSQL; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"min / median / max of {args.rounds} rounds:")
    print(f"  {'':46} {'top-ups/s':>22}   ratio to (a)")
    labels = {"raw": "(a) raw host, pure cryptography",
              "engine": "(b) lifecycle.topup, in process",
              "2 threads": "(c) lifecycle.topup, 2 threads",
              "2 processes": "(d) lifecycle.topup, 2 processes"}
    base = figures["raw"]
    for key, label in labels.items():
        rates = figures[key]
        ratios = spread([r / b for r, b in zip(rates, base, strict=True)], 4) if key != "raw" else "1.00"
        print(f"  {label:46} {spread(rates, 1):>22}   {ratios}")
    print(f"  target >= 200/s; the engine sent {sent} for a top-up, the raw host 5")
    for error, n in bench.failed.items():
        print(f"  {n} top-up(s) not credited (not counted): {error}")
    print(f"  money check: {money_check(bench)}")
    if args.profile:
        cpu_split(lambda: in_process(bench, args.topups), args.topups, "top-up")
        sql_and_cprofile(lambda: in_process(bench, args.topups), args.topups, "top-up", statements_shown=30)
        print(f"money check after the profiled runs: {money_check(bench)}")


if __name__ == "__main__":
    main()
