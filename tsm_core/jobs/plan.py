"""What a job is for and the steps it takes, decided when the job is created and stored with it.

Job parameters are JSON (no secrets: key-service labels, AIDs, versions). The plan of each kind:

- `create-ssd`: `dm-keys` (Delegated Management only: the ISD gets the issuer's token and receipt keys),
  `ssd` (INSTALL the SSD through the ISD), `ssd-keys` (PUT KEY the SP's keys over a channel opened with the
  SSD's initial keys).
- `install-app`: those steps when the SP has no SSD on the SE yet, then `load`, `install`, `extradite`
  (issuer-centric mode only: the ISD installs, the app is handed to the SSD), `personalize` (when the app has a
  personalization profile), `activate`.
- `rotate-keys`: `put-key` (a new key version for the ISD or an SSD).
- `lock-app`, `unlock-app`: `lock` / `unlock` (SET STATUS of the app's instance).
- `delete-app`: `backup` (a purse's balance read and kept, when asked), `delete` (the instance), `cleanup` (its
  load file and the SP's SSD when nothing else uses them).
- `topup`: `credit` (the purse read, then credited once). `backup`: `backup` (the purse read and kept).
- `refresh`: no step; as every job, it ends by recording what the card's Registry shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Final

from tsm_core.errors import InvalidRequest

KINDS: Final = ("create-ssd", "install-app", "rotate-keys", "lock-app", "unlock-app", "delete-app", "topup",
                 "backup", "refresh")
SSD_STEPS: Final = ("ssd", "ssd-keys")


@dataclass(frozen=True)
class JobParams:
    """Everything a job's steps need that is not in the registry or the catalog."""

    sp: str = ""
    mode: str = ""
    ssd_aid: str = ""
    kvn: int = 0
    """The key version the SP's SSD keys get (`ssd-keys`), or the new one (`put-key`)."""
    sd_aid: str = ""
    """`put-key`: the security domain whose keys rotate."""
    sp_key: str = ""
    """Key-service label the SSD's keys are diversified from (the SP's master key, owner `sp:NAME`)."""
    source_key: str = ""
    """`put-key`: the key-service label the new keys come from (a KMC, diversified per SE)."""
    diversification: str = ""
    token_key: str = ""
    """Delegated Management: the issuer's RSA token key pair (its public half is the ISD's key version 70)."""
    receipt_key: str = ""
    """Delegated Management: the issuer's receipt key (the ISD's key version 71)."""
    dap_key: str = ""
    """The SP's DAP key, when it has one: its SSD verifies a DAP on every load (key version 73, GPCS §C.2)."""
    nv_quota: int | None = None
    volatile_quota: int | None = None
    operation: str = ""
    """The life-cycle operation the job does (open, migrate, reissue, lock, suspend, delete, unsubscribe, topup,
    balance, migrate-out): what its completion records and meters."""
    balance: int | None = None
    """`install-app`: the purse balance to personalize instead of the profile's (a restored backup)."""
    topup: str = ""
    """`topup`: the top-up order the job credits."""

    def dumps(self) -> str:
        kept = {k: v for k, v in asdict(self).items() if v not in ("", None) and (v != 0 or k == "balance")}
        return json.dumps(kept, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> JobParams:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"job parameters do not parse: {exc}") from None


def ssd_steps(mode: str) -> list[str]:
    """The steps that make an SSD in GP `mode`."""
    return ["dm-keys", *SSD_STEPS] if mode == "dm" else list(SSD_STEPS)


SIMPLE: Final[dict[str, tuple[str, ...]]] = {"lock-app": ("lock",), "unlock-app": ("unlock",), "topup": ("credit",),
                                            "backup": ("backup",), "refresh": ()}


def steps_for(kind: str, *, new_ssd: bool = False, mode: str = "", perso: bool = False,
              backup: bool = False) -> list[str]:
    """The step names of a job of `kind`, in order."""
    if kind == "create-ssd":
        return ssd_steps(mode)
    if kind == "rotate-keys":
        return ["put-key"]
    if kind == "install-app":
        steps = [*(ssd_steps(mode) if new_ssd else ()), "load", "install"]
        if mode == "cm":
            steps.append("extradite")
        if perso:
            steps.append("personalize")
        return [*steps, "activate"]
    if kind in SIMPLE:
        return list(SIMPLE[kind])
    if kind == "delete-app":
        return [*(["backup"] if backup else []), "delete", "cleanup"]
    raise InvalidRequest(f"job kind {kind!r} is not one of {', '.join(KINDS)}")
