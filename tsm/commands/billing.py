"""`tsm tariff ...` and `tsm report usage`: what a service provider pays, and its monthly usage and statement
(docs/cli.md, docs/billing.md). Amounts are integers in minor units (cents)."""

from __future__ import annotations

import click

from tsm.output import emit_json, json_option, table
from tsm.params import OperationPrice
from tsm.service import tsm_context
from tsm_core.billing import service as billing
from tsm_core.billing.views import TariffView


def print_fields(fields: dict[str, object]) -> None:
    """One `field value` line per field (docs/cli.md, "Output"); an empty value prints `-`."""
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        click.echo(f"{name:{width}}  {value if value != '' else '-'}")


def print_tariff(view: TariffView) -> None:
    """The tariff, one field a line; `since` is when this version was set."""
    print_fields({"sp": view.sp, "currency": view.currency, "onboarding": view.onboarding, "monthly": view.monthly,
                  "per-download": view.per_download,
                  "per-operation": " ".join(f"{op}={price}" for op, price in view.per_operation),
                  "since": "never set" if view.effective_from is None else view.effective_from.isoformat(),
                  "set-by": view.set_by})


@click.group("tariff")
def tariff_group() -> None:
    """What each service provider pays: onboarding, monthly hosting, per download, per operation."""


@tariff_group.command("set")
@click.option("--sp", "sp", required=True, metavar="NAME", help="The service provider.")
@click.option("--onboarding", type=int, metavar="MINOR", help="One-time fee, in the month the SP was added.")
@click.option("--monthly", type=int, metavar="MINOR", help="Hosting fee for each month.")
@click.option("--per-download", type=int, metavar="MINOR", help="Price of each completed download and install.")
@click.option("--per-operation", "per_operation", type=OperationPrice(), multiple=True,
              help="Price of one life-cycle operation (lock=20); repeatable; 0 takes the price away.")
@click.option("--currency", metavar="CODE", help="ISO 4217 code of the amounts (EUR).")
@json_option
def tariff_set(sp: str, onboarding: int | None, monthly: int | None, per_download: int | None,
               per_operation: tuple[tuple[str, int], ...], currency: str | None, as_json: bool) -> None:
    """A new version of the SP's tariff, in force from now (the options not given keep their values)."""
    view = billing.set_tariff(tsm_context(), sp, onboarding=onboarding, monthly=monthly, per_download=per_download,
                              per_operation=dict(per_operation), currency=currency)
    if as_json:
        emit_json(view)
    else:
        print_tariff(view)


@tariff_group.command("show")
@click.option("--sp", "sp", required=True, metavar="NAME", help="The service provider.")
@json_option
def tariff_show(sp: str, as_json: bool) -> None:
    """The SP's tariff in force now."""
    view = billing.tariff(tsm_context(), sp)
    if as_json:
        emit_json(view)
    else:
        print_tariff(view)


@click.group("report")
def report_group() -> None:
    """Reports: a service provider's usage and statement for a month."""


@report_group.command("usage")
@click.option("--sp", "sp", required=True, metavar="NAME", help="The service provider.")
@click.option("--month", required=True, metavar="YYYY-MM", help="The month (UTC).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV only.")
@json_option
def report_usage(sp: str, month: str, as_csv: bool, as_json: bool) -> None:
    """The month's events per operation, app and SE kind, then the statement lines; the total is the last line."""
    if as_csv and as_json:
        raise click.UsageError("give at most one of --csv and --json")
    report = billing.usage(tsm_context(), sp, month)
    if as_csv:
        click.echo(billing.usage_csv(report), nl=False)
        return
    if as_json:
        emit_json(report)
        return
    print_fields({"sp": report.sp, "month": report.month, "currency": report.currency,
                  "tariff": "none set" if report.tariff_from is None else f"set {report.tariff_from.isoformat()}",
                  "events": report.events})
    for header, counts in (("OPERATION", report.operations), ("APP", report.apps), ("SE-KIND", report.se_kinds)):
        click.echo()
        table((header, "COUNT"), [(c.name, c.count) for c in counts])
    click.echo()
    table(("ITEM", "QUANTITY", "UNIT-PRICE", "AMOUNT"),
          [*((line.item, line.quantity, line.unit_price, line.amount) for line in report.lines),
           ("total", "", "", report.total)])
