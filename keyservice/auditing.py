"""The audit trail as callers see it (`KeyService.audit`): read the records, verify the chain.

Records hold labels, KCVs, purposes and targets, never key material; the chain itself (hash links, HSM MACs,
the HSM anchor) stays inside the barrier (keyservice/audit.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from keyservice.core import Core
from keyservice.views import AuditView, VerifyReport


class AuditTrail:
    """Read and verify the tamper-evident audit chain."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    def records(self, limit: int = 50) -> list[AuditView]:
        """The newest `limit` records, newest first."""
        return [AuditView.of(row, json.loads(row.keys)) for row in self._core().audit.records(limit)]

    def verify(self) -> VerifyReport:
        """Verify the whole chain: every link, hash and MAC, the head row and the HSM anchor (AuditChainBroken
        names the first bad record)."""
        return self._core().audit.verify()

    def status(self) -> dict[str, object]:
        """The health check of the chain without a full walk: `status` ok, sealed or broken (keyservice/audit.py)."""
        return self._core().audit.status()

    def check_head(self) -> VerifyReport:
        """The cheap check for health probes: the newest record, the head row and the HSM anchor agree."""
        return self._core().audit.check_head()
