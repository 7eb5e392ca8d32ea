"""Metering and billing per service provider (issue 10, "Metering and billing"; docs/billing.md).

Every completed download/install and every life-cycle operation is a metering event, written by `meter` in the
transaction that records the operation's outcome. A tariff is kept as versions, each in force from the time it
was set; a month (UTC) is priced with the version in force at its end. Events and versions are never changed,
so a month's statement is computed again from them at any time and comes out the same: a tariff changed after a
month has ended does not change that month's statement.

Tenancy (tsm_core/tenancy.py): only the issuer sets tariffs; an SP sees its own tariff and reports (another
SP's is answered as if it did not exist); an SE vendor sees none.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tsm_core.billing import DOWNLOAD, OPERATIONS
from tsm_core.billing.models import MeteringEvent, TariffVersion
from tsm_core.billing.months import month_bounds, utc
from tsm_core.billing.statement import statement
from tsm_core.billing.views import Count, TariffView, UsageReport
from tsm_core.context import Tsm, now
from tsm_core.errors import InvalidRequest
from tsm_core.registry import service as registry
from tsm_core.registry.models import Tenant

MAX_AMOUNT: Final = 2**31 - 1
"""The largest amount a tariff holds (32-bit integer columns), in minor units."""
CURRENCY: Final = re.compile(r"[A-Z]{3}")
"""An ISO 4217 alphabetic code."""
FIELD_LENGTHS: Final = {"app_id": 32, "se_id": 32, "se_kind": 16, "service_id": 32, "job_id": 32}
CSV_COLUMNS: Final = ("sp", "month", "kind", "name", "quantity", "unit_price", "amount", "currency")


def check_operation(operation: str) -> str:
    """A metered operation's name, or InvalidRequest."""
    if operation not in OPERATIONS:
        raise InvalidRequest(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
    return operation


# ---- metering --------------------------------------------------------------------------------------------------


def meter(db: Session, *, sp_id: int, operation: str, app_id: str = "", se_id: str = "", se_kind: str = "",
          service_id: str = "", job_id: str | None = None, at: datetime | None = None) -> None:
    """Record one metering event of SP `sp_id` in the caller's transaction (at `at`, default now).

    Idempotent per (job_id, operation) when `job_id` is given: a resumed job's completion is metered once. The
    insert skips a duplicate (ON CONFLICT DO NOTHING), so it never fails the caller's transaction, and a
    concurrent duplicate waits for the first and is skipped as well. InvalidRequest for an unknown operation,
    an unknown SP, a naive `at` or a field too long.
    """
    check_operation(operation)
    fields = {"app_id": app_id, "se_id": se_id, "se_kind": se_kind, "service_id": service_id, "job_id": job_id or ""}
    for name, value in fields.items():
        if len(value) > FIELD_LENGTHS[name]:
            raise InvalidRequest(f"a metering event's {name} is at most {FIELD_LENGTHS[name]} characters")
    if at is not None and at.tzinfo is None:
        raise InvalidRequest("a metering event's time must carry its time zone")
    tenant = db.get(Tenant, sp_id)
    if tenant is None or tenant.kind != "sp":
        raise InvalidRequest(f"no service provider with id {sp_id} to meter {operation} for")
    values = {"sp_id": sp_id, "operation": operation, "app_id": app_id, "se_id": se_id, "se_kind": se_kind,
              "service_id": service_id, "job_id": job_id, "at": utc(at or now())}
    unique = ["job_id", "operation"]
    if db.get_bind().dialect.name == "postgresql":
        db.execute(postgresql.insert(MeteringEvent).values(values).on_conflict_do_nothing(index_elements=unique))
    else:
        db.execute(sqlite.insert(MeteringEvent).values(values).on_conflict_do_nothing(index_elements=unique))


# ---- tariffs ---------------------------------------------------------------------------------------------------


def _amount(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidRequest(f"{what} {value!r} is not an amount in minor units (an integer 0 to {MAX_AMOUNT})")
    return value


def _prices(per_operation: Mapping[str, int]) -> dict[str, int]:
    for operation, price in per_operation.items():
        if check_operation(operation) == DOWNLOAD:
            raise InvalidRequest("downloads are priced per download, not per operation")
        _amount(f"the price of {operation}", price)
    return dict(per_operation)


def _in_force(db: Session, sp_id: int, before: datetime | None = None) -> TariffVersion | None:
    """The SP's latest tariff version, or the latest set before `before`."""
    query = select(TariffVersion).where(TariffVersion.sp_id == sp_id)
    if before is not None:
        query = query.where(TariffVersion.effective_from < before)
    query = query.order_by(TariffVersion.effective_from.desc(), TariffVersion.id.desc()).limit(1)
    return db.execute(query).scalar_one_or_none()


def _view(sp: str, row: TariffVersion | None) -> TariffView:
    return TariffView.free(sp) if row is None else TariffView.of(sp, row)


def set_tariff(tsm: Tsm, sp: str, *, onboarding: int | None = None, monthly: int | None = None,
               per_download: int | None = None, per_operation: Mapping[str, int] | None = None,
               currency: str | None = None) -> TariffView:
    """A new version of SP `sp`'s tariff, in force from now: the fields given change, the others are kept.

    `per_operation` sets the price of the operations it names (0 takes an operation's price away). Amounts are
    integers 0..MAX_AMOUNT in minor units. Issuer only (Forbidden otherwise).
    """
    tsm.scope.only("issuer", action="setting a tariff")
    if onboarding is None and monthly is None and per_download is None and not per_operation and currency is None:
        raise InvalidRequest("nothing to set: give an onboarding fee, a monthly fee, a price per download or per "
                             "operation, or a currency")
    for what, value in (("the onboarding fee", onboarding), ("the monthly fee", monthly),
                        ("the price per download", per_download)):
        if value is not None:
            _amount(what, value)
    prices = _prices(per_operation or {})
    if currency is not None and not CURRENCY.fullmatch(currency.upper()):
        raise InvalidRequest(f"currency {currency!r} is not an ISO 4217 code of three letters (EUR)")
    with tsm.transaction() as db:
        tenant = registry.tenant_row(db, sp, "sp")
        db.refresh(tenant, with_for_update=True)  # PostgreSQL: one change of this SP's tariff at a time
        base = _view(sp, _in_force(db, tenant.id))
        merged = {op: price for op, price in (dict(base.per_operation) | prices).items() if price}
        row = TariffVersion(sp_id=tenant.id, effective_from=now(), set_by=tsm.caller.name,
                            currency=base.currency if currency is None else currency.upper(),
                            onboarding=base.onboarding if onboarding is None else onboarding,
                            monthly=base.monthly if monthly is None else monthly,
                            per_download=base.per_download if per_download is None else per_download,
                            per_operation=json.dumps(merged, sort_keys=True))
        db.add(row)
        db.flush()
        return TariffView.of(sp, row)


def _check_reader(tsm: Tsm, sp: str) -> None:
    """The issuer, or SP `sp` itself: another SP is told no such SP exists, a vendor is Forbidden."""
    tsm.scope.only("issuer", "sp", action="billing")
    tsm.scope.check_sp(sp, f"service provider named {sp!r} (tsm sp list)")


def tariff(tsm: Tsm, sp: str) -> TariffView:
    """SP `sp`'s tariff in force now (all zero, `effective_from` None, before the first is set)."""
    _check_reader(tsm, sp)
    with tsm.sessions() as db:
        return _view(sp, _in_force(db, registry.tenant_row(db, sp, "sp").id))


# ---- usage reports ---------------------------------------------------------------------------------------------


def usage(tsm: Tsm, sp: str, month: str) -> UsageReport:
    """SP `sp`'s month ("YYYY-MM", UTC): its events per operation, app and SE kind, and its statement priced with
    the tariff version in force at the month's end (docs/billing.md)."""
    start, end = month_bounds(month)
    _check_reader(tsm, sp)
    event = MeteringEvent
    with tsm.sessions() as db:
        tenant = registry.tenant_row(db, sp, "sp")
        rows = db.execute(select(event.operation, event.app_id, event.se_kind, func.count())
                          .where(event.sp_id == tenant.id, event.at >= start, event.at < end)
                          .group_by(event.operation, event.app_id, event.se_kind)).all()
        terms = _view(sp, _in_force(db, tenant.id, end))
        onboarded = utc(tenant.created_at)
    operations, apps, se_kinds = Counter[str](), Counter[str](), Counter[str]()
    for operation, app_id, se_kind, count in rows:
        operations[operation] += count
        apps[app_id] += count
        se_kinds[se_kind] += count
    lines = statement(operations, terms, onboarded=start <= onboarded < end, hosted=onboarded < end)
    return UsageReport(sp, month, terms.currency, terms.effective_from, operations.total(),
                       tuple(Count(op, operations[op]) for op in OPERATIONS if operations[op]),
                       tuple(Count(name, apps[name]) for name in sorted(apps)),
                       tuple(Count(name, se_kinds[name]) for name in sorted(se_kinds)),
                       lines, sum(line.amount for line in lines))


def usage_csv(report: UsageReport) -> str:
    """The report as CSV (RFC 4180 quoting, "\\n" line ends), one row per figure: `kind` operation, app or
    se_kind with `quantity` the count; `line` with quantity, unit price, amount and currency; and `total`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    head = (report.sp, report.month)
    for kind, counts in (("operation", report.operations), ("app", report.apps), ("se_kind", report.se_kinds)):
        writer.writerows((*head, kind, c.name, c.count, "", "", "") for c in counts)
    writer.writerows((*head, "line", line.item, line.quantity, line.unit_price, line.amount, report.currency)
                     for line in report.lines)
    writer.writerow((*head, "total", "", "", "", report.total, report.currency))
    return out.getvalue()
