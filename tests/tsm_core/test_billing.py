"""Metering and billing (issue 10, "Metering and billing"; docs/billing.md) on SQLite and PostgreSQL: events
metered across month boundaries and SPs, statements that add up, a tariff changed later that leaves an earlier
month alone, CSV that reads back to the report, one event per job and operation, bad input, tenancy, and the
0007 migration carrying 0006's tariffs over. The clock of the billing and registry services is faked."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, text

from keyservice.identity import Caller, CallerKind
from storage.session import alembic_config, make_engine, session_factory, upgrade
from tsm_core.billing import service as billing
from tsm_core.billing.models import MeteringEvent, TariffVersion
from tsm_core.billing.months import utc as utc_of
from tsm_core.billing.views import Count, StatementLine, UsageReport
from tsm_core.context import Tsm
from tsm_core.errors import Forbidden, InvalidRequest, NotFound
from tsm_core.registry import service as registry
from tsm_core.registry.models import Tenant
from tsm_core.tenancy import Scope

OFFICER = Caller("alice", CallerKind.OFFICER)
ONBOARDED = datetime(2026, 3, 10, 9, tzinfo=UTC)
MARCH_TARIFF: dict[str, Any] = {"onboarding": 50_000, "monthly": 10_000, "per_download": 150,
                                "per_operation": {"lock": 20, "topup": 5}, "currency": "eur"}


@dataclass
class Clock:
    """The time the billing and registry services read."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(ONBOARDED)
    monkeypatch.setattr(billing, "now", fake)
    monkeypatch.setattr(registry, "now", fake)
    return fake


@pytest.fixture
def tsm(keyservice, db_url: str) -> Iterator[Tsm]:  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    yield Tsm(session_factory(engine), keyservice, OFFICER)
    engine.dispose()


@pytest.fixture
def sps(tsm: Tsm, clock: Clock) -> dict[str, int]:
    """transitco and bankco, onboarded on ONBOARDED; their tenant ids."""
    for name in ("transitco", "bankco"):
        registry.add_tenant(tsm, name, "sp")
    with tsm.sessions() as db:
        return {name: registry.tenant_row(db, name).id for name in ("transitco", "bankco")}


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def meter_all(tsm: Tsm, *events: dict[str, Any]) -> None:
    with tsm.transaction() as db:
        for event in events:
            billing.meter(db, **event)


def event_count(tsm: Tsm) -> int:
    with tsm.sessions() as db:
        return int(db.execute(select(func.count()).select_from(MeteringEvent)).scalar_one())


@pytest.fixture
def metered(tsm: Tsm, sps: dict[str, int]) -> dict[str, int]:
    """transitco's March tariff and its events around the March/April boundary (UTC), and one of bankco's."""
    billing.set_tariff(tsm, "transitco", **MARCH_TARIFF)
    t, b = sps["transitco"], sps["bankco"]
    wearable = {"sp_id": t, "app_id": "app-t1", "se_id": "se-01", "se_kind": "wearable"}
    meter_all(
        tsm,
        {"sp_id": t, "operation": "download", "app_id": "app-t1", "se_kind": "phone", "job_id": "job-1",
         "at": utc(2026, 3, 1)},
        {**wearable, "operation": "download", "job_id": "job-2", "at": utc(2026, 3, 15)},
        {**wearable, "operation": "download", "app_id": "app-t2", "job_id": "job-3",  # 23:30 UTC on 31 March
         "at": datetime(2026, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))},
        {**wearable, "operation": "lock", "at": utc(2026, 3, 20)},
        {**wearable, "operation": "lock", "at": utc(2026, 3, 21)},
        {**wearable, "operation": "unlock", "at": utc(2026, 3, 22)},
        {**wearable, "operation": "topup", "job_id": "job-4", "at": datetime(2026, 3, 31, 23, 59, 59, 999999, UTC)},
        {"sp_id": t, "operation": "download", "app_id": "app-t1", "se_kind": "phone", "job_id": "job-5",
         "at": utc(2026, 4, 1)},
        {"sp_id": b, "operation": "download", "app_id": "app-b1", "se_kind": "card", "job_id": "job-6",
         "at": utc(2026, 3, 15)},
    )
    return sps


