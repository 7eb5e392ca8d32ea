"""The statement lines of one month, computed from the month's event counts and the tariff in force
(docs/billing.md). Integers only."""

from __future__ import annotations

from collections.abc import Mapping

from tsm_core.billing import DOWNLOAD, OPERATIONS
from tsm_core.billing.views import StatementLine, TariffView

ONBOARDING, MONTHLY = "onboarding", "monthly"
"""The statement items that are no operation."""


def _line(item: str, quantity: int, unit_price: int) -> StatementLine:
    return StatementLine(item, quantity, unit_price, quantity * unit_price)


def statement(counts: Mapping[str, int], tariff: TariffView, *, onboarded: bool,
              hosted: bool) -> tuple[StatementLine, ...]:
    """The lines of one month: the onboarding fee in the month the SP was onboarded, the monthly hosting fee in
    every month it was hosted (from that month on), the downloads at the price per download, and each priced
    operation that happened, at its price. `counts`: events per operation."""
    lines = []
    if onboarded:
        lines.append(_line(ONBOARDING, 1, tariff.onboarding))
    if hosted:
        lines.append(_line(MONTHLY, 1, tariff.monthly))
    if counts.get(DOWNLOAD):
        lines.append(_line(DOWNLOAD, counts[DOWNLOAD], tariff.per_download))
    lines += [_line(operation, counts[operation], tariff.price(operation)) for operation in OPERATIONS
              if operation != DOWNLOAD and counts.get(operation) and tariff.price(operation)]
    return tuple(lines)
