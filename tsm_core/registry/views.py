"""What the registry tells its callers: plain frozen records, never ORM objects bound to a session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tsm_core.registry.models import CardEntry, SdKeySet, SecureElement, SecurityDomain, SeProfile, Tenant


@dataclass(frozen=True)
class TenantView:
    """An SP, an SE vendor or the issuer."""

    name: str
    kind: str
    sd_mode: str
    created_at: datetime

    @classmethod
    def of(cls, row: Tenant) -> TenantView:
        return cls(row.name, row.kind, row.sd_mode, row.created_at)


@dataclass(frozen=True)
class ProfileView:
    """How to talk to a family of SEs."""

    name: str
    scp: int
    i: int
    diversification: str
    kcv_method: str
    isd_aid: str
    ssd_package_aid: str
    ssd_module_aid: str
    initial_ssd_key: str
    load_file_hash: str

    @classmethod
    def of(cls, row: SeProfile) -> ProfileView:
        return cls(row.name, row.scp, row.i, row.diversification, row.kcv_method, row.isd_aid, row.ssd_package_aid,
                   row.ssd_module_aid, row.initial_ssd_key, row.load_file_hash)


@dataclass(frozen=True)
class KeySetView:
    """A key set of a security domain on one SE."""

    kvn: int
    keys: tuple[str, ...]
    diversification: str
    active: bool

    @classmethod
    def of(cls, row: SdKeySet) -> KeySetView:
        return cls(row.kvn, tuple(row.keys.split()), row.diversification, row.active)


@dataclass(frozen=True)
class DomainView:
    """A security domain on an SE with its key sets."""

    aid: str
    parent_aid: str
    mode: str
    sp: str
    privileges: str
    life_cycle: str
    nv_quota: int | None
    volatile_quota: int | None
    key_sets: tuple[KeySetView, ...]

    @classmethod
    def of(cls, row: SecurityDomain, sp: str, key_sets: list[SdKeySet]) -> DomainView:
        return cls(row.aid, row.parent_aid, row.mode, sp, row.privileges, row.life_cycle, row.nv_quota,
                   row.volatile_quota, tuple(KeySetView.of(k) for k in sorted(key_sets, key=lambda k: k.kvn)))

    @property
    def active_key_set(self) -> KeySetView | None:
        """The key set the TSM opens this domain with."""
        return next((k for k in reversed(self.key_sets) if k.active), None)


@dataclass(frozen=True)
class EntryView:
    """One Registry entry of the card as the TSM last saw it."""

    aid: str
    kind: str
    life_cycle: int
    privileges: str
    associated_sd: str
    elf_aid: str
    modules: tuple[str, ...]

    @classmethod
    def of(cls, row: CardEntry) -> EntryView:
        return cls(row.aid, row.kind, row.life_cycle, row.privileges, row.associated_sd, row.elf_aid,
                   tuple(row.modules.split()))


@dataclass(frozen=True)
class SeView:
    """One SE: identity, profile, life cycle, memory, security domains and content."""

    id: str
    kdd: str
    cin: str
    iin: str
    cplc: str
    device_kind: str
    profile: ProfileView
    vendor: str
    life_cycle: str
    free_nv: int | None
    free_volatile: int | None
    registered_at: datetime
    seen_at: datetime | None
    domains: tuple[DomainView, ...]
    content: tuple[EntryView, ...]

    @classmethod
    def of(cls, row: SecureElement, profile: SeProfile, vendor: str, domains: tuple[DomainView, ...],
           content: list[CardEntry]) -> SeView:
        return cls(row.id, row.kdd, row.cin, row.iin, row.cplc, row.device_kind, ProfileView.of(profile), vendor,
                   row.life_cycle, row.free_nv, row.free_volatile, row.registered_at, row.seen_at, domains,
                   tuple(EntryView.of(e) for e in sorted(content, key=lambda e: (e.kind, e.aid))))

    @property
    def isd(self) -> DomainView:
        """The Issuer Security Domain."""
        return next(d for d in self.domains if d.mode == "isd")

    def domain_of(self, sp: str) -> DomainView | None:
        """The SSD of service provider `sp` on this SE, if it has one."""
        return next((d for d in self.domains if d.sp == sp and d.mode != "isd"), None)