MARCH_LINES = (StatementLine("onboarding", 1, 50_000, 50_000), StatementLine("monthly", 1, 10_000, 10_000),
               StatementLine("download", 3, 150, 450), StatementLine("lock", 2, 20, 40),
               StatementLine("topup", 1, 5, 5))


def test_the_monthly_report_adds_up(tsm, metered):
    march = billing.usage(tsm, "transitco", "2026-03")
    assert (march.sp, march.month, march.currency, march.tariff_from) == ("transitco", "2026-03", "EUR", ONBOARDED)
    assert march.operations == (Count("download", 3), Count("lock", 2), Count("unlock", 1), Count("topup", 1))
    assert march.apps == (Count("app-t1", 6), Count("app-t2", 1))
    assert march.se_kinds == (Count("phone", 1), Count("wearable", 6))
    assert march.events == 7
    assert march.lines == MARCH_LINES
    assert march.total == 60_495 == sum(line.amount for line in march.lines)
    assert all(line.amount == line.quantity * line.unit_price for line in march.lines)

    april = billing.usage(tsm, "transitco", "2026-04")
    assert april.operations == (Count("download", 1),) and april.se_kinds == (Count("phone", 1),)
    assert april.lines == (StatementLine("monthly", 1, 10_000, 10_000), StatementLine("download", 1, 150, 150))
    assert april.total == 10_150

    before = billing.usage(tsm, "transitco", "2026-02")  # before the SP was onboarded and any tariff was set
    assert (before.events, before.lines, before.total, before.tariff_from) == (0, (), 0, None)

    bank = billing.usage(tsm, "bankco", "2026-03")  # no tariff: counted, nothing to pay
    assert bank.operations == (Count("download", 1),) and bank.apps == (Count("app-b1", 1),)
    assert bank.lines == (StatementLine("onboarding", 1, 0, 0), StatementLine("monthly", 1, 0, 0),
                          StatementLine("download", 1, 0, 0))
    assert bank.total == 0


def test_a_tariff_changed_later_leaves_an_earlier_month_alone(tsm, metered, clock):
    march = billing.usage(tsm, "transitco", "2026-03")
    clock.at = utc(2026, 4, 2)
    changed = billing.set_tariff(tsm, "transitco", monthly=1, per_download=999, per_operation={"lock": 0,
                                                                                               "unlock": 7})
    assert changed.per_operation == (("topup", 5), ("unlock", 7)) and changed.onboarding == 50_000
    assert changed.effective_from == utc(2026, 4, 2) and changed.set_by == "alice"
    assert billing.tariff(tsm, "transitco") == changed
    assert billing.usage(tsm, "transitco", "2026-03") == march
    april = billing.usage(tsm, "transitco", "2026-04")
    assert april.lines == (StatementLine("monthly", 1, 1, 1), StatementLine("download", 1, 999, 999))
    assert april.tariff_from == utc(2026, 4, 2)

    clock.at = utc(2026, 4, 30, 23, 59)  # a change within a month prices the whole month (provisional till it ends)
    billing.set_tariff(tsm, "transitco", monthly=2)
    assert billing.usage(tsm, "transitco", "2026-04").lines[0] == StatementLine("monthly", 1, 2, 2)
    assert billing.usage(tsm, "transitco", "2026-03") == march


