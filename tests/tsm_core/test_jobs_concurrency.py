"""One job at a time per SE, with several worker processes: jobs for different SEs run in parallel worker
processes and all end DONE (PostgreSQL); two runs racing for one SE, in two processes or two threads of one, let
exactly one run while the other is refused with `se_busy` before it sends anything, and nothing is lost; a claim
left by a killed worker is taken over by the next run."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.tsm_core.lab import BANK_CARD_DGIS, BANK_INSTANCE, Lab, Wire, assert_registry_is_card, make_lab
from tests.tsm_core.remote_card import WORKERS, CardServer, run_job
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.jobs.engine import SeBusy
from tsm_core.registry import service as registry
from tsm_core.transport.local import LocalTransport


@pytest.fixture
def pg_lab(settings_factory, pg_url):  # type: ignore[no-untyped-def]
    made = make_lab(*settings_factory(pg_url))
    yield made
    made.tsm.sessions.kw["bind"].dispose()


class Untouched:
    """A transport for a run that must not reach the card: it records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        raise AssertionError("a refused run sent a command")

    def connect(self) -> bytes:
        return b""

    def close(self) -> None:
        pass

    def __enter__(self) -> Untouched:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_jobs_for_different_ses_in_parallel_worker_processes_all_end_done(pg_lab):
    lab = pg_lab
    lab.add_sp("bankco", "am")
    app_id = lab.app("bankco", "bank")
    ses = [lab.new_se() for _ in range(6)]
    orders = [(card, se_id, jobs.order(lab.tsm, se_id, app_id)) for card, se_id in ses]
    servers = [CardServer(Wire(card)) for card, _, _ in orders]
    workers = [WORKERS.Process(target=run_job, args=(lab.settings, job_id, server.port, BANK_CARD_DGIS))
               for (_, _, job_id), server in zip(orders, servers, strict=True)]
    for worker in workers:
        worker.start()
    for worker, server in zip(workers, servers, strict=True):
        worker.join(timeout=120)
        server.join()
        assert worker.exitcode == 0
    for (card, se_id, job_id), server in zip(orders, servers, strict=True):
        view = jobs.show(lab.tsm, job_id)
        assert view.state == "done" and view.attempts == 1, view.error
        assert {a.step for a in view.apdus} >= {"load", "personalize"}
        assert len(view.apdus) == server.processed  # every command of its own card logged, and only those
        on_card = assert_registry_is_card(lab, se_id, card)
        assert (BANK_INSTANCE, "app", 0x0F, _ssd_of(lab, se_id, "bankco")) in on_card
    workers_of = {jobs.show(lab.tsm, job_id).worker for _, _, job_id in orders}
    assert len(workers_of) == len(orders) and engine.worker_id() not in workers_of  # one process each


def _ssd_of(lab: Lab, se_id: str, sp: str) -> str:
    domain = registry.show(lab.tsm, se_id).domain_of(sp)
    assert domain is not None
    return domain.aid


def _ssds(lab: Lab, se_id: str) -> set[str]:
    return {d.aid for d in registry.show(lab.tsm, se_id).domains if d.mode != "isd"}


def _two_jobs(lab: Lab):  # type: ignore[no-untyped-def]
    lab.add_sp("transitco", "cm")
    lab.add_sp("bankco", "am")
    card, se_id = lab.new_se()
    first = jobs.create_ssd(lab.tsm, se_id, "transitco", "cm")
    second = jobs.order(lab.tsm, se_id, lab.app("bankco", "bank"))
    return card, se_id, first, second


def _refused(lab: Lab, *job_ids: str) -> None:
    """Each run is refused with se_busy before it sends anything; the job is as it was."""
    for job_id in job_ids:
        before = jobs.show(lab.tsm, job_id)
        untouched = Untouched()
        with pytest.raises(SeBusy) as busy:
            engine.run(lab.tsm, job_id, untouched)  # type: ignore[arg-type]
        assert busy.value.code == "se_busy" and untouched.sent == []
        after = jobs.show(lab.tsm, job_id)
        assert (after.state, after.attempts, after.worker) == (before.state, before.attempts, before.worker)


def test_two_worker_processes_racing_for_one_se(lab):
    card, se_id, first, second = _two_jobs(lab)
    server = CardServer(Wire(card), hold_at=1)  # the worker holds its claim, waiting for its first answer
    worker = WORKERS.Process(target=run_job, args=(lab.settings, first, server.port, None))
    worker.start()
    assert server.holding.wait(timeout=60)
    assert jobs.show(lab.tsm, first).state == "running"
    _refused(lab, second, first)
    server.release.set()
    worker.join(timeout=120)
    server.join()
    assert worker.exitcode == 0 and jobs.show(lab.tsm, first).state == "done"
    view = lab.run(second, card, BANK_CARD_DGIS)
    assert view.state == "done", view.error
    entries = {e[0] for e in assert_registry_is_card(lab, se_id, card)}
    assert len(_ssds(lab, se_id)) == 2 and _ssds(lab, se_id) | {BANK_INSTANCE} <= entries


class Held:
    """A card whose first command waits until the test releases it."""

    def __init__(self, card) -> None:  # type: ignore[no-untyped-def]
        self.card, self.holding, self.release, self.first = card, threading.Event(), threading.Event(), True

    def power_on(self) -> bytes:
        return self.card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        if self.first:
            self.first = False
            self.holding.set()
            assert self.release.wait(timeout=60)
        return self.card.transmit(apdu)


def test_two_threads_of_one_process_racing_for_one_se(lab):
    card, se_id, first, second = _two_jobs(lab)
    held = Held(card)
    with ThreadPoolExecutor(1) as pool:
        def run_first():  # type: ignore[no-untyped-def]
            with LocalTransport(held) as transport:
                return engine.run(lab.tsm, first, transport)

        running = pool.submit(run_first)
        assert held.holding.wait(timeout=60)
        try:
            _refused(lab, second, first)
        finally:
            held.release.set()
        assert running.result(timeout=120).state == "done"
    assert lab.run(second, card, BANK_CARD_DGIS).state == "done"
    assert len(_ssds(lab, se_id)) == 2


def test_the_claim_of_a_killed_worker_is_taken_over(pg_lab):
    lab = pg_lab
    lab.add_sp("transitco", "cm")
    card, se_id = lab.new_se()
    job_id = jobs.create_ssd(lab.tsm, se_id, "transitco", "cm")
    server = CardServer(Wire(card), kill_at=1)
    worker = WORKERS.Process(target=run_job, args=(lab.settings, job_id, server.port, None))
    worker.start()
    worker.join(timeout=120)
    server.join()
    assert worker.exitcode == -signal.SIGKILL
    claimed = jobs.show(lab.tsm, job_id)
    assert claimed.state == "running" and claimed.worker.endswith(f":{worker.pid}")
    view = lab.run(job_id, card)
    assert view.state == "done" and view.attempts == 2 and view.worker == engine.worker_id()
    assert len(_ssds(lab, se_id)) == 1
