"""An API world: a TSM lab (tests/tsm_core/lab.py) behind the Flask app, with an SE vendor, two SPs, an app,
a discovered card and an API key for each kind of owner."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.tsm_core.lab import Lab, make_lab
from tsm_core.apikeys import service as apikeys
from tsm_core.jobs import service as jobs
from tsm_core.registry import service as registry
from web.app import create_app

SCP03 = 0x03


@dataclass
class World:
    lab: Lab
    app: object
    se_id: str
    card: object
    app_id: str
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def client(self):  # type: ignore[no-untyped-def]
        return self.app.test_client()  # type: ignore[attr-defined]

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}", **extra}


def make_world(lab: Lab) -> World:
    registry.add_tenant(lab.tsm, "acme", "vendor")
    lab.add_sp("metro")
    lab.add_sp("other")
    app_id = lab.app("metro", "transit")
    jobs.sp_master_key(lab.tsm, "metro", SCP03)  # an officer makes the SP's keys; API callers cannot
    card, se_id = lab.new_se()
    world = World(lab, create_app({"TSM_SETTINGS": lab.settings, "TESTING": True}), se_id, card, app_id)
    for who, (kind, name) in {"sp": ("sp", "metro"), "other": ("sp", "other"), "vendor": ("vendor", "acme"),
                              "device": ("device", se_id)}.items():
        world.keys[who] = apikeys.create(lab.tsm, kind, name).key
    return world


@pytest.fixture
def world(settings_factory, tmp_path):  # type: ignore[no-untyped-def]
    lab = make_lab(*settings_factory(f"sqlite:///{tmp_path / 'tsm.db'}"))
    yield make_world(lab)
    lab.tsm.sessions.kw["bind"].dispose()


@pytest.fixture
def any_db_world(settings_factory, db_url):  # type: ignore[no-untyped-def]
    """The world on SQLite and on PostgreSQL."""
    lab = make_lab(*settings_factory(db_url))
    yield make_world(lab)
    lab.tsm.sessions.kw["bind"].dispose()
