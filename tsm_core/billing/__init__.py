"""Metering and billing per service provider: events, tariff versions, monthly usage reports (docs/billing.md).

`service.meter` is called by the operations themselves, in the transaction that records their outcome;
`service.usage` prices a month from the events and the tariff in force.
"""

from __future__ import annotations

from typing import Final

DOWNLOAD: Final = "download"
"""A completed download and install of an app (priced per download)."""
OPERATIONS: Final = (DOWNLOAD, "open", "lock", "unlock", "suspend", "resume", "topup", "delete", "unsubscribe",
                     "migrate", "reissue", "rotate-keys")
"""The metered operations (issue 10, "Metering and billing"); every one but `download` may have a price of its
own in a tariff."""