def read_csv(text: str) -> UsageReport:
    """The report again, from its CSV alone."""
    rows = list(csv.DictReader(io.StringIO(text)))
    counts = {kind: tuple(Count(r["name"], int(r["quantity"])) for r in rows if r["kind"] == kind)
              for kind in ("operation", "app", "se_kind")}
    (total,) = [r for r in rows if r["kind"] == "total"]
    lines = tuple(StatementLine(r["name"], int(r["quantity"]), int(r["unit_price"]),
                                int(r["amount"])) for r in rows if r["kind"] == "line")
    return UsageReport(total["sp"], total["month"], total["currency"], None,
                       sum(c.count for c in counts["operation"]), counts["operation"], counts["app"],
                       counts["se_kind"], lines, int(total["amount"]))


def test_the_csv_reads_back_to_the_report(tsm, metered):
    meter_all(tsm, {"sp_id": metered["transitco"], "operation": "open", "app_id": 'app,"quoted"',
                    "se_kind": "iot", "at": utc(2026, 3, 5)})
    march = billing.usage(tsm, "transitco", "2026-03")
    text_form = billing.usage_csv(march)
    assert text_form.splitlines()[0] == ",".join(billing.CSV_COLUMNS)
    assert read_csv(text_form) == replace(march, tariff_from=None)
    assert Count('app,"quoted"', 1) in march.apps


def test_a_job_is_metered_once_per_operation(tsm, sps):
    sp = sps["transitco"]
    with tsm.transaction() as db:
        billing.meter(db, sp_id=sp, operation="download", job_id="job-a")
        billing.meter(db, sp_id=sp, operation="download", job_id="job-a")
        billing.meter(db, sp_id=sp, operation="open", job_id="job-a")
    with tsm.transaction() as db:  # the job resumed: its completion recorded again with the caller's own write
        db.add(Tenant(kind="vendor", name="acme", created_at=ONBOARDED))
        billing.meter(db, sp_id=sp, operation="download", job_id="job-a", at=utc(2026, 5, 1))
        billing.meter(db, sp_id=sp, operation="lock")
        billing.meter(db, sp_id=sp, operation="lock")
    assert event_count(tsm) == 4
    assert [t.name for t in registry.list_tenants(tsm, "vendor")] == ["acme"]
    assert billing.usage(tsm, "transitco", "2026-03").operations == (
        Count("download", 1), Count("open", 1), Count("lock", 2))


@pytest.mark.parametrize(("call", "says"), [
    ({"operation": "teleport"}, "operation 'teleport' is not one of download, open"),
    ({"operation": "open", "app_id": "a" * 33}, "app_id is at most 32"),
    ({"operation": "open", "at": datetime(2026, 3, 1)}, "time zone"),
    ({"operation": "open", "sp_id": 999_999}, "no service provider with id 999999"),
])
def test_bad_metering_is_refused(tsm, sps, call, says):
    with pytest.raises(InvalidRequest, match=says), tsm.transaction() as db:
        billing.meter(db, **{"sp_id": sps["transitco"], **call})
    assert event_count(tsm) == 0


def test_a_vendor_is_no_sp_to_meter_for(tsm, sps):
    vendor = registry.add_tenant(tsm, "acme", "vendor")
    with tsm.sessions() as db:
        vendor_id = registry.tenant_row(db, vendor.name).id
    with pytest.raises(InvalidRequest, match="no service provider"), tsm.transaction() as db:
        billing.meter(db, sp_id=vendor_id, operation="open")


@pytest.mark.parametrize(("change", "says"), [
    ({"monthly": -1}, "the monthly fee -1 is not an amount"),
    ({"onboarding": 2**31}, "the onboarding fee 2147483648 is not an amount"),
    ({"per_download": True}, "the price per download True is not an amount"),
    ({"per_operation": {"lock": -5}}, "the price of lock -5 is not an amount"),
    ({"per_operation": {"teleport": 5}}, "operation 'teleport' is not one of"),
    ({"per_operation": {"download": 5}}, "downloads are priced per download"),
    ({"currency": "EURO"}, "currency 'EURO' is not an ISO 4217 code"),
    ({"currency": "€"}, "is not an ISO 4217 code"),
    ({}, "nothing to set"),
])
def test_bad_tariffs_are_refused(tsm, sps, change, says):
    with pytest.raises(InvalidRequest, match=says):
        billing.set_tariff(tsm, "transitco", **change)
    assert billing.tariff(tsm, "transitco").effective_from is None


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "2026-1", "26-01", "2026/03", "２０２６-03", "0000-01",
                                   "9999-12", " 2026-03", ""])
