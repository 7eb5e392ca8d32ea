"""Tenancy in the service layer: a service provider sees and touches only its own SSDs, apps, service instances
and jobs; an SE vendor only its own SEs; each attempt to cross the line is refused (NotFound as if the thing did
not exist, or Forbidden for an operation outside the tenant's trade)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.tsm_core.lab import Lab
from tests.tsm_core.test_lifecycle import PURSE_PERSO
from tsm_core.catalog import service as catalog
from tsm_core.errors import Forbidden, NotFound
from tsm_core.jobs import service as jobs
from tsm_core.lifecycle import service as lifecycle
from tsm_core.registry import service as registry
from tsm_core.registry.service import ProfileSpec, SeRegistration
from tsm_core.tenancy import Scope
from tsm_core.transport.local import LocalTransport

PROFILE = ProfileSpec(scp=0x03, i=0x70, diversification="none", isd_aid="A000000151000000", name="acme-w1")


def as_(lab: Lab, kind: str, name: str):  # type: ignore[no-untyped-def]
    return replace(lab.tsm, scope=Scope(kind, name))  # type: ignore[arg-type]


@pytest.fixture
def world(lab: Lab):  # type: ignore[no-untyped-def]
    """Two SPs with an active service each on one SE, and two vendors with an SE each."""
    for sp in ("metro", "bus"):
        lab.add_sp(sp)
    for vendor in ("acme", "globex"):
        registry.add_tenant(lab.tsm, vendor, "vendor")
    metro_app = lab.app("metro", "transit", perso=PURSE_PERSO)
    bus_app = lab.app("bus", "bank", perso="0101=5F200A4A4F484E20534D4954485F2403301231 8000@key 8101!",
                      instance_aid="F00000000201010101")
    card, se_id = lab.new_se()
    with LocalTransport(card) as transport:
        metro = lifecycle.open_service(lab.tsm, se_id, metro_app, transport)
        bus = lifecycle.open_service(lab.tsm, se_id, bus_app, transport,
                                     perso={0x8101: bytes.fromhex("5A084111111111111111")})
    ses = {v: registry.register(lab.tsm, SeRegistration(bytes([n + 1]) * 10, PROFILE, ("vendor-isd",), 0xFF,
                                                        vendor=v)) for n, v in enumerate(("acme", "globex"))}
    return lab, se_id, {"metro": (metro_app, metro.id), "bus": (bus_app, bus.id)}, ses


def test_a_service_provider_reaches_its_own_only(world):
    lab, se_id, sps, _ = world
    metro = as_(lab, "sp", "metro")
    bus_app, bus_service = sps["bus"]
    for attempt in (lambda: lifecycle.show(metro, bus_service), lambda: lifecycle.lock(metro, bus_service),
                    lambda: catalog.app(metro, bus_app), lambda: jobs.order(metro, se_id, bus_app)):
        with pytest.raises(NotFound):
            attempt()
    assert {v.id for v in lifecycle.list_services(metro)} == {sps["metro"][1]}
    assert {a.id for a in catalog.list_apps(metro)} == {sps["metro"][0]}
    assert {a.id for a in catalog.list_apps(metro, sp="bus")} == {sps["metro"][0]}
    bus_jobs = [j for j in jobs.list_jobs(lab.tsm) if j.app_id == bus_app]
    assert bus_jobs and not [j for j in jobs.list_jobs(metro) if j.app_id == bus_app]
    with pytest.raises(NotFound):
        jobs.show(metro, bus_jobs[0].id)
    se = registry.show(metro, se_id)
    assert {d.sp for d in se.domains if d.mode != "isd"} == {"metro"}
    assert "F00000000201010101" not in {e.aid for e in se.content}
    for forbidden in (lambda: catalog.review(metro, sps["metro"][0], approve=True),
                      lambda: registry.add_tenant(metro, "evil", "sp"), lambda: registry.list_ses(metro),
                      lambda: jobs.create_ssd(metro, se_id, "bus", "am"),
                      lambda: jobs.rollout(metro, 2, sp="bus"), lambda: jobs.key_versions(metro)):
        with pytest.raises(Forbidden):
            forbidden()
    assert lifecycle.show(metro, sps["metro"][1]).sp == "metro"


def test_an_se_vendor_reaches_its_own_ses_only(world):
    lab, se_id, sps, ses = world
    acme = as_(lab, "vendor", "acme")
    assert [s.id for s in registry.list_ses(acme)] == [ses["acme"]]
    assert [s.id for s in registry.list_ses(acme, vendor="globex")] == [ses["acme"]]
    assert registry.show(acme, ses["acme"]).vendor == "acme"
    for hidden in (ses["globex"], se_id):
        with pytest.raises(NotFound):
            registry.show(acme, hidden)
    with pytest.raises(Forbidden):
        registry.register(acme, SeRegistration(b"\x09" * 10, PROFILE, ("vendor-isd",), 0xFF, vendor="globex"))
    assert registry.register(acme, SeRegistration(b"\x09" * 10, PROFILE, ("vendor-isd",), 0xFF, vendor="acme"))
    with pytest.raises(NotFound):
        lifecycle.show(acme, sps["metro"][1])
    assert lifecycle.list_services(acme) == []
    with pytest.raises(Forbidden):
        catalog.list_apps(acme)
