"""Registry tables: tenants (issuer, service providers, SE vendors), secure elements with their profile, the
security-domain tree of each SE with its key sets, and the card content the TSM last saw or put there.

No key material: key sets name key-service labels (and how the card keys derive from them).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class Tenant(Base):
    """The issuer (platform operator), a service provider or an SE vendor."""

    __tablename__ = "tsm_tenants"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    sd_mode: Mapped[str] = mapped_column(String(4), default="cm")
    """GP mode of the SP's security domains: cm (issuer-centric), am (authorized), dm (delegated)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SeProfile(Base):
    """How to talk to a family of SEs: what the card says (SCP, i, ISD AID) and what the TSM must know."""

    __tablename__ = "tsm_se_profiles"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    scp: Mapped[int] = mapped_column(Integer)
    i: Mapped[int] = mapped_column(Integer)
    diversification: Mapped[str] = mapped_column(String(8))
    """How the ISD's card keys derive from the key named by `isd_key` (none, emv, visa2, visa, kdf3)."""
    kcv_method: Mapped[str] = mapped_column(String(16), default="gp")
    isd_aid: Mapped[str] = mapped_column(String(32))
    ssd_package_aid: Mapped[str] = mapped_column(String(32), default="A0000001515350")
    ssd_module_aid: Mapped[str] = mapped_column(String(32), default="A000000151535041")
    initial_ssd_key: Mapped[str] = mapped_column(String(128), default="")
    """Key-service label of the key a newly installed SSD starts with (the vendor's), if any."""
    load_file_hash: Mapped[str] = mapped_column(String(8), default="")
    """The Load File Data Block hash INSTALL [for load] carries: "" (none) or "sha256" (GPCS 2.3.1 §C.2)."""
    nv_memory: Mapped[int | None] = mapped_column(Integer, nullable=True)
    volatile_memory: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SecureElement(Base):
    """One SE in the field, as discovered or as its vendor announced it."""

    __tablename__ = "tsm_secure_elements"
    __table_args__ = (UniqueConstraint("kdd"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kdd: Mapped[str] = mapped_column(String(20))
    cin: Mapped[str] = mapped_column(String(64), default="")
    iin: Mapped[str] = mapped_column(String(64), default="")
    cplc: Mapped[str] = mapped_column(String(128), default="")
    ic_serial: Mapped[str] = mapped_column(String(16), default="", index=True)
    device_kind: Mapped[str] = mapped_column(String(16), default="card")
    profile_id: Mapped[int] = mapped_column(ForeignKey("tsm_se_profiles.id"))
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("tsm_tenants.id"), nullable=True)
    isd_key: Mapped[str] = mapped_column(String(128))
    """Key-service label(s) that open the ISD: one (ENC = MAC = DEK, or the KMC), or three joined by spaces."""
    isd_kvn: Mapped[int] = mapped_column(Integer, default=0)
    life_cycle: Mapped[str] = mapped_column(String(16), default="")
    free_nv: Mapped[int | None] = mapped_column(Integer, nullable=True)
    free_volatile: Mapped[int | None] = mapped_column(Integer, nullable=True)
    confirmation_counter: Mapped[int] = mapped_column(Integer, default=-1)
    """The last confirmation counter of a verified DM receipt (GPCS 2.3.1 §C.5); -1 before the first."""
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SecurityDomain(Base):
    """A security domain on an SE: the ISD or an SP's SSD, its GP mode, privileges and memory quota."""

    __tablename__ = "tsm_security_domains"
    __table_args__ = (UniqueConstraint("se_id", "aid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    se_id: Mapped[str] = mapped_column(ForeignKey("tsm_secure_elements.id"), index=True)
    aid: Mapped[str] = mapped_column(String(32))
    parent_aid: Mapped[str] = mapped_column(String(32), default="")
    mode: Mapped[str] = mapped_column(String(4))
    """isd, cm, am or dm."""
    sp_id: Mapped[int | None] = mapped_column(ForeignKey("tsm_tenants.id"), nullable=True)
    privileges: Mapped[str] = mapped_column(String(6), default="")
    life_cycle: Mapped[str] = mapped_column(String(24), default="")
    nv_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    volatile_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SdKeySet(Base):
    """A key set of a security domain on one SE: its KVN and the key-service key(s) its card keys derive from."""

    __tablename__ = "tsm_sd_key_sets"
    __table_args__ = (UniqueConstraint("sd_id", "kvn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sd_id: Mapped[int] = mapped_column(ForeignKey("tsm_security_domains.id"), index=True)
    kvn: Mapped[int] = mapped_column(Integer)
    keys: Mapped[str] = mapped_column(String(400))
    """Key-service label(s): one (the master the card keys are diversified from, or ENC = MAC = DEK) or three."""
    diversification: Mapped[str] = mapped_column(String(8), default="none")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CardEntry(Base):
    """One entry of an SE's GlobalPlatform registry as the TSM last saw it (GET STATUS) or made it (a job)."""

    __tablename__ = "tsm_card_entries"
    __table_args__ = (UniqueConstraint("se_id", "aid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    se_id: Mapped[str] = mapped_column(ForeignKey("tsm_secure_elements.id"), index=True)
    aid: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    """isd, sd, app or elf."""
    life_cycle: Mapped[int] = mapped_column(Integer, default=0)
    privileges: Mapped[str] = mapped_column(String(6), default="")
    associated_sd: Mapped[str] = mapped_column(String(32), default="")
    elf_aid: Mapped[str] = mapped_column(String(32), default="")
    modules: Mapped[str] = mapped_column(Text, default="")
    """Space-separated module AIDs of a load file."""


class ServiceInstance(Base):
    """An application instance on one SE, as ordered, made and lived (docs/lifecycle.md).

    `live` is True until the instance is deleted, then NULL: (SE, app, live) is unique, so an SE holds one live
    instance of an app and may hold it again after a deletion.
    """

    __tablename__ = "tsm_service_instances"
    __table_args__ = (UniqueConstraint("se_id", "app_id", "live", name="uq_tsm_service_instances_live"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    se_id: Mapped[str] = mapped_column(ForeignKey("tsm_secure_elements.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("tsm_apps.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="ordered")
    """ordered, installed, personalized, active, locked_lost, suspended, migrating, in_error, deleted."""
    live: Mapped[bool | None] = mapped_column(nullable=True, default=True)
    card_locked: Mapped[bool] = mapped_column(default=False)
    """The card shows the application LOCKED (GPCS 2.3.1 §5.3.1.4), as the TSM last made or saw it."""
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why the service is in its state (the error of an IN_ERROR job, who reported it lost)."""
    seen: Mapped[str] = mapped_column(Text, default="")
    """What the card was last seen to hold for this instance (life cycle, associated SD), or that it is gone."""
    card_number: Mapped[str] = mapped_column(String(32), default="")
    """The card number masked (all but the last four digits); the number itself only sealed."""
    card_number_sealed: Mapped[str] = mapped_column(Text, default="")
    """The card number sealed by the key service's data key (AES-GCM, bound to this id), hex; "" when none."""
    balance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Backup of a purse: its balance (minor units) and top-up counter as last read from the card."""
    purse_counter: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backed_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    previous_id: Mapped[str] = mapped_column(String(32), default="")
    """The instance this one replaces (device change, re-issue)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
