"""Jobs on the Procrastinate queue (PostgreSQL): enqueued with the SE as lock, run by a worker through its card
opener, one job at a time per SE even with several jobs of one SE queued and a worker running many at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from cardsim.card import Card
from tests.tsm_core.lab import Lab, assert_registry_is_card, make_lab
from tsm_core.errors import InvalidRequest
from tsm_core.jobs import engine, queue
from tsm_core.jobs import service as jobs
from tsm_core.transport.base import Transport
from tsm_core.transport.local import LocalTransport


@pytest.fixture
def pg_lab(settings_factory, pg_url) -> Iterator[Lab]:  # type: ignore[no-untyped-def]
    made = make_lab(*settings_factory(pg_url))
    yield made
    made.tsm.sessions.kw["bind"].dispose()


def _opener(cards: dict[str, Card], opened: list[str]) -> queue.CardOpener:
    @contextmanager
    def opener(se_id: str) -> Iterator[Transport]:
        opened.append(se_id)
        with LocalTransport(cards[se_id]) as transport:
            yield transport

    return opener


def _task_states(lab: Lab) -> list[tuple[str, str | None]]:
    with psycopg.connect(queue.conninfo(lab.settings.database_url)) as conn:
        return [(row[0], row[1]) for row in
                conn.execute("SELECT status::text, lock FROM procrastinate_jobs ORDER BY id").fetchall()]


def test_queued_jobs_run_one_per_se_and_end_done(pg_lab: Lab) -> None:
    pg_lab.add_sp("transitco", "am")
    transit = pg_lab.app("transitco", "transit")
    cards: dict[str, Card] = {}
    ordered = []
    for _ in range(3):
        card, se_id = pg_lab.new_se()
        cards[se_id] = card
        ordered.append(jobs.order(pg_lab.tsm, se_id, transit))
    first = next(iter(cards))  # a second job for the first SE, queued behind its first one
    pg_lab.issuer_kmc()
    ordered.append(jobs.rotate_keys(pg_lab.tsm, first, 0x01))
    app = queue.make_app(pg_lab.settings.database_url)
    for job_id in ordered:
        queue.enqueue(app, pg_lab.tsm, job_id)
    opened: list[str] = []
    queue.bind(app, lambda: pg_lab.tsm, _opener(cards, opened))
    with app.open():
        for _ in range(3):  # a pass ends when no job can be taken: the one locked behind its SE's first waits
            app.run_worker(queues=[queue.QUEUE], concurrency=4, wait=False, install_signal_handlers=False)
    views = [jobs.show(pg_lab.tsm, job_id) for job_id in ordered]
    assert [view.state for view in views] == [engine.DONE] * 4
    assert views[3].started_at >= views[0].finished_at  # type: ignore[operator]  # never both at once
    assert _task_states(pg_lab) == [("succeeded", se_id) for se_id in [*cards, first]]  # the SE is the lock
    assert sorted(opened) == sorted([*cards, first])
    for se_id, card in cards.items():
        assert_registry_is_card(pg_lab, se_id, card)


def test_a_job_is_queued_once_and_a_done_job_not_at_all(pg_lab: Lab) -> None:
    pg_lab.add_sp("transitco")
    card, se_id = pg_lab.new_se()
    job_id = jobs.order(pg_lab.tsm, se_id, pg_lab.app("transitco", "transit"))
    app = queue.make_app(pg_lab.settings.database_url)
    queue.enqueue(app, pg_lab.tsm, job_id)
    with pytest.raises(Exception, match="queueing lock"):  # Procrastinate's AlreadyEnqueued
        queue.enqueue(app, pg_lab.tsm, job_id)
    pg_lab.run(job_id, card)
    with pytest.raises(InvalidRequest, match="is done"):
        queue.enqueue(app, pg_lab.tsm, job_id)


def test_the_queue_needs_postgresql() -> None:
    with pytest.raises(InvalidRequest, match="PostgreSQL"):
        queue.conninfo("sqlite:///tmp/tsm.db")
