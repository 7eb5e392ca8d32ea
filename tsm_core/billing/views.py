"""What billing tells its callers: plain frozen records, amounts as integers in minor units."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from tsm_core.billing.models import TariffVersion
from tsm_core.billing.months import utc


@dataclass(frozen=True)
class TariffView:
    """An SP's tariff as one version set it (`effective_from` None: no tariff set, everything free)."""

    sp: str
    currency: str
    onboarding: int
    monthly: int
    per_download: int
    per_operation: tuple[tuple[str, int], ...]
    """(operation, price) of the priced operations, by name."""
    effective_from: datetime | None
    set_by: str

    def price(self, operation: str) -> int:
        """The price of one `operation` (0 when it is not priced)."""
        return dict(self.per_operation).get(operation, 0)

    @classmethod
    def of(cls, sp: str, row: TariffVersion) -> TariffView:
        prices = json.loads(row.per_operation)
        return cls(sp, row.currency, row.onboarding, row.monthly, row.per_download, tuple(sorted(prices.items())),
                   utc(row.effective_from), row.set_by)

    @classmethod
    def free(cls, sp: str) -> TariffView:
        """What an SP pays before its first tariff is set: nothing."""
        return cls(sp, "EUR", 0, 0, 0, (), None, "")


@dataclass(frozen=True)
class Count:
    """How many events one operation, app or SE kind had in a month."""

    name: str
    count: int


@dataclass(frozen=True)
class StatementLine:
    """One line of a monthly statement: `amount` = `quantity` x `unit_price`."""

    item: str
    """onboarding, monthly, download, or the name of a priced operation."""
    quantity: int
    unit_price: int
    amount: int


@dataclass(frozen=True)
class UsageReport:
    """One SP's month (UTC): the events counted three ways, and the statement priced with the tariff in force at
    the month's end (`tariff_from`: when that version was set; None when no tariff was set by then)."""

    sp: str
    month: str
    currency: str
    tariff_from: datetime | None
    events: int
    operations: tuple[Count, ...]
    """Per operation, in the order of `OPERATIONS`; operations without events are left out."""
    apps: tuple[Count, ...]
    """Per app id, sorted ("" for events of no app)."""
    se_kinds: tuple[Count, ...]
    """Per SE device kind, sorted."""
    lines: tuple[StatementLine, ...]
    total: int
