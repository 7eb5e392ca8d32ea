"""What the catalog tells its callers: load files and apps as plain frozen records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tsm_core.catalog.models import App, LoadFile


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
    review: str
    review_reason: str
    reviewed_by: str
    submitted_at: datetime
    reviewed_at: datetime | None

    @classmethod
    def of(cls, row: App, sp: str, load_file: LoadFileView) -> AppView:
        return cls(row.id, sp, row.name, load_file, row.module_aid, row.instance_aid, row.privileges,
                   row.install_params, row.nv_quota, row.volatile_quota, tuple(row.target_profiles.split()),
                   row.perso, row.review, row.review_reason, row.reviewed_by, row.submitted_at, row.reviewed_at)

    @property
    def perso_dgis(self) -> list[tuple[int, bytes | None]]:
        """The personalization profile in order: `DGI=hex` stored values, `DGI!` values given per card (sensitive:
        encrypted by the key service, never stored)."""
        out: list[tuple[int, bytes | None]] = []
        for item in self.perso.split():
            if item.endswith("!"):
                out.append((int(item[:-1], 16), None))
            else:
                tag, _, value = item.partition("=")
                out.append((int(tag, 16), bytes.fromhex(value)))
        return out
