"""Billing months: the UTC bounds of a "YYYY-MM" month (docs/billing.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from tsm_core.errors import InvalidRequest

MONTH: Final = re.compile(r"([0-9]{4})-([0-9]{2})")


def utc(value: datetime) -> datetime:
    """`value` in UTC; a naive value (as SQLite gives back what was stored in UTC) is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of `month` ("YYYY-MM") and of the month after it, in UTC; InvalidRequest otherwise."""
    found = MONTH.fullmatch(month)
    try:
        if found is None:
            raise ValueError(month)
        year, number = int(found[1]), int(found[2])
        return (datetime(year, number, 1, tzinfo=UTC),
                datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC))
    except ValueError:
        raise InvalidRequest(f"month {month!r} is not a month written YYYY-MM (e.g. 2026-03)") from None

