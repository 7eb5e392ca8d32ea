"""The audit trail as callers see it (`KeyService.audit`): read the records, verify the chain.

Records hold labels, KCVs, purposes and targets, never key material; the chain itself (hash links, HSM MACs,
the HSM anchor) stays inside the barrier (keyservice/audit.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import select

from keyservice.core import Core
from keyservice.errors import InvalidInput
from keyservice.models import AuditRecord
from keyservice.policy import Operation, Request
from keyservice.views import AuditView, VerifyReport

_SHA256_HEX = 64


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

    def anchor_evidence(self, req: Request, sha256: str) -> int:
        """Anchor the SHA-256 of an evidence document (a ceremony's transcript) for the request's target in the
        chain; returns the record's sequence number."""
        if len(sha256) != _SHA256_HEX or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput("an evidence hash is 64 lower-case hex digits (SHA-256)")
        core = self._core()
        with core.audit.transaction(core.entry(req, Operation.EVIDENCE, [], "ok", f"sha256={sha256}"),
                                    anchor=True) as txn:
            return txn.seq

    def evidence(self, target: str) -> list[AuditView]:
        """The evidence records anchored for `target`, oldest first."""
        with self._core().sessions() as db:
            rows = db.execute(select(AuditRecord).where(AuditRecord.operation == Operation.EVIDENCE.value,
                                                        AuditRecord.target == target,
                                                        AuditRecord.outcome == "ok")
                              .order_by(AuditRecord.seq)).scalars()
            return [AuditView.of(row, json.loads(row.keys)) for row in rows]
