"""`tsm tariff set|show` and `tsm report usage` (docs/cli.md) through real `tsm` subprocesses in a fresh $TSM_HOME:
the statement adds up in text, CSV and JSON alike, and every bad input is one `error[code]: ...` line with exit
status 2. The events are metered in the home's database the way the operations do it (`billing.meter`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from storage.config import load_settings
from storage.session import make_engine, session_factory
from tests.tsm_core.test_tsm_cli import Home
from tsm_core.billing import service as billing
from tsm_core.registry import service as registry

TARIFF = ["--onboarding", "50000", "--monthly", "10000", "--per-download", "150", "--per-operation", "lock=20",
          "--per-operation", "topup=5", "--currency", "EUR"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """`tsm init --test-token` and two SPs."""
    path = tmp_path_factory.mktemp("billing-cli")
    made = Home(path, path / "card.json", "")
    made.ok("init", "--test-token")
    made.ok("sp", "add", "transitco")
    made.ok("sp", "add", "bankco")
    yield made


def meter(home: Home, sp: str, *operations: str) -> None:
    """Meter `operations` of SP `sp` now, in the home's database."""
    engine = make_engine(load_settings({"TSM_HOME": str(home.path / "var")}).database_url)
    try:
        with session_factory(engine)() as db, db.begin():
            sp_id = registry.tenant_row(db, sp, "sp").id
            for n, operation in enumerate(operations):
                billing.meter(db, sp_id=sp_id, operation=operation, app_id=f"app-{n % 2}", se_kind="wearable")
    finally:
        engine.dispose()


def fields(lines: list[str]) -> dict[str, str]:
    """`field value` lines up to the first blank line."""
    head = lines[: lines.index("")] if "" in lines else lines
    return dict(line.split(maxsplit=1) for line in head)


def tables(lines: list[str]) -> dict[str, list[list[str]]]:
    """The tables after the field lines, by the name of their first column."""
    blocks = "\n".join(lines).split("\n\n")[1:]
    return {block.split()[0]: [row.split() for row in block.splitlines()[1:]] for block in blocks}


def test_tariff_and_monthly_report(home):
    set_out = home.ok("tariff", "set", "--sp", "transitco", *TARIFF)
    tariff = fields(set_out)
    assert {k: tariff[k] for k in ("sp", "currency", "onboarding", "monthly", "per-download", "per-operation",
                                   "set-by")} == {
        "sp": "transitco", "currency": "EUR", "onboarding": "50000", "monthly": "10000", "per-download": "150",
        "per-operation": "lock=20 topup=5", "set-by": "alice"}
    assert home.ok("tariff", "show", "--sp", "transitco") == set_out
    assert json.loads("\n".join(home.ok("tariff", "show", "--sp", "transitco", "--json")))["per_operation"] == [
        ["lock", 20], ["topup", 5]]
    assert fields(home.ok("tariff", "show", "--sp", "bankco"))["since"] == "never set"

    meter(home, "transitco", "download", "download", "download", "lock", "unlock")
    meter(home, "bankco", "download")
    month = f"{datetime.now(UTC):%Y-%m}"
    text_out = home.ok("report", "usage", "--sp", "transitco", "--month", month)
    head, found = fields(text_out), tables(text_out)
    assert (head["sp"], head["month"], head["currency"], head["events"]) == ("transitco", month, "EUR", "5")
    assert found["OPERATION"] == [["download", "3"], ["lock", "1"], ["unlock", "1"]]
    assert found["APP"] == [["app-0", "3"], ["app-1", "2"]] and found["SE-KIND"] == [["wearable", "5"]]
    assert found["ITEM"] == [["onboarding", "1", "50000", "50000"], ["monthly", "1", "10000", "10000"],
                             ["download", "3", "150", "450"], ["lock", "1", "20", "20"], ["total", "-", "-", "60470"]]
    assert text_out[-1].split()[-1] == "60470"

    rows = list(csv.DictReader(io.StringIO("\n".join(home.ok("report", "usage", "--sp", "transitco", "--month",
                                                             month, "--csv")))))
    assert [[r["name"], r["quantity"], r["unit_price"], r["amount"]] for r in rows if r["kind"] == "line"] == \
        found["ITEM"][:-1]
    assert [(r["kind"], r["amount"], r["currency"]) for r in rows][-1] == ("total", "60470", "EUR")
    assert {(r["kind"], r["name"], r["quantity"]) for r in rows if r["kind"] == "operation"} == {
        ("operation", "download", "3"), ("operation", "lock", "1"), ("operation", "unlock", "1")}
    report = json.loads("\n".join(home.ok("report", "usage", "--sp", "transitco", "--month", month, "--json")))
    assert report["total"] == 60470 and report["lines"][2] == {"item": "download", "quantity": 3,
                                                                "unit_price": 150, "amount": 450}
    assert fields(home.ok("report", "usage", "--sp", "bankco", "--month", month))["events"] == "1"


@pytest.mark.parametrize(("code", "args", "says"), [
    ("invalid_request", ["tariff", "set", "--sp", "transitco", "--monthly", "-1"], "the monthly fee -1 is not"),
    ("invalid_request", ["tariff", "set", "--sp", "transitco", "--per-download", "99999999999999999999"], "not an"),
    ("invalid_request", ["tariff", "set", "--sp", "transitco", "--per-operation", "teleport=5"], "'teleport'"),
    ("invalid_request", ["tariff", "set", "--sp", "transitco", "--per-operation", "download=5"], "per download"),
    ("invalid_request", ["tariff", "set", "--sp", "transitco", "--currency", "EURO"], "ISO 4217"),
    ("invalid_request", ["tariff", "set", "--sp", "transitco"], "nothing to set"),
    ("usage", ["tariff", "set", "--sp", "transitco", "--per-operation", "lock=x"], "is not OP=MINOR"),
    ("usage", ["tariff", "set", "--sp", "transitco", "--per-operation", "lock"], "is not OP=MINOR"),
    ("usage", ["tariff", "set", "--sp", "transitco", "--monthly", "ten"], "'ten' is not a valid integer"),
    ("usage", ["tariff", "set", "--monthly", "1"], "Missing option '--sp'"),
    ("not_found", ["tariff", "set", "--sp", "nobody", "--monthly", "1"], "no service provider named 'nobody'"),
    ("not_found", ["tariff", "show", "--sp", "nobody"], "no service provider named 'nobody'"),
    ("invalid_request", ["report", "usage", "--sp", "transitco", "--month", "2026-13"], "'2026-13' is not a month"),
    ("invalid_request", ["report", "usage", "--sp", "transitco", "--month", "March"], "'March' is not a month"),
    ("not_found", ["report", "usage", "--sp", "nobody", "--month", "2026-03"], "no service provider named 'nobody'"),
    ("usage", ["report", "usage", "--sp", "transitco", "--month", "2026-03", "--csv", "--json"], "at most one"),
])
def test_bad_input_is_one_error_line(home, code, args, says):
    assert says in home.error(code, *args)
