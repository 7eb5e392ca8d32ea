"""Admin UI pages beyond the matrix: the audit log's filters and exports, enrolment's one-time QR page."""

from __future__ import annotations

import csv
import io
import json

from keyservice.people import Role
from tests.web.ui import csrf_token, enroll, login
from tsm_core.registry import service as registry


def test_the_audit_log_filters_and_exports_what_it_shows(world):
    officer = enroll(world.lab.keys, Role.OFFICER)
    client = world.client
    login(client, officer)
    page = client.get(f"/admin/audit/?actor={officer.name}&operation=authenticate").get_data(as_text=True)
    assert page.count("<td>authenticate</td>") == 1
    exported = json.loads(client.get(f"/admin/audit/export.json?actor={officer.name}").get_data(as_text=True))
    assert [r["operation"] for r in exported] == ["authenticate"] and exported[0]["outcome"] == "ok"
    rows = list(csv.DictReader(io.StringIO(client.get("/admin/audit/export.csv?outcome=ok&limit=5")
                                           .get_data(as_text=True))))
    assert 0 < len(rows) <= 5 and {r["outcome"] for r in rows} == {"ok"}
    assert officer.password not in json.dumps(exported)
    assert client.get("/admin/audit/export.xml").status_code == 404


def test_enrolment_shows_the_qr_code_once_and_is_not_cached(world):
    officer = enroll(world.lab.keys, Role.OFFICER)
    client = world.client
    login(client, officer)
    token = csrf_token(client.get("/admin/people/").get_data(as_text=True))
    answer = client.post("/admin/people/", data={"csrf_token": token, "name": "carol", "role": "auditor",
                                                 "password": "a long enough password", "owner": ""})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert "<svg" in text and 'id="totp-secret"' in text and "otpauth://totp/" in text
    listed = client.get("/admin/people/").get_data(as_text=True)
    assert "carol" in listed and "otpauth" not in listed and "<svg" not in listed
    short = client.post("/admin/people/", data={"csrf_token": token, "name": "dave", "role": "auditor",
                                                "password": "short", "owner": ""})
    assert short.status_code == 302 and "Initial password" in client.get("/admin/people/").get_data(as_text=True)


def test_secure_elements_are_found_by_a_cplc_field(world):
    operator = enroll(world.lab.keys, Role.OPERATOR)
    client = world.client
    login(client, operator)
    serial = registry.show(world.lab.tsm, world.se_id).cplc[24:32]  # bytes 12-15: the IC serial number
    found = client.get(f"/admin/secure-elements/?cplc_field=ic_serial_number&cplc_value={serial}")
    assert found.status_code == 200 and world.se_id in found.get_data(as_text=True)
    other = f"{(int(serial, 16) + 1) % 2**32:08X}"
    missed = client.get(f"/admin/secure-elements/?cplc_field=ic_serial_number&cplc_value={other}")
    assert missed.status_code == 200 and world.se_id not in missed.get_data(as_text=True)
    assert client.get("/admin/secure-elements/?cplc_field=ic_serial_number&cplc_value=0A").status_code == 400
