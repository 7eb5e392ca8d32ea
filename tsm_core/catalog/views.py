"""What the catalog tells its callers: load files and apps as plain frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tsm_core.catalog import perso
from tsm_core.catalog.models import App, LoadFile
from tsm_core.catalog.perso import PersoItem, Source


@dataclass(frozen=True)
class LoadFileView:
    """An Executable Load File from a CAP file."""

    id: int
    sp: str
    package_aid: str
    version: str
    module_aids: tuple[str, ...]
    imports: tuple[str, ...]
    size: int
    sha256: str
    submitted_at: datetime

    @classmethod
    def of(cls, row: LoadFile, sp: str) -> LoadFileView:
        return cls(row.id, sp, row.package_aid, row.version, tuple(row.module_aids.split()),
                   tuple(row.imports.split()), row.size, row.sha256, row.submitted_at)


@dataclass(frozen=True)
class AppView:
    """An app an SP offers, with its load file and review state."""

    id: str
    sp: str
    name: str
    load_file: LoadFileView
    module_aid: str
    instance_aid: str
    privileges: str
    install_params: str
    nv_quota: int | None
    volatile_quota: int | None
    target_profiles: tuple[str, ...]
    perso: str
    app_key: str
    review: str
    review_reason: str
    reviewed_by: str
    submitted_at: datetime
    reviewed_at: datetime | None

    @classmethod
    def of(cls, row: App, sp: str, load_file: LoadFileView) -> AppView:
        return cls(row.id, sp, row.name, load_file, row.module_aid, row.instance_aid, row.privileges,
                   row.install_params, row.nv_quota, row.volatile_quota, tuple(row.target_profiles.split()),
                   row.perso, row.app_key, row.review, row.review_reason, row.reviewed_by, row.submitted_at,
                   row.reviewed_at)

    @property
    def perso_items(self) -> list[PersoItem]:
        """The personalization profile in order (tsm_core/catalog/perso.py)."""
        return perso.parse(self.perso)

    @property
    def is_purse(self) -> bool:
        """Whether the app is a transit purse (its profile has a purse record)."""
        return any(item.source is Source.PURSE for item in self.perso_items)
