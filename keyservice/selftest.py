"""Start-up self-test (FIPS 140-3 style): the shipped published vectors through the production code path.

The KAT runner creates each vector's keys as session objects on the production token (gone with the
session, never token objects) and destroys them after the vector. The service refuses to start when any
answer differs (`tsm serve`, `/health`).
"""

from __future__ import annotations

from keyservice.errors import SelfTestFailed
from keyservice.hsm import Hsm
from keyservice.kat import KatReport, run_kat, shipped_vectors


def require(hsm: Hsm) -> KatReport:
    """Run the shipped vectors; raise SelfTestFailed naming the first failing ones."""
    report = run_kat([shipped_vectors()], hsm)
    if not report.ok:
        bad = [o.name for o in report.outcomes if o.status != "PASS"]
        raise SelfTestFailed(f"self-test failed: {len(bad)} vector(s), first: {', '.join(bad[:3])}")
    return report
