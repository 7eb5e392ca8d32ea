"""A job interrupted anywhere resumes, or ends IN_ERROR with a reason, and the card's content is never duplicated.

The job (the bank app in issuer-centric mode: SSD, its keys, load, install, extradite, personalization in two
STORE DATA, activation) runs in a worker process whose card is held by the test (tests/tsm_core/remote_card.py).
The worker is killed with SIGKILL once the card has processed its k-th command, for k at the first and last
command of every step and inside steps (INSTALL [for load], LOAD mid-way, INSTALL [for personalization], the first
STORE DATA); then the test runs the job again in its own process. The job ends DONE, or IN_ERROR with
`job_unresumable` exactly when the kill came after a STORE DATA reached the card and before the last one; the
card got each LOAD and INSTALL once, never answered an error, holds the personalization, and the registry matches
it. A transport that fails mid-job ends it IN_ERROR with the reason, and running it again resumes it.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from globalplatform import tlv
from globalplatform.apdu import Ins
from keyservice.runtime import close_all
from softhsm import bootstrap
from storage.config import load_settings, with_overrides
from tests.conftest import SOFTHSM_CONF, TOKEN_DIR, _pg_admin, new_token
from tests.tsm_core.lab import (
    BANK_CARD_DGIS,
    BANK_INSTANCE,
    BANK_PAN,
    Apdu,
    Lab,
    Unplugged,
    Wire,
    assert_registry_is_card,
    make_lab,
    send,
)
from tests.tsm_core.remote_card import WORKERS, CardServer, run_job
from tsm_core.jobs import service as jobs

LONG_NAME = b"J" * 200
PERSO = ("0101=" + (tlv.encode(0x5F20, LONG_NAME) + tlv.encode(0x5F24, bytes.fromhex("301231"))).hex().upper()
         + " 8101! 8000!")
"""The bank applet's personalization with a long cardholder name: DGI 0101 fills one STORE DATA, the two
encrypted DGIs the second."""
STEP_ORDER = ("ssd", "ssd-keys", "load", "install", "extradite", "personalize", "activate", "refresh")
INSTALL_FOR_LOAD, INSTALL_FOR_INSTALL, INSTALL_FOR_EXTRADITION, INSTALL_FOR_PERSO = 0x02, 0x0C, 0x10, 0x20
LAST_BLOCK = 0x80
CARD_ANSWERS = {0x9000, 0x6A88}
"""Every answer of a card that got nothing twice: success, or GET STATUS finding no entry (a probe)."""


@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: each command the card processed, with the step that sent it."""

    commands: tuple[tuple[str, Apdu], ...]
    entries: frozenset[tuple[str, str, int, str]]

    def index(self, point: str) -> int:
        """The 1-based position of the command a kill point names (`step:first|last|...`)."""
        step, where = point.split(":")
        positions = [n for n, (s, _) in enumerate(self.commands, 1) if s == step]
        of = {n: a for n, (_, a) in enumerate(self.commands, 1)}
        if where in ("first", "last"):
            return positions[0] if where == "first" else positions[-1]
        if where == "load-middle":
            loads = [n for n in positions if of[n].ins == Ins.LOAD]
            return loads[len(loads) // 2]
        wanted = {"install-for-load": (Ins.INSTALL, INSTALL_FOR_LOAD),
                  "install-for-perso": (Ins.INSTALL, INSTALL_FOR_PERSO)}.get(where)
        if wanted is not None:
            return next(n for n in positions if (of[n].ins, of[n].p1) == wanted)
        assert where == "store-data-1", point
        return next(n for n in positions if of[n].ins == Ins.STORE_DATA)

    def cuts_personalization(self, k: int) -> bool:
        """Whether the k-th command is a STORE DATA before the last one: the card holds part of it."""
        apdu = self.commands[k - 1][1]
        return apdu.ins == Ins.STORE_DATA and not apdu.p1 & LAST_BLOCK


@dataclass
class Resumption:
    lab: Lab
    app_id: str
    reference: Reference


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """One database per backend for the whole module (a PostgreSQL one dropped at the end)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('resume-db') / 'tsm.db'}"
        return
    name = f"tsm_resume_{secrets.token_hex(6)}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
    finally:
        close_all()
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def resumption(database, tmp_path_factory) -> Iterator[Resumption]:
    """One home for every kill: the bank app approved, and the reference run on a first card."""
    token = new_token("resume")
    home = tmp_path_factory.mktemp("resume")
    settings = with_overrides(load_settings({"TSM_HOME": str(home)}), database_url=database,
                              token_label=token.label, softhsm_conf=SOFTHSM_CONF, token_dir=TOKEN_DIR)
    bootstrap.save_pins(settings.pin_file, token.pins)
    lab = make_lab(settings, True)
    lab.add_sp("bankco", "cm")
    app_id = lab.app("bankco", "bank", perso=PERSO)
    card, se_id = lab.new_se()
    wire = Wire(card)
    job_id = jobs.order(lab.tsm, se_id, app_id)
    view = lab.run(job_id, wire, BANK_CARD_DGIS)
    assert view.state == "done", view.error
    logged = jobs.show(lab.tsm, job_id).apdus
    assert [a.header[2:4] for a in logged] == [f"{a.ins:02X}" for a in wire.seen]
    assert sum(a.ins == Ins.STORE_DATA for a in wire.seen) == 2
    reference = Reference(tuple((log.step, apdu) for log, apdu in zip(logged, wire.seen, strict=True)),
                          frozenset(assert_registry_is_card(lab, se_id, card)))
    yield Resumption(lab, app_id, reference)
    lab.tsm.sessions.kw["bind"].dispose()


def _same_as_reference(resumption: Resumption, se_id: str, wire: Wire) -> None:
    """The card holds what the uninterrupted run made, personalization included, and the registry says so."""
    expected = {e for e in resumption.reference.entries}
    on_card = assert_registry_is_card(resumption.lab, se_id, wire)
    assert {e for e in on_card if e[1] != "isd"} == {e for e in expected if e[1] != "isd"}
    _, record = send(wire.card, f"00A4040009{BANK_INSTANCE}", "00B2010C00")
    assert record.sw == 0x9000 and ("*" * 12 + BANK_PAN[-4:]).encode() in record.data and LONG_NAME in record.data


def _got_everything_once(seen: list[Apdu]) -> None:
    """Each content command reached the card once, and the card never refused one (no 6985 from an INSTALL
    repeated, no 6A80 from a second load)."""
    assert {a.sw for a in seen} <= CARD_ANSWERS, sorted({f"{a.ins:02X}:{a.sw:04X}" for a in seen})
    done = [a for a in seen if a.sw == 0x9000]
    assert sum(1 for a in done if a.ins == Ins.LOAD and a.p1 & LAST_BLOCK) == 1
    installs = [a.p1 for a in done if a.ins == Ins.INSTALL]
    assert installs.count(INSTALL_FOR_INSTALL) == 2  # the SSD and the app
    assert installs.count(INSTALL_FOR_EXTRADITION) == 1
    assert sum(a.ins == Ins.PUT_KEY for a in done) == 1


KILL_POINTS = [f"{step}:{where}" for step in STEP_ORDER for where in ("first", "last")]
KILL_POINTS[KILL_POINTS.index("load:last"):KILL_POINTS.index("load:last")] = ["load:install-for-load",
                                                                              "load:load-middle"]
KILL_POINTS[KILL_POINTS.index("personalize:last"):KILL_POINTS.index("personalize:last")] = [
    "personalize:install-for-perso", "personalize:store-data-1"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_worker_killed_at_each_point_resumes_or_names_why(resumption, point):
    lab, reference = resumption.lab, resumption.reference
    k = reference.index(point)
    card, se_id = lab.new_se()
    job_id = jobs.order(lab.tsm, se_id, resumption.app_id)
    wire = Wire(card)
    server = CardServer(wire, kill_at=k)
    worker = WORKERS.Process(target=run_job, args=(lab.settings, job_id, server.port, BANK_CARD_DGIS))
    worker.start()
    worker.join(timeout=120)
    server.join()
    assert worker.exitcode == -signal.SIGKILL and server.killed.is_set()
    assert len(wire.seen) == k and wire.seen[-1] == reference.commands[k - 1][1]
    assert jobs.show(lab.tsm, job_id).state == "running"  # the dead worker's claim

    view = lab.run(job_id, wire, BANK_CARD_DGIS)
    if reference.cuts_personalization(k):
        assert view.state == "in_error" and view.error.startswith("job_unresumable:"), view.error
        assert [s.state for s in view.steps if s.name == "personalize"] == ["started"]
        assert_registry_is_card(lab, se_id, wire)
        before = len(wire.seen)
        again = lab.run(job_id, wire, BANK_CARD_DGIS)  # it stays so, and nothing more is written to the card
        assert again.error.startswith("job_unresumable:")
        assert not [a for a in wire.seen[before:] if a.ins in (Ins.STORE_DATA, Ins.INSTALL, Ins.LOAD)]
        return
    assert view.state == "done", (point, view.error)
    assert all(s.state in ("done", "present") for s in view.steps), view.steps
    _got_everything_once(wire.seen)
    _same_as_reference(resumption, se_id, wire)


@pytest.mark.parametrize(("point", "after", "outcome"), [
    ("load:load-middle", False, "done"),
    ("install:last", True, "done"),
    ("extradite:last", True, "done"),
    ("personalize:install-for-perso", True, "done"),
    ("personalize:store-data-1", True, "job_unresumable"),
    ("activate:first", False, "done"),
])
def test_a_transport_lost_mid_job_stops_it_in_error_and_a_new_run_resumes(resumption, point, after, outcome):
    lab, reference = resumption.lab, resumption.reference
    card, se_id = lab.new_se()
    job_id = jobs.order(lab.tsm, se_id, resumption.app_id)
    unplugged = Unplugged(card, reference.index(point), after)
    view = lab.run(job_id, unplugged, BANK_CARD_DGIS)
    assert view.state == "in_error" and view.error.startswith("card_removed:"), view.error
    wire = Wire(card)
    wire.seen = list(unplugged.seen)
    view = lab.run(job_id, wire, BANK_CARD_DGIS)
    if outcome == "done":
        assert view.state == "done", view.error
        _got_everything_once(wire.seen)
        _same_as_reference(resumption, se_id, wire)
    else:
        assert view.state == "in_error" and view.error.startswith(f"{outcome}:"), view.error
        assert_registry_is_card(lab, se_id, wire)
