"""Memory quotas (GPCS 2.3.1 11.5.2.3.7, install parameters C7 volatile / C8 non-volatile; ETSI TS 102 226
FF21 extended card resources).

Every SD may hold its own quota (set at installation); one without a quota draws on the quota of its
associated SD, up to the ISD, whose quota is the card's memory. An SD with a quota counts its whole quota
against its parent; other entries count their own footprint against the nearest SD holding a quota.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardsim.registry import Application, LoadFile, Registry
from cardsim.sw import SW, ApduError


@dataclass(frozen=True)
class Memory:
    """Non-volatile and volatile bytes."""

    nv: int
    volatile: int


def quota_holder(registry: Registry, sd_aid: bytes) -> Application:
    """The nearest SD, starting at `sd_aid`, that holds a quota (at worst the ISD)."""
    sd = registry.sd(sd_aid)
    while sd.aid != registry.isd_aid and (sd.sd is None or sd.sd.quota_nv is None):
        sd = registry.sd(sd.sd_aid)
    return sd


def _footprint(entry: Application | LoadFile) -> Memory:
    if isinstance(entry, Application) and entry.sd is not None and entry.sd.quota_nv is not None:
        return Memory(entry.sd.quota_nv, entry.sd.quota_volatile or 0)
    if isinstance(entry, Application):
        return Memory(entry.nv, entry.volatile)
    return Memory(entry.nv, 0)


def _charged_to(registry: Registry, holder: Application) -> list[Application | LoadFile]:
    """Entries whose footprint the quota of `holder` pays for."""
    charged: list[Application | LoadFile] = []
    for entry in registry.associated_with(holder.aid):
        charged.append(entry)
        if isinstance(entry, Application) and entry.sd is not None and entry.sd.quota_nv is None:
            charged.extend(_charged_to(registry, entry))
    return charged


def free_memory(registry: Registry, sd_aid: bytes) -> Memory:
    """Free quota available to content associated with `sd_aid`."""
    holder = quota_holder(registry, sd_aid)
    quota = _footprint_of_quota(holder)
    used_nv = used_vol = 0
    for entry in _charged_to(registry, holder):
        footprint = _footprint(entry)
        used_nv += footprint.nv
        used_vol += footprint.volatile
    return Memory(quota.nv - used_nv, quota.volatile - used_vol)


def _footprint_of_quota(sd: Application) -> Memory:
    if sd.sd is None:
        return Memory(0, 0)
    return Memory(sd.sd.quota_nv or 0, sd.sd.quota_volatile or 0)


def require(registry: Registry, sd_aid: bytes, need: Memory) -> None:
    """6A84 when content of that size cannot be associated with `sd_aid`."""
    free = free_memory(registry, sd_aid)
    if need.nv > free.nv or need.volatile > free.volatile:
        raise ApduError(SW.NOT_ENOUGH_MEMORY, f"need {need}, free {free}")