def test_a_month_is_yyyy_mm(tsm, sps, month):
    with pytest.raises(InvalidRequest, match="is not a month written YYYY-MM"):
        billing.usage(tsm, "transitco", month)


def test_an_unknown_sp_is_not_found(tsm, sps):
    for call in (lambda: billing.usage(tsm, "nobody", "2026-03"), lambda: billing.tariff(tsm, "nobody"),
                 lambda: billing.set_tariff(tsm, "nobody", monthly=1)):
        with pytest.raises(NotFound, match=r"no service provider named 'nobody' \(tsm sp list\)"):
            call()


def test_an_sp_sees_only_its_own_billing_and_sets_no_tariff(tsm, metered):
    bank = replace(tsm, scope=Scope("sp", "bankco"))
    assert billing.usage(bank, "bankco", "2026-03").operations == (Count("download", 1),)
    assert billing.tariff(bank, "bankco").effective_from is None
    for call in (lambda: billing.usage(bank, "transitco", "2026-03"), lambda: billing.tariff(bank, "transitco")):
        with pytest.raises(NotFound) as refused:
            call()
        assert str(refused.value) == "no service provider named 'transitco' (tsm sp list)"  # as if it did not exist
    for sp in ("bankco", "transitco"):
        with pytest.raises(Forbidden, match="setting a tariff is not open to sp:bankco"):
            billing.set_tariff(bank, sp, monthly=0)
    vendor = replace(tsm, scope=Scope("vendor", "acme"))
    for call in (lambda: billing.usage(vendor, "transitco", "2026-03"), lambda: billing.tariff(vendor, "transitco"),
                 lambda: billing.set_tariff(vendor, "transitco", monthly=0)):
        with pytest.raises(Forbidden, match="not open to vendor:acme"):
            call()
    assert billing.tariff(tsm, "transitco").monthly == 10_000


def test_migration_0007_keeps_the_tariffs_of_0006(db_url):
    upgrade(db_url, "0006")
    engine = make_engine(db_url)
    terms = "SELECT sp_id, currency, onboarding, monthly, per_download, per_operation"
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tsm_tenants (id, kind, name, sd_mode, created_at) "
                              "VALUES (7, 'sp', 'transitco', 'cm', :at)"), {"at": ONBOARDED})
            conn.execute(text("INSERT INTO tsm_tariffs (sp_id, currency, onboarding, monthly, per_download, "
                              "per_operation, updated_at) VALUES (7, 'CHF', 1, 2, 3, '{\"lock\": 4}', :at)"),
                         {"at": ONBOARDED})
        upgrade(db_url, "0007")
        with session_factory(engine)() as db:
            (version,) = db.execute(select(TariffVersion)).scalars()
            assert (version.sp_id, version.currency, version.onboarding, version.monthly, version.per_download,
                    version.per_operation, version.set_by) == (7, "CHF", 1, 2, 3, '{"lock": 4}', "")
            assert utc_of(version.effective_from) == ONBOARDED
            db.add(TariffVersion(sp_id=7, effective_from=ONBOARDED + timedelta(days=1), currency="CHF", onboarding=1,
                                 monthly=9, per_download=3, per_operation="{}"))
            db.commit()
        command.downgrade(alembic_config(db_url), "0006")
        with engine.connect() as conn:
            rows = conn.execute(text(f"{terms} FROM tsm_tariffs")).all()
        assert [tuple(row) for row in rows] == [(7, "CHF", 1, 9, 3, "{}")]  # the latest version
    finally:
        engine.dispose()
