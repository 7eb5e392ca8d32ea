"""The service life cycle end to end against in-process cards (cardsim's transit purse and bank card): open,
balance, top-up, report lost and unlock (reachable or not), suspend, delete, unsubscribe, device change and
re-issue, with the state machine's "already" answers and typed refusals; the card is asked directly (SELECT,
GET BALANCE, READ RECORD, GET STATUS) to hold the TSM's word against."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice.inventory import KeyState, KeyUsage
from keyservice.views import NewKey
from tests.tsm_core.lab import (
    BANK_INSTANCE,
    KEY_MANAGEMENT,
    TRANSIT_INSTANCE,
    Lab,
    Unplugged,
    Wire,
    assert_registry_is_card,
    card_entries,
    key_versions,
    send,
)
from tsm_core.billing import service as billing
from tsm_core.errors import InvalidRequest, NotFound
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.lifecycle.states import InvalidTransition
from tsm_core.registry import service as registry
from tsm_core.tenancy import Scope
from tsm_core.transport.local import LocalTransport

PURSE_PERSO = "0101#purse=0978" "00000000" "0000C350" "00002710" " 8001@key"
"""EUR purse, balance 0, at most 500.00, debits up to 100.00; the top-up key is the app's key for the SE."""
BANK_PERSO = "0101=5F200A4A4F484E20534D4954485F2403301231 8101#card-number 8000@key"
PAN, NEW_PAN = "4111111111111111", "5500000000000004"
LOCKED = 0x80


def with_data_key(lab: Lab) -> None:
    lab.keys.keys.generate(KEY_MANAGEMENT, NewKey("issuer-data", KeyAlgorithm.AES, 32, KeyUsage.DATA_KEY, "issuer"))
    lab.keys.keys.change_state(KEY_MANAGEMENT, "issuer-data", KeyState.ACTIVE)


@pytest.fixture
def purse(lab: Lab) -> tuple[Lab, str]:
    lab.add_sp("metro")
    return lab, lab.app("metro", "transit", perso=PURSE_PERSO)


@pytest.fixture
def bank(lab: Lab) -> tuple[Lab, str]:
    with_data_key(lab)
    lab.add_sp("bank")
    return lab, lab.app("bank", "bank", perso=BANK_PERSO)


def opened(lab: Lab, app_id: str):  # type: ignore[no-untyped-def]
    """A new SE with app `app_id` opened on it: (its card, the SE id, the service id)."""
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        return card, se_id, lifecycle.open_service(lab.tsm, se_id, app_id, transport).id


