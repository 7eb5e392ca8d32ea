"""The admin UI's ceremonies area (docs/ceremonies.md, "In the browser") through the Flask test client on a lab
token: two officers run a key generation through the pages (start, join, approve, sign each step, KCV confirmed),
every action re-authenticated; a wrong code is refused with a message; an auditor reads and downloads the evidence,
which the service layer verifies, but cannot sign; a custodian's component is shown once, to them, uncached.

The key service's clock (which checks TOTP codes) and the UI's (`TSM_CLOCK`) are one fake clock that moves a TOTP
step (30 s) before each authentication: each code is accepted once (STYLE.md: fake only clocks)."""

from __future__ import annotations

import json
import re
import time

import pytest

from ceremonies.service import CeremonyService
from keyservice.people import Role
from tests.web.ui import Person, csrf_token, enroll, login
from web.admin.ceremonies import caller_of

STEP = 30
BASE = "/admin/ceremonies"


class Room:
    """The world's app, its people's clients and the fake clock."""

    def __init__(self, world) -> None:  # type: ignore[no-untyped-def]
        self.world, self.t = world, time.time()
        world.lab.keys.clock = lambda: self.t
        world.app.config["TSM_CLOCK"] = lambda: self.t
        self.clients: dict[str, object] = {}

    def sign_in(self, person: Person):  # type: ignore[no-untyped-def]
        client = self.world.client
        self.t += STEP
        assert login(client, person, person.code(self.t)).status_code == 302
        self.clients[person.name] = client
        return client

    def post(self, person: Person, path: str, page: str, code: str | None = None, **fields: str):  # type: ignore[no-untyped-def]
        """POST a ceremony form as `person`, re-authenticated with the next step's code (or `code`)."""
        client = self.clients[person.name]
        token = csrf_token(client.get(page).get_data(as_text=True))
        self.t += STEP
        return client.post(path, data={"csrf_token": token, "password": person.password,
                                       "code": code or person.code(self.t), **fields})

    def act(self, person: Person, cid: str, action: str, **fields: str):  # type: ignore[no-untyped-def]
        return self.post(person, f"{BASE}/{cid}/{action}", f"{BASE}/{cid}", **fields)

    def page(self, person: Person, path: str) -> str:
        client = self.clients[person.name]
        return client.get(path).get_data(as_text=True)  # type: ignore[attr-defined]


@pytest.fixture
def room(world) -> Room:  # type: ignore[no-untyped-def]
    return Room(world)


def _flash(text: str) -> list[str]:
    return re.findall(r'<p class="flash (?:error|ok)" role="status">([^<]*)</p>', text)


