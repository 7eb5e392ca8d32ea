"""The service life cycle's command-line contract (issue 10's block) through real `tsm` subprocesses against
simulated card files: ids and balances on the last line, lock and unlock with and without the device, the
one-line typed errors (exit 2) for bad input and impossible transitions."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.tsm_core.lab import TRANSIT_INSTANCE
from tests.tsm_core.test_lifecycle import BANK_PERSO, PURSE_PERSO
from tests.tsm_core.test_tsm_cli import ID, TEST_KEY, Home

ID["svc"] = re.compile(r"svc-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Home]:
    """`tsm init --test-token`, the vendor's keys, the issuer's data key, a phone and a wearable card discovered,
    a transit SP with a purse app and a bank with a card app, approved."""
    path = tmp_path_factory.mktemp("service-cli")
    made = Home(path, path / "phone.json", "")
    made.ok("init", "--test-token")
    for label, usage in (("vendor-isd", "ISD_KEYSET"), ("vendor-ssd", "SSD_KEYSET")):
        made.ok("keys", "import-test", "--label", label, "--type", "aes", "--hex", TEST_KEY, "--usage", usage)
    made.ok("keys", "generate", "--label", "issuer-data", "--type", "aes", "--length", "32", "--usage", "DATA_KEY",
            "--owner", "issuer")
    made.ok("keys", "state", "issuer-data", "active")
    for card in ("phone", "watch"):
        made.ok("cardsim", "new", "--profile", "wearable", "--out", str(path / f"{card}.json"))
    made.se = made.last_id("se", "se", "discover", "--card", "phone.json", "--key", "vendor-isd",
                           "--initial-ssd-key", "vendor-ssd")
    made.ok("sp", "add", "metro")
    made.ok("sp", "add", "bankco")
    for name in ("transit", "bank"):
        made.ok("cardsim", "cap", name, "--out", f"{name}.cap")
    yield made


def test_the_service_commands(home):
    phone, watch = "phone.json", "watch.json"
    watch_se = home.last_id("se", "se", "discover", "--card", watch, "--key", "vendor-isd", "--initial-ssd-key",
                            "vendor-ssd")
    purse = home.last_id("app", "app", "submit", "--sp", "metro", "--cap", "transit.cap", "--instance-aid",
                         TRANSIT_INSTANCE, "--perso", PURSE_PERSO)
    home.ok("app", "review", purse, "--approve")
    svc = home.last_id("svc", "service", "open", home.se, purse, "--card", phone)
    assert home.ok("service", "balance", svc, "--card", phone)[-1] == "0"
    assert home.ok("service", "topup", svc, "--amount", "1500", "--card", phone)[-1] == "1500"

    locked = home.ok("service", "lock", svc)
    assert locked[-1] == svc and "next contact" in locked[0]
    home.error("invalid_transition", "service", "topup", svc, "--amount", "10", "--card", phone)
    assert "1 waiting job(s) run" in home.ok("se", "sync", home.se, "--card", phone)[-1]
    assert home.ok("service", "unlock", svc, "--card", phone)[0] == "active: unlocked on the card"
    assert home.ok("service", "unlock", svc)[0] == "already active"

    shown = home.ok("service", "show", svc, "--card", phone)
    assert shown[-1] == svc and any(line.split()[:2] == ["state", "active"] for line in shown)
    assert any(line.split()[:2] == ["balance", "1500,"] for line in shown)

    new = home.ok("service", "migrate", svc, "--to", watch_se, "--card", watch, "--from-card", phone)[-1]
    assert ID["svc"].fullmatch(new) and new != svc
    assert home.ok("service", "balance", new, "--card", watch)[-1] == "1500"
    assert any("deleted" in line for line in home.ok("service", "show", svc))
    listed = {line.split()[0]: line.split()[3] for line in home.ok("service", "list")[1:]}
    assert listed == {svc: "deleted", new: "active"}

    refund = home.ok("service", "unsubscribe", new, "--card", watch)
    assert "refund 1500" in refund[0] and refund[-1] == new


def test_open_with_a_card_number_and_reissue(home):
    bank = home.last_id("app", "app", "submit", "--sp", "bankco", "--cap", "bank.cap", "--instance-aid",
                        "F00000000201010101", "--perso", BANK_PERSO)
    home.ok("app", "review", bank, "--approve")
    home.ok("cardsim", "new", "--profile", "wearable", "--out", str(home.path / "new.json"))
    new_se = home.last_id("se", "se", "discover", "--card", "new.json", "--key", "vendor-isd", "--initial-ssd-key",
                          "vendor-ssd")
    svc = home.last_id("svc", "service", "open", home.se, bank, "--card", "phone.json", "--card-number",
                       "4111111111111111")
    assert any("************1111" in line for line in home.ok("service", "show", svc))
    again = home.ok("service", "reissue", svc, "--to", new_se, "--card", "new.json", "--new-card-number",
                    "5500000000000004")
    assert any("************0004" in line for line in again)
    assert home.last_id("svc", "service", "delete", again[-1], "--card", "new.json") == again[-1]


@pytest.mark.parametrize(("code", "args"), [
    ("not_found", ("service", "show", "svc-000000000000")),
    ("invalid_request", ("service", "open", "SE", "APP", "--card", "phone.json", "--card-number", "12ab")),
    ("usage", ("service", "topup", "svc-000000000000", "--amount", "-5", "--card", "phone.json")),
    ("usage", ("service", "balance", "svc-000000000000")),
    ("not_found", ("service", "lock", "svc-000000000000")),
])
def test_bad_input_is_one_line(home, code, args):
    home.error(code, *args)
