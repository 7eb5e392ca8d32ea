"""Delegated Management and DAP in provisioning jobs, against an in-process cardsim card, on SQLite and PostgreSQL.

DM: the ISD gets the issuer's token key (KVN 70) and receipt key (71); the SSD has the DM privilege; INSTALL [for
load] and INSTALL [for install] carry tokens made in the HSM, and the card's receipts are verified in the HSM
with a confirmation counter that must grow. DAP: an SP with a DAP key gets SSDs that verify a DAP on every load.
"""

from __future__ import annotations

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice.inventory import KeyState, KeyUsage
from keyservice.views import NewKey
from tests.tsm_core.lab import BANK_CARD_DGIS, BANK_INSTANCE, KEY_MANAGEMENT, Lab, assert_registry_is_card, key_versions
from tsm_core.errors import Conflict, NotFound
from tsm_core.gp.getstatus import Privilege
from tsm_core.jobs import engine
from tsm_core.jobs import service as jobs
from tsm_core.registry import service as registry

ISD = "A000000151000000"
TOKEN, RECEIPT = "issuer-token", "issuer-receipt"


def _issuer_dm_keys(lab: Lab) -> None:
    keys = lab.keys.keys
    keys.generate(KEY_MANAGEMENT, NewKey(TOKEN, KeyAlgorithm.RSA, 1024, KeyUsage.TOKEN_KEY, "issuer"))
    keys.generate(KEY_MANAGEMENT, NewKey(RECEIPT, KeyAlgorithm.AES, 16, KeyUsage.RECEIPT_KEY, "issuer",
                                         exportable=True))
    for label in (TOKEN, RECEIPT):
        keys.change_state(KEY_MANAGEMENT, label, KeyState.ACTIVE)


def _audited(lab: Lab, operation: str) -> list[str]:
    return [r.outcome for r in lab.keys.audit.records(500) if r.operation == operation]


def test_a_dm_ssd_gets_content_only_with_hsm_tokens_and_verified_receipts(lab: Lab) -> None:
    card, se_id = lab.new_se()
    lab.add_sp("bankco", "dm")
    app_id = lab.app("bankco", "bank")
    with pytest.raises(NotFound, match="token key"):  # DM needs the issuer's keys: nothing is planned without
        jobs.order(lab.tsm, se_id, app_id)
    _issuer_dm_keys(lab)
    view = lab.run(jobs.order(lab.tsm, se_id, app_id), card, BANK_CARD_DGIS)
    assert view.state == engine.DONE, view.error
    assert [s.name for s in view.steps] == ["dm-keys", "ssd", "ssd-keys", "load", "install", "personalize",
                                            "activate"]
    assert {0x70, 0x71} <= key_versions(card, ISD)  # the token and receipt keys are the ISD's
    ssd = registry.show(lab.tsm, se_id).domain_of("bankco")
    assert ssd is not None and ssd.mode == "dm"
    on_card = {e.aid.hex().upper(): e for e in lab.card_content(se_id, card).applications}
    assert on_card[ssd.aid].privileges == Privilege.SECURITY_DOMAIN | Privilege.DELEGATED_MANAGEMENT
    assert on_card[BANK_INSTANCE].associated_sd_aid == bytes.fromhex(ssd.aid)  # installed through the SSD
    assert _audited(lab, "dm-token") == ["ok", "ok"]  # INSTALL [for load], INSTALL [for install]
    assert _audited(lab, "verify-receipt") == ["ok", "ok"]  # the LOAD and the INSTALL receipts
    assert_registry_is_card(lab, se_id, card)

    with lab.tsm.sessions() as db:  # the last confirmation counter is the registry's
        last = registry.se_row(db, se_id).confirmation_counter
    assert last >= 2
    with pytest.raises(Conflict, match="replayed"):  # a receipt whose counter does not grow is refused
        registry.record_receipt(lab.tsm, se_id, last)


def test_a_second_dm_ssd_finds_the_isd_keys_already_there(lab: Lab) -> None:
    card, se_id = lab.new_se()
    _issuer_dm_keys(lab)
    for sp in ("bankco", "transitco"):
        lab.add_sp(sp, "dm")
        view = lab.run(jobs.create_ssd(lab.tsm, se_id, sp, "dm"), card)
        assert view.state == engine.DONE, view.error
    assert [(s.name, s.state) for s in view.steps] == [("dm-keys", "present"), ("ssd", "done"), ("ssd-keys", "done")]


def test_an_sp_with_a_dap_key_loads_only_with_its_dap(lab: Lab) -> None:
    card, se_id = lab.new_se()
    lab.add_sp("transitco", "am")
    keys = lab.keys.keys
    keys.generate(KEY_MANAGEMENT, NewKey("transitco-dap", KeyAlgorithm.AES, 16, KeyUsage.DAP_KEY, "sp:transitco",
                                         exportable=True))
    keys.change_state(KEY_MANAGEMENT, "transitco-dap", KeyState.ACTIVE)
    view = lab.run(jobs.order(lab.tsm, se_id, lab.app("transitco", "transit")), card)
    assert view.state == engine.DONE, view.error
    ssd = registry.show(lab.tsm, se_id).domain_of("transitco")
    assert ssd is not None
    assert key_versions(card, ssd.aid) == {0x01, 0x73}  # the SP's keys replaced FF, and its DAP key
    privileges = {e.aid.hex().upper(): e.privileges for e in lab.card_content(se_id, card).applications}
    assert Privilege.DAP_VERIFICATION in privileges[ssd.aid]  # the card itself refuses a load without a DAP
    assert _audited(lab, "dap-signature") == ["ok"]
    assert_registry_is_card(lab, se_id, card)

    keys.change_state(KEY_MANAGEMENT, "transitco-dap", KeyState.SUSPENDED)
    other = lab.app("transitco", "bank", approve=False)
    with pytest.raises(Conflict, match="no active DAP key"):  # the review sees the SSDs verify DAPs
        jobs.catalog.review(lab.tsm, other, approve=True)