def test_two_officers_generate_a_key_through_the_pages(room: Room):
    keys = room.world.lab.keys
    alice, bob, eve = (enroll(keys, Role.OFFICER), enroll(keys, Role.OFFICER), enroll(keys, Role.AUDITOR))
    for person in (alice, bob, eve):
        room.sign_in(person)
    form = room.page(alice, f"{BASE}/start/key-generation")
    assert 'name="param-label"' in form and 'name="password"' in form and 'name="code"' in form
    started = room.post(alice, f"{BASE}/start/key-generation", f"{BASE}/start/key-generation",
                        **{"param-label": "kmc-ui", "param-usage": "KMC"})
    assert started.status_code == 302
    cid = started.headers["Location"].rsplit("/", 1)[1]
    assert cid in re.search(r'id="pending-ceremonies">(.*?)</section>', room.page(bob, "/admin/"), re.S).group(1)
    assert 'class="mine"' in room.page(bob, f"{BASE}/")
    assert room.act(bob, cid, "join", role="officer").status_code == 302
    assert room.act(bob, cid, "approve").status_code == 302
    assert "Approved step 2" in _flash(room.page(bob, f"{BASE}/{cid}"))[0]

    wrong = room.act(alice, cid, "sign/1", code="000000" if alice.code(room.t + STEP) != "000000" else "111111")
    assert wrong.status_code == 302
    assert _flash(room.page(alice, f"{BASE}/{cid}")) == ["Password or code is wrong: the action was not taken."]
    assert CeremonyService(keys, room.world.lab.tsm.sessions, caller_of).show(cid).next_step == 1
    assert room.act(eve, cid, "sign/1").status_code == 403

    for number in (1, 2):
        assert room.act(alice, cid, f"sign/{number}").status_code == 302
    detail = room.page(bob, f"{BASE}/{cid}")
    kcv = re.search(r"label_kcv=([0-9A-F]{6})", detail).group(1)
    assert 'id="sign-kcv"' in detail
    mistyped = room.act(bob, cid, "sign/3", kcv="000000" if kcv != "000000" else "111111")
    assert mistyped.status_code == 302 and "kcv" in _flash(room.page(bob, f"{BASE}/{cid}"))[0].lower()
    assert room.act(bob, cid, "sign/3", kcv=kcv).status_code == 302
    assert room.act(alice, cid, "sign/4").status_code == 302
    done = room.page(eve, f"{BASE}/{cid}")
    assert 'id="state">completed<' in done and 'id="sign"' not in done and "kcv_mismatch" in done
    assert keys.keys.show("kmc-ui").state == "active" and keys.keys.show("kmc-ui").kcv == kcv

    exported = room.clients[eve.name].get(f"{BASE}/{cid}/evidence.json")  # type: ignore[attr-defined]
    assert exported.status_code == 200 and exported.mimetype == "application/json"
    text = exported.get_data(as_text=True)
    assert CeremonyService(keys, room.world.lab.tsm.sessions, caller_of).verify(text) == cid
    body = json.loads(text)["transcript"]
    assert [s["signed_by"] for s in body["steps"]] == [alice.name, alice.name, bob.name, alice.name]
    printable = room.clients[eve.name].get(f"{BASE}/{cid}/evidence.html")  # type: ignore[attr-defined]
    assert printable.mimetype == "text/html" and "signature ____" in printable.get_data(as_text=True)
    for person in (alice, bob, eve):
        assert person.password not in text + done
    client = room.clients[alice.name]
    assert client.get(f"{BASE}/cer-nope").status_code == 404  # type: ignore[attr-defined]
    assert client.get(f"{BASE}/start/no-such-type").status_code == 400  # type: ignore[attr-defined]
    assert client.get(f"{BASE}/{cid}/evidence.xml").status_code == 404  # type: ignore[attr-defined]


def test_a_custodian_sees_their_component_once_and_an_officer_aborts(room: Room):
    keys = room.world.lab.keys
    alice, cus1, cus2 = enroll(keys, Role.OFFICER), enroll(keys, Role.CUSTODIAN), enroll(keys, Role.CUSTODIAN)
    for person in (alice, cus1, cus2):
        room.sign_in(person)
    cid = room.post(alice, f"{BASE}/start/key-generation", f"{BASE}/start/key-generation",
                    **{"param-label": "kmc-split", "param-components": "2"}).headers["Location"].rsplit("/", 1)[1]
    for custodian in (cus1, cus2):
        assert room.act(custodian, cid, "join", role="custodian").status_code == 302
    assert room.act(alice, cid, "sign/1").status_code == 302
    shown = room.act(cus1, cid, "sign/2")
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    component = re.search(r'id="shown-component">([0-9A-F]+)<', shown.get_data(as_text=True)).group(1)
    kcv = re.search(r'id="shown-kcv">([0-9A-F]+)<', shown.get_data(as_text=True)).group(1)
    for person in (alice, cus1, cus2):
        page = room.page(person, f"{BASE}/{cid}")
        assert component not in page and f"component_1_kcv={kcv}" in page
    assert room.act(cus1, cid, "sign/3").status_code == 302 and "already holds" in _flash(
        room.page(cus1, f"{BASE}/{cid}"))[0]
    assert room.act(cus2, cid, "sign/3").status_code == 200
    refused = room.act(alice, cid, "abort", reason="")
    assert refused.status_code == 302 and "Reason" in _flash(room.page(alice, f"{BASE}/{cid}"))[0]
    assert room.act(cus1, cid, "abort", reason="drill").status_code == 403
    assert room.act(alice, cid, "abort", reason="drill over").status_code == 302
    assert 'id="state">aborted<' in room.page(cus1, f"{BASE}/{cid}")
    assert keys.components.held(cid) == []
