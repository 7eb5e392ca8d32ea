"""Catalog tables: load files parsed from CAP files and the apps an SP submits on them, with their review."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base


class LoadFile(Base):
    """An Executable Load File as submitted: a CAP file's package, version, modules, sizes and hash."""

    __tablename__ = "tsm_load_files"
    __table_args__ = (UniqueConstraint("package_aid", "version", "sp_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sp_id: Mapped[int] = mapped_column(ForeignKey("tsm_tenants.id"))
    package_aid: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(16))
    module_aids: Mapped[str] = mapped_column(Text)
    """Space-separated applet (module) AIDs."""
    imports: Mapped[str] = mapped_column(Text, default="")
    """Space-separated `AID:major.minor` of the imported packages."""
    size: Mapped[int] = mapped_column(Integer)
    """Bytes of the Load File Data Block."""
    sha256: Mapped[str] = mapped_column(String(64))
    lfdb: Mapped[bytes] = mapped_column(LargeBinary)
    """The Load File Data Block (the components in load order), as LOAD sends it."""
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class App(Base):
    """An application an SP offers: a module of a load file, its instance AID and install parameters."""

    __tablename__ = "tsm_apps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sp_id: Mapped[int] = mapped_column(ForeignKey("tsm_tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    load_file_id: Mapped[int] = mapped_column(ForeignKey("tsm_load_files.id"))
    module_aid: Mapped[str] = mapped_column(String(32))
    instance_aid: Mapped[str] = mapped_column(String(32))
    privileges: Mapped[str] = mapped_column(String(6), default="00")
    install_params: Mapped[str] = mapped_column(Text, default="")
    """Application-specific install parameters (C9 value), hex."""
    nv_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    volatile_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    target_profiles: Mapped[str] = mapped_column(Text, default="")
    """Space-separated SE profile names the app is meant for; empty: any."""
    perso: Mapped[str] = mapped_column(Text, default="")
    """Personalization profile, space-separated: `DGI=hex` (a value every instance gets) or `DGI!` (a sensitive
    value given per card when its job runs, encrypted by the key service, never stored)."""
    app_key: Mapped[str] = mapped_column(String(128), default="")
    """Key-service label of the app's master key (usage APP_KEY, owner `sp:NAME`) when its profile has `DGI@key`
    items or it is a purse: each SE gets a key diversified from it."""
    review: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, approved or rejected."""
    review_reason: Mapped[str] = mapped_column(Text, default="")
    reviewed_by: Mapped[str] = mapped_column(String(128), default="")
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
