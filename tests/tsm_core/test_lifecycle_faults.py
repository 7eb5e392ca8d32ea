"""Faults in the life cycle: the transport dropped at each step of open card, top-up and device change (before a
command reaches the card, or with its answer lost). Each operation then stops with a typed error, and running it
again (its job, or the same operation) finishes it; the money is counted on the cards before and after: exactly
what was paid in, never a credit twice, never one lost."""

from __future__ import annotations

import pytest

from tests.tsm_core.lab import TRANSIT_INSTANCE, Lab, Unplugged, Wire, assert_registry_is_card
from tests.tsm_core.test_lifecycle import PURSE_PERSO, card_balance, life_cycle, opened
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.transport.local import LocalTransport

OPEN_STEPS = ("ssd", "ssd-keys", "load", "install", "extradite", "personalize", "activate", "refresh")


def _positions(lab: Lab, job_id: str, step: str) -> list[int]:
    """1-based positions, in the job's APDU log, of the commands step `step` sent."""
    return [n for n, a in enumerate(jobs.show(lab.tsm, job_id).apdus, 1) if a.step == step]


@pytest.fixture
def purse(sqlite_lab: Lab) -> tuple[Lab, str]:
    """The purse app on SQLite (the money logic is the job engine's; test_lifecycle.py covers both databases)."""
    sqlite_lab.add_sp("metro")
    return sqlite_lab, sqlite_lab.app("metro", "transit", perso=PURSE_PERSO)


def _open(lab: Lab, app_id: str, card) -> str:  # type: ignore[no-untyped-def]
    _, se_id = card
    with LocalTransport(card[0]) as transport:
        return lifecycle.open_service(lab.tsm, se_id, app_id, transport).id


def _last_job(lab: Lab, service_id: str) -> str:
    return lifecycle.show(lab.tsm, service_id).jobs[-1][0]


@pytest.mark.parametrize("step", OPEN_STEPS)
def test_open_card_dropped_at_each_step_resumes(purse, step):
    lab, app_id = purse
    reference = lab.new_se()
    ref_id = _open(lab, app_id, reference)
    k = _positions(lab, _last_job(lab, ref_id), step)[-1]
    card, se_id = lab.new_se()
    unplugged = Unplugged(card, k, after=True)
    with LocalTransport(unplugged) as transport, pytest.raises(lifecycle.JobFailed, match="card_removed"):
        lifecycle.open_service(lab.tsm, se_id, app_id, transport)
    service = lifecycle.list_services(lab.tsm, se_id)[0]
    assert service.state in ("ordered", "installed", "personalized", "in_error", "active")
    view = lab.run(_last_job(lab, service.id), Wire(card))
    assert view.state == engine.DONE, view.error
    assert lifecycle.show(lab.tsm, service.id).state == "active"
    assert card_balance(card) == (0, 0)
    assert_registry_is_card(lab, se_id, card)


def test_top_up_dropped_at_every_command_credits_exactly_once(purse):
    lab, app_id = purse
    reference = lab.new_se()
    ref_id = _open(lab, app_id, reference)
    with LocalTransport(reference[0]) as transport:
        lifecycle.topup(lab.tsm, ref_id, 100, transport)
    commands = len(jobs.show(lab.tsm, _last_job(lab, ref_id)).apdus)
    card, _se_id, service_id = opened(lab, app_id)
    paid = 0
    for k in range(1, commands + 1):
        for after in (False, True):
            before, counter = card_balance(card)
            with LocalTransport(Unplugged(card, k, after)) as transport, \
                    pytest.raises(lifecycle.JobFailed, match="card_removed"):
                lifecycle.topup(lab.tsm, service_id, 10 + k, transport)
            view = lab.run(_last_job(lab, service_id), Wire(card))
            assert view.state == engine.DONE, (k, after, view.error)
            paid += 10 + k
            assert card_balance(card) == (before + 10 + k, counter + 1), (k, after)
    assert card_balance(card)[0] == paid
    assert lifecycle.show(lab.tsm, service_id).balance == paid


