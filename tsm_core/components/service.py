"""A TSM component as the key service's caller: the purposes its credential grants, KCVs and key exchange with SE
vendors (docs/api.md, "Key service"). Secure channels are in tsm_core/components/channels.py.

Every call names a purpose; one the credential does not grant is refused here (403 `purpose_not_granted`) before
the key service is asked. The key service then checks its own policy (usage × operation × purpose × caller kind)
and audits the call under the component's API key with that purpose: importing or exporting a key is reserved to
security officers there (ARCHITECTURE.md principle 3), so a component's TR-31 call is refused `policy_denied` until
an approval it can present exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from globalplatform.kcv import KcvMethod
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.vendor import KeyBlockHeader, Received
from keyservice.views import KeyView
from tsm_core.context import Tsm
from tsm_core.errors import Forbidden


class PurposeNotGranted(Forbidden):
    """The component's credential does not name the purpose the call states."""

    code = "purpose_not_granted"


@dataclass(frozen=True)
class Component:
    """A TSM component's context: the TSM context its API key makes (scope `component:NAME`) and its purposes."""

    tsm: Tsm
    purposes: frozenset[str]

    def request(self, purpose: Purpose, target: str) -> Request:
        """The key-service request for `purpose` on `target`, or PurposeNotGranted."""
        self.tsm.scope.only("component", action="the key-service API")
        if purpose.value not in self.purposes:
            raise PurposeNotGranted(f"this component's key does not grant purpose {purpose.value} (granted: "
                                    f"{', '.join(sorted(self.purposes)) or 'none'})")
        return self.tsm.request(purpose, target)


def kcv(component: Component, purpose: Purpose, label: str, method: KcvMethod | None, length: int) -> str:
    """The key check value of an inventory key (never the key)."""
    return component.tsm.keys.keys.kcv(component.request(purpose, label), label, method, length)


def import_key_block(component: Component, kbpk: str, block: str, to: Received, expected_kcv: str) -> KeyView:
    """A vendor's TR-31 key block (versions B, D) under the KBPK `kbpk`, recorded with its KCV checked."""
    return component.tsm.keys.vendor.import_key_block(component.request(Purpose.VENDOR_IMPORT, to.label), kbpk,
                                                      block, to, expected_kcv)


def export_key_block(component: Component, label: str, kbpk: str, header: KeyBlockHeader) -> str:
    """An exportable key as a TR-31 key block for a vendor (B under a 3DES KBPK, D under an AES one)."""
    return component.tsm.keys.vendor.export_key_block(component.request(Purpose.VENDOR_EXPORT, label), label, kbpk,
                                                      header)


def received(label: str, owner: str, usage: str | None, kvn: int | None, key_id: int | None) -> Received:
    """Where a received key goes (usage from the block when not given)."""
    return Received(label, owner, KeyUsage(usage) if usage else None, kvn, key_id)
