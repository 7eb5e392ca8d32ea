"""Whom a `Tsm` acts for: the issuer (the platform operator: everything), one service provider (its own SSDs,
apps, service instances and reports), one SE vendor (its own SEs), one device (its own SE, the services on it
and the approved apps it may order; named by its SE id) or one TSM component (a part of the TSM that uses the key
service over the API: it reaches every SE's key sets, no SP's data; the purposes its credential names bound it).

The service layer enforces it, so the edges (CLI, web app, API keys) only say which tenant a caller is. A
resource outside the scope is answered as if it did not exist (NotFound, no oracle for other tenants' ids); an
operation outside the scope's trade (an SP registering SEs) is Forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from tsm_core.errors import Forbidden, NotFound

ScopeKind = Literal["issuer", "sp", "vendor", "device", "component"]


@dataclass(frozen=True)
class Scope:
    """A tenancy: the issuer, or the SP / SE vendor / device (SE id) / TSM component named."""

    kind: ScopeKind
    name: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "issuer" else f"{self.kind}:{self.name}"

    def sees_sp(self, sp: str) -> bool:
        """Whether data of SP `sp` (its SSDs, apps, service instances, reports) is visible."""
        return self.kind == "issuer" or (self.kind == "sp" and self.name == sp)

    def sees_vendor(self, vendor: str | None) -> bool:
        """Whether an SE announced by `vendor` (None: discovered by the issuer) is visible as an SE record."""
        return self.kind != "vendor" or vendor == self.name

    def sees_se(self, se_id: str, vendor: str | None) -> bool:
        """Whether SE `se_id` (announced by `vendor`) is visible: a device sees its own SE only."""
        return self.name == se_id if self.kind == "device" else self.sees_vendor(vendor)

    def sees_service(self, sp: str, se_id: str) -> bool:
        """Whether a service instance of SP `sp` on SE `se_id` is visible: the SP's own, or the device's own."""
        return self.name == se_id if self.kind == "device" else self.sees_sp(sp)

    def check_sp(self, sp: str, what: str) -> None:
        """NotFound (`what` named as if absent) unless SP `sp`'s data is visible."""
        if not self.sees_sp(sp):
            raise NotFound(f"no {what}")

    def only(self, *kinds: ScopeKind, action: str) -> None:
        """Forbidden unless this scope is one of `kinds`."""
        if self.kind not in kinds:
            raise Forbidden(f"{action} is not open to {self}")


ISSUER: Final = Scope("issuer")