def test_top_up_answer_lost_then_run_again_reads_the_counter_and_sends_nothing(purse):
    lab, app_id = purse
    card, _se_id, service_id = opened(lab, app_id)
    wire = Wire(card)
    with LocalTransport(wire) as transport:
        lifecycle.topup(lab.tsm, service_id, 500, transport)
    top_up = next(n for n, a in enumerate(wire.seen, 1) if (a.cla, a.ins) == (0x80, 0x52))
    lost = Unplugged(card, top_up, after=True)
    with LocalTransport(lost) as transport, pytest.raises(lifecycle.JobFailed):
        lifecycle.topup(lab.tsm, service_id, 300, transport)
    assert card_balance(card) == (800, 2)  # the card took it; the TSM did not hear
    again = Wire(card)
    lab.run(_last_job(lab, service_id), again)
    assert not any((a.cla, a.ins) == (0x80, 0x52) for a in again.seen)
    assert card_balance(card) == (800, 2)
    assert lifecycle.show(lab.tsm, service_id).balance == 800


@pytest.mark.parametrize("side", ["old", "new"])
def test_device_change_dropped_at_each_step_keeps_the_money(purse, side):
    lab, app_id = purse
    ref_phone, ref_watch = lab.new_se(), lab.new_se()
    ref_id = _open(lab, app_id, ref_phone)
    with LocalTransport(ref_phone[0]) as transport:
        lifecycle.topup(lab.tsm, ref_id, 900, transport)
    with LocalTransport(ref_watch[0]) as to, LocalTransport(ref_phone[0]) as old:
        ref_new = lifecycle.migrate(lab.tsm, ref_id, ref_watch[1], to, old)
    job = _last_job(lab, ref_id if side == "old" else ref_new.id)
    steps = list(dict.fromkeys(a.step for a in jobs.show(lab.tsm, job).apdus))
    for step in steps:
        phone, old_se = lab.new_se()
        watch, new_se = lab.new_se()
        service_id = _open(lab, app_id, (phone, old_se))
        with LocalTransport(phone) as transport:
            lifecycle.topup(lab.tsm, service_id, 900, transport)
        k = _positions(lab, job, step)[-1]
        to = Unplugged(watch, k, after=True) if side == "new" else watch
        old = Unplugged(phone, k, after=True) if side == "old" else phone
        with LocalTransport(to) as t, LocalTransport(old) as o, pytest.raises(lifecycle.JobFailed):
            lifecycle.migrate(lab.tsm, service_id, new_se, t, o)
        with LocalTransport(watch) as t, LocalTransport(phone) as o:
            new = lifecycle.migrate(lab.tsm, service_id, new_se, t, o)
        assert new.state == "active", step
        assert card_balance(watch) == (900, 0), step
        assert life_cycle(lab, old_se, phone, TRANSIT_INSTANCE) is None, step
        assert lifecycle.show(lab.tsm, service_id).state == "deleted", step


def test_device_change_whose_old_side_failed_finishes_without_the_old_device(purse):
    lab, app_id = purse
    phone, old_se = lab.new_se()
    watch, new_se = lab.new_se()
    service_id = _open(lab, app_id, (phone, old_se))
    with LocalTransport(phone) as transport:
        lifecycle.topup(lab.tsm, service_id, 300, transport)
    with LocalTransport(watch) as t, LocalTransport(Unplugged(phone, 3, after=False)) as o, \
            pytest.raises(lifecycle.JobFailed):
        lifecycle.migrate(lab.tsm, service_id, new_se, t, o)
    with LocalTransport(watch) as t:
        new = lifecycle.migrate(lab.tsm, service_id, new_se, t)
    assert new.state == "active" and card_balance(watch) == (300, 0)
    old = lifecycle.show(lab.tsm, service_id)
    assert old.state == "migrating" and old.waiting
    with LocalTransport(phone) as transport:
        lifecycle.contact(lab.tsm, old_se, transport)
    assert lifecycle.show(lab.tsm, service_id).state == "deleted"
    assert life_cycle(lab, old_se, phone, TRANSIT_INSTANCE) is None