def card_balance(card, aid: str = TRANSIT_INSTANCE) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(balance, top-up counter) as the purse itself answers GET BALANCE."""
    select, balance = send(card, f"00A40400{len(aid) // 2:02X}{aid}", "805C000000")
    assert select.sw == 0x9000 and balance.sw == 0x9000
    return int.from_bytes(balance.data[0:4], "big"), int.from_bytes(balance.data[8:10], "big")


def life_cycle(lab: Lab, se_id: str, card, aid: str) -> int | None:  # type: ignore[no-untyped-def]
    return next((lc for a, _, lc, _ in card_entries(lab.card_content(se_id, card)) if a == aid), None)


def test_open_top_up_and_balance_through_the_card(purse):
    lab, app_id = purse
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        view = lifecycle.open_service(lab.tsm, se_id, app_id, transport)
    assert view.state == "active" and view.balance == 0
    assert card_balance(card) == (0, 0)
    with LocalTransport(card) as transport:
        order = lifecycle.topup(lab.tsm, view.id, 1500, transport)
        order2 = lifecycle.topup(lab.tsm, view.id, 250, transport)
        read = lifecycle.balance(lab.tsm, view.id, transport)
    assert (order.state, order.balance_before, order.balance_after) == ("credited", 0, 1500)
    assert order2.balance_after == 1750 and read.balance == 1750 and read.purse_counter == 2
    assert card_balance(card) == (1750, 2)
    assert_registry_is_card(lab, se_id, card)
    ops = [e.operation for e in lifecycle.show(lab.tsm, view.id).history]
    assert ops.count("topup") >= 2 and "open" in ops


def test_a_top_up_over_the_maximum_is_refused_and_credits_nothing(purse):
    lab, app_id = purse
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        view = lifecycle.open_service(lab.tsm, se_id, app_id, transport)
        with pytest.raises(lifecycle.JobFailed, match="refuses a top-up"):
            lifecycle.topup(lab.tsm, view.id, 60000, transport)
    assert card_balance(card) == (0, 0)


def test_report_lost_without_the_device_blocks_at_once_and_locks_at_next_contact(purse):
    lab, app_id = purse
    card, se_id, service_id = opened(lab, app_id)
    outcome = lifecycle.lock(lab.tsm, service_id)
    assert outcome.service.state == "locked_lost" and not outcome.service.card_locked
    assert len(outcome.service.waiting) == 1 and "next contact" in outcome.message
    assert not life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED  # the card was not reached
    with LocalTransport(card) as transport, pytest.raises(InvalidTransition, match="locked_lost"):
        lifecycle.topup(lab.tsm, service_id, 100, transport)
    assert lifecycle.lock(lab.tsm, service_id).message == "already locked_lost"
    with LocalTransport(card) as transport:
        ran = lifecycle.contact(lab.tsm, se_id, transport)
    assert [j.state for j in ran] == ["done"]
    assert life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED
    assert lifecycle.show(lab.tsm, service_id).card_locked
    with LocalTransport(card) as transport:
        outcome = lifecycle.unlock(lab.tsm, service_id, transport)
    assert outcome.service.state == "active" and not outcome.service.card_locked
    assert not life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED
    assert lifecycle.unlock(lab.tsm, service_id).message == "already active"


def test_an_unlock_before_the_card_was_reached_cancels_the_waiting_lock(purse):
    lab, app_id = purse
    card, se_id, service_id = opened(lab, app_id)
    lifecycle.lock(lab.tsm, service_id)
    outcome = lifecycle.unlock(lab.tsm, service_id)
    assert outcome.service.state == "active" and outcome.message == "active: the card was never locked"
    assert not outcome.service.waiting
    with LocalTransport(card) as transport:
        assert lifecycle.contact(lab.tsm, se_id, transport) == []
    assert not life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED


def test_suspend_on_the_card_then_resume_queued_for_next_contact(purse):
    lab, app_id = purse
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        service_id = lifecycle.open_service(lab.tsm, se_id, app_id, transport).id
        assert lifecycle.suspend(lab.tsm, service_id, transport).service.card_locked
        with pytest.raises(InvalidTransition, match="is suspended"):
            lifecycle.topup(lab.tsm, service_id, 100, transport)
        with pytest.raises(InvalidTransition, match="is suspended"):
            lifecycle.lock(lab.tsm, service_id, transport)
    assert life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED
    outcome = lifecycle.resume(lab.tsm, service_id)
    assert outcome.service.state == "active" and outcome.service.waiting
    assert lifecycle.resume(lab.tsm, service_id).message == "already active"
    with LocalTransport(card) as transport:
        lifecycle.contact(lab.tsm, se_id, transport)
    assert not life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED


def test_delete_removes_the_app_its_load_file_and_the_empty_ssd_and_the_app_can_be_opened_again(purse):
    lab, app_id = purse
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        service_id = lifecycle.open_service(lab.tsm, se_id, app_id, transport).id
        before = {a for a, *_ in card_entries(lab.card_content(se_id, card))}
        outcome = lifecycle.delete(lab.tsm, service_id, transport)
    assert outcome.service.state == "deleted"
    after = {a for a, *_ in card_entries(lab.card_content(se_id, card))}
    assert TRANSIT_INSTANCE in before and TRANSIT_INSTANCE not in after
    assert len(after) < len(before) - 1  # the load file and the SSD went too
    assert_registry_is_card(lab, se_id, card)
    with LocalTransport(card) as transport:
        assert lifecycle.delete(lab.tsm, service_id, transport).message == "already deleted"
        again = lifecycle.open_service(lab.tsm, se_id, app_id, transport)
    assert again.id != service_id and again.state == "active"


def test_unsubscribe_records_the_remaining_balance_for_refund(purse):
    lab, app_id = purse
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        service_id = lifecycle.open_service(lab.tsm, se_id, app_id, transport).id
        lifecycle.topup(lab.tsm, service_id, 1234, transport)
        send(card, f"00A40400{len(TRANSIT_INSTANCE) // 2:02X}{TRANSIT_INSTANCE}", "805400000400000064")  # ride: 1.00
        outcome = lifecycle.unsubscribe(lab.tsm, service_id, transport)
    assert "refund 1134" in outcome.message and outcome.service.state == "deleted"


def test_device_change_moves_the_balance_and_deletes_the_old_app(purse):
    lab, app_id = purse
    phone, old_se = lab.new_se()
    watch, new_se = lab.new_se()
    with LocalTransport(phone) as transport:
        old_id = lifecycle.open_service(lab.tsm, old_se, app_id, transport).id
        lifecycle.topup(lab.tsm, old_id, 4200, transport)
    with LocalTransport(watch) as to, LocalTransport(phone) as old:
        new = lifecycle.migrate(lab.tsm, old_id, new_se, to, old)
    assert new.state == "active" and new.previous_id == old_id and new.se_id == new_se
    assert card_balance(watch) == (4200, 0)
    assert lifecycle.show(lab.tsm, old_id).state == "deleted"
    assert life_cycle(lab, old_se, phone, TRANSIT_INSTANCE) is None


def test_device_change_without_the_old_device_uses_the_backup_and_deletes_it_at_next_contact(purse):
    lab, app_id = purse
    phone, old_se = lab.new_se()
    watch, new_se = lab.new_se()
    with LocalTransport(phone) as transport:
        old_id = lifecycle.open_service(lab.tsm, old_se, app_id, transport).id
        lifecycle.topup(lab.tsm, old_id, 700, transport)
    with LocalTransport(watch) as to:
        new = lifecycle.migrate(lab.tsm, old_id, new_se, to)
    assert card_balance(watch) == (700, 0)
    old = lifecycle.show(lab.tsm, old_id)
    assert old.state == "migrating" and old.waiting
    with LocalTransport(phone) as transport:
        lifecycle.contact(lab.tsm, old_se, transport)
    assert lifecycle.show(lab.tsm, old_id).state == "deleted" and new.state == "active"
    assert life_cycle(lab, old_se, phone, TRANSIT_INSTANCE) is None


def test_reissue_restores_onto_a_new_se_with_a_new_card_number(bank):
    lab, app_id = bank
    lost, old_se = lab.new_se()
    card, new_se = lab.new_se()
    with LocalTransport(lost) as transport:
        old = lifecycle.open_service(lab.tsm, old_se, app_id, transport, card_number=PAN)
    assert old.card_number == "************1111"
    record = send(lost, f"00A40400{len(BANK_INSTANCE) // 2:02X}{BANK_INSTANCE}", "00B2010C00")[1]
    assert b"1111" in record.data
    with LocalTransport(card) as transport:
        new = lifecycle.reissue(lab.tsm, old.id, new_se, transport, new_card_number=NEW_PAN)
    assert new.card_number == "************0004" and new.previous_id == old.id
    record = send(card, f"00A40400{len(BANK_INSTANCE) // 2:02X}{BANK_INSTANCE}", "00B2010C00")[1]
    assert b"0004" in record.data
    blocked = lifecycle.show(lab.tsm, old.id)
    assert blocked.state == "migrating" and blocked.waiting and "blocked" in blocked.history[-1].detail
    with LocalTransport(card) as transport:
        again = lifecycle.reissue(lab.tsm, old.id, new_se, transport)
    assert again.id == new.id  # a second call resumes, it does not install twice


def test_reissue_keeps_the_card_number_when_no_new_one_is_given(bank):
    lab, app_id = bank
    lost, old_se = lab.new_se()
    card, new_se = lab.new_se()
    with LocalTransport(lost) as transport:
        old = lifecycle.open_service(lab.tsm, old_se, app_id, transport, card_number=PAN)
    with LocalTransport(card) as transport:
        new = lifecycle.reissue(lab.tsm, old.id, new_se, transport)
    assert new.card_number == old.card_number
    record = send(card, f"00A40400{len(BANK_INSTANCE) // 2:02X}{BANK_INSTANCE}", "00B2010C00")[1]
    assert b"1111" in record.data


def test_the_card_number_is_never_stored_in_clear(bank):
    lab, app_id = bank
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        lifecycle.open_service(lab.tsm, se_id, app_id, transport, card_number=PAN)
    engine = lab.tsm.sessions.kw["bind"]
    with engine.connect() as conn:
        from sqlalchemy import MetaData

        meta = MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(table.select()):
                assert PAN not in " ".join(str(v) for v in row), table.name


def test_a_top_up_or_balance_of_an_app_that_is_no_purse_is_refused_before_the_card_is_reached(bank):
    lab, app_id = bank
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        service_id = lifecycle.open_service(lab.tsm, se_id, app_id, transport, card_number=PAN).id
    wire = Wire(card)
    with LocalTransport(wire) as transport:
        with pytest.raises(InvalidRequest, match="is not a purse"):
            lifecycle.topup(lab.tsm, service_id, 100, transport)
        with pytest.raises(InvalidRequest, match="is not a purse"):
            lifecycle.balance(lab.tsm, service_id, transport)
    assert wire.seen == [] and lifecycle.show(lab.tsm, service_id).jobs[-1][1] == "install-app"


def test_another_tenant_sees_no_service(purse):
    lab, app_id = purse
    _card, _se_id, service_id = opened(lab, app_id)
    lab.add_sp("rival")
    for scope in (Scope("sp", "rival"), Scope("vendor", "acme")):
        other = type(lab.tsm)(lab.tsm.sessions, lab.tsm.keys, lab.tsm.caller, scope)
        with pytest.raises(NotFound):
            lifecycle.show(other, service_id)
        with pytest.raises(NotFound):
            lifecycle.lock(other, service_id)
        assert lifecycle.list_services(other) == []
    own = type(lab.tsm)(lab.tsm.sessions, lab.tsm.keys, lab.tsm.caller, Scope("sp", "metro"))
    assert lifecycle.show(own, service_id).id == service_id


def test_services_keep_working_across_a_rotation_of_the_sps_ssd_keys(lab):
    lab.add_sp("metro-am", "am")
    app_id = lab.app("metro-am", "transit", perso=PURSE_PERSO)
    card, se_id, service_id = opened(lab, app_id)
    ssd = registry.show(lab.tsm, se_id).domain_of("metro-am")
    assert ssd is not None and ssd.mode == "am"
    rotation = jobs.rotate_keys(lab.tsm, se_id, 0x02, ssd.aid)
    assert lab.run(rotation, card).state == "done"
    assert key_versions(card, ssd.aid) == {0x02}
    with LocalTransport(card) as transport:
        assert lifecycle.lock(lab.tsm, service_id, transport).service.card_locked  # SET STATUS by the SSD
        assert lifecycle.unlock(lab.tsm, service_id, transport).service.state == "active"
        assert lifecycle.topup(lab.tsm, service_id, 99, transport).balance_after == 99
        assert lifecycle.delete(lab.tsm, service_id, transport).service.state == "deleted"
    assert TRANSIT_INSTANCE not in {a for a, *_ in card_entries(lab.card_content(se_id, card))}


def test_every_completed_operation_is_metered_once(purse):
    lab, app_id = purse
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        service_id = lifecycle.open_service(lab.tsm, se_id, app_id, transport).id
        lifecycle.topup(lab.tsm, service_id, 100, transport)
        lifecycle.lock(lab.tsm, service_id, transport)
        lifecycle.unlock(lab.tsm, service_id, transport)
        lifecycle.delete(lab.tsm, service_id, transport)
    report = billing.usage(lab.tsm, "metro", f"{datetime.now(UTC):%Y-%m}")
    assert {c.name: c.count for c in report.operations} == {"download": 1, "open": 1, "topup": 1, "lock": 1,
                                                           "unlock": 1, "delete": 1}
    assert {c.name: c.count for c in report.apps} == {app_id: 6}


def test_a_lost_device_that_does_not_answer_is_blocked_and_locked_at_next_contact(purse):
    lab, app_id = purse
    card, se_id, service_id = opened(lab, app_id)
    with LocalTransport(Unplugged(card, 1, after=False)) as gone:
        outcome = lifecycle.lock(lab.tsm, service_id, gone)
    assert outcome.service.state == "locked_lost" and "did not answer" in outcome.message
    assert outcome.service.waiting
    with LocalTransport(Unplugged(card, 1, after=False)) as gone:
        assert [j.state for j in lifecycle.contact(lab.tsm, se_id, gone)] == ["in_error"]
    assert lifecycle.show(lab.tsm, service_id).waiting  # lost again: still waiting
    with LocalTransport(card) as transport:
        assert [j.state for j in lifecycle.contact(lab.tsm, se_id, transport)] == ["done"]
    assert life_cycle(lab, se_id, card, TRANSIT_INSTANCE) & LOCKED


def test_open_refuses_before_ordering_what_the_personalization_lacks(bank):
    lab, app_id = bank
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport, pytest.raises(InvalidRequest, match="--card-number"):
        lifecycle.open_service(lab.tsm, se_id, app_id, transport)
    assert lifecycle.list_services(lab.tsm, se_id) == []
