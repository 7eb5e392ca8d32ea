"""The key-service API for TSM components (docs/api.md, "Key service") against an in-process cardsim card: the
EXTERNAL AUTHENTICATE the API answers opens the card's channel, wrapped commands are accepted by the card and its
protected answers unwrap; handles are bound to their component; purposes, scopes and bad input are refused."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from globalplatform import initupdate
from globalplatform.apdu import ResponseApdu
from tsm_core.apikeys import service as apikeys
from tsm_core.components.models import KeyChannel
from tsm_core.gp import commands
from tsm_core.registry import service as registry
from web.app import create_app

CHANNELS = "/api/v1/key-service/channels"
GET_STATUS_ISD = "80F28000024F0000"
"""GET STATUS of the Issuer Security Domain (GPCS 2.3.1 §11.4; P2 00: the AID, life cycle and privileges)."""
C_MAC, FULL = 0x01, 0x33
"""Security levels: C-MAC; C-MAC, C-DEC, R-MAC, R-ENC (the wearable profile's i=70 allows them)."""


def _send(card, apdu: str | bytes) -> ResponseApdu:  # type: ignore[no-untyped-def]
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    return ResponseApdu.from_bytes(card.transmit(raw))


@pytest.fixture
def ks(world):  # type: ignore[no-untyped-def]
    """The world with two TSM components: `perso` (SE_MANAGEMENT, SE_PERSO) and `other` (SE_MANAGEMENT)."""
    world.keys["perso"] = apikeys.create(world.lab.tsm, "component", "perso", (),
                                         ("SE_MANAGEMENT", "SE_PERSO")).key
    world.keys["other"] = apikeys.create(world.lab.tsm, "component", "other", (), ("SE_MANAGEMENT",)).key
    world.isd = registry.show(world.lab.tsm, world.se_id).profile.isd_aid
    return world


def _initialize_update(world, challenge: bytes) -> str:  # type: ignore[no-untyped-def]
    """SELECT the ISD and send INITIALIZE UPDATE: the card's answer (without SW) in hex."""
    assert _send(world.card, commands.select(bytes.fromhex(world.isd)).to_bytes()).sw == 0x9000
    answer = _send(world.card, initupdate.command(0, challenge))
    assert answer.sw == 0x9000
    return answer.data.hex()


def _open(world, level: int = C_MAC, who: str = "perso"):  # type: ignore[no-untyped-def]
    challenge = secrets.token_bytes(8)
    response = _initialize_update(world, challenge)
    return world.client.post(CHANNELS, json={"se_id": world.se_id, "purpose": "SE_MANAGEMENT",
                                             "security_level": level, "host_challenge": challenge.hex(),
                                             "card_response": response}, headers=world.headers(who))


def test_the_card_accepts_the_external_authenticate_and_the_wrapped_commands(ks):
    opened = _open(ks, FULL)
    assert opened.status_code == 201, opened.get_json()
    channel = opened.get_json()
    assert channel["state"] == "open" and channel["scp"] == "03" and channel["security_level"] == FULL
    assert _send(ks.card, channel["external_authenticate"]).sw == 0x9000
    for _ in range(3):  # counters and MAC chaining carried from call to call
        wrapped = ks.client.post(f"{CHANNELS}/{channel['id']}/wrap", json={"command": GET_STATUS_ISD},
                                 headers=ks.headers("perso"))
        assert wrapped.status_code == 200, wrapped.get_json()
        command = wrapped.get_json()["command"]
        assert command != GET_STATUS_ISD and int(command[:2], 16) & 0x04  # secure messaging
        answer = ks.card.transmit(bytes.fromhex(command))
        assert answer[-2:] == b"\x90\x00"
        plain = ks.client.post(f"{CHANNELS}/{channel['id']}/unwrap", json={"response": answer.hex()},
                               headers=ks.headers("perso"))
        assert plain.status_code == 200, plain.get_json()
        data = bytes.fromhex(plain.get_json()["response"])
        assert data[-2:] == b"\x90\x00" and bytes.fromhex(ks.isd) in data
    tampered = bytearray(ks.card.transmit(bytes.fromhex(ks.client.post(
        f"{CHANNELS}/{channel['id']}/wrap", json={"command": GET_STATUS_ISD},
        headers=ks.headers("perso")).get_json()["command"])))
    tampered[0] ^= 1
    refused = ks.client.post(f"{CHANNELS}/{channel['id']}/unwrap", json={"response": tampered.hex()},
                             headers=ks.headers("perso"))
    assert refused.status_code == 422 and refused.get_json()["code"] == "mac_mismatch"


def test_a_channel_opened_in_two_steps_and_served_by_another_app(ks):
    first = ks.client.post(CHANNELS, json={"se_id": ks.se_id, "purpose": "SE_MANAGEMENT"},
                           headers=ks.headers("perso"))
    assert first.status_code == 201, first.get_json()
    channel = first.get_json()
    assert channel["state"] == "initializing" and channel["external_authenticate"] is None
    assert _send(ks.card, commands.select(bytes.fromhex(ks.isd)).to_bytes()).sw == 0x9000
    answer = _send(ks.card, channel["initialize_update"])
    other_worker = create_app({"TSM_SETTINGS": ks.lab.settings, "TESTING": True}).test_client()
    done = other_worker.post(f"{CHANNELS}/{channel['id']}/authenticate", json={"card_response": answer.data.hex()},
                             headers=ks.headers("perso"))
    assert done.status_code == 200, done.get_json()
    assert _send(ks.card, done.get_json()["external_authenticate"]).sw == 0x9000
    wrapped = ks.client.post(f"{CHANNELS}/{channel['id']}/wrap", json={"command": GET_STATUS_ISD},
                             headers=ks.headers("perso")).get_json()["command"]
    assert _send(ks.card, wrapped).sw == 0x9000
    again = ks.client.post(f"{CHANNELS}/{channel['id']}/authenticate", json={"card_response": answer.data.hex()},
                           headers=ks.headers("perso"))
    assert again.status_code == 409 and again.get_json()["code"] == "channel_not_open"


def test_no_session_key_and_no_secret_in_the_channel_row(ks):
    channel = _open(ks).get_json()
    with ks.lab.tsm.sessions() as db:
        row = db.execute(select(KeyChannel).where(KeyChannel.id == channel["id"])).scalar_one()
    assert row.owner == "component:perso" and row.purpose == "SE_MANAGEMENT" and row.se_id == ks.se_id
    stored = {c.name for c in KeyChannel.__table__.columns}
    assert not {n for n in stored if "key" in n and n != "keys"}  # labels only, never a key value
    assert row.keys.split() == ["vendor-isd"]


def test_each_call_is_audited_as_the_component_with_its_purpose(ks):
    channel = _open(ks).get_json()
    ks.client.post(f"{CHANNELS}/{channel['id']}/wrap", json={"command": GET_STATUS_ISD}, headers=ks.headers("perso"))
    key_id = ks.keys["perso"].split("_")[1]
    records = [r for r in ks.lab.keys.audit.records(20) if r.actor == f"service:apikey:{key_id}"]
    assert [(r.operation, r.purpose, r.target, r.outcome) for r in records[:2]] == \
        [("secure-channel", "SE_MANAGEMENT", ks.se_id, "ok")] * 2
    assert {"resumed" in r.detail for r in records[:2]} == {True, False}


def test_a_purpose_the_key_does_not_grant_is_refused(ks):
    refused = ks.client.post(CHANNELS, json={"se_id": ks.se_id, "purpose": "KEY_ROTATION"},
                             headers=ks.headers("perso"))
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "purpose_not_granted" and refused.get_json()["category"] == "SECURITY"
    kcv = ks.client.get("/api/v1/key-service/keys/vendor-isd/kcv?purpose=SE_PERSO", headers=ks.headers("other"))
    assert kcv.status_code == 403 and kcv.get_json()["code"] == "purpose_not_granted"


def test_another_components_handle_is_refused(ks):
    channel = _open(ks).get_json()
    for method, path, body in (("POST", f"{CHANNELS}/{channel['id']}/wrap", {"command": GET_STATUS_ISD}),
                               ("POST", f"{CHANNELS}/{channel['id']}/unwrap", {"response": "9000"}),
                               ("DELETE", f"{CHANNELS}/{channel['id']}", None)):
        response = ks.client.open(path, method=method, json=body, headers=ks.headers("other"))
        assert response.status_code == 404 and response.get_json()["code"] == "not_found", (method, path)
    closed = ks.client.delete(f"{CHANNELS}/{channel['id']}", headers=ks.headers("perso"))
    assert closed.status_code == 204
    gone = ks.client.post(f"{CHANNELS}/{channel['id']}/wrap", json={"command": GET_STATUS_ISD},
                          headers=ks.headers("perso"))
    assert gone.status_code == 404


@pytest.mark.parametrize("body", [
    {"command": "80F2800002ZZ0000"}, {"command": "80F"}, {"command": ""}, {"command": 12}, {},
])
def test_bad_hex_is_a_422_problem(ks, body):
    channel = _open(ks).get_json()
    response = ks.client.post(f"{CHANNELS}/{channel['id']}/wrap", json=body, headers=ks.headers("perso"))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "validation_failed"


def test_a_card_answer_that_does_not_verify_or_names_another_card(ks):
    challenge = secrets.token_bytes(8)
    answer = bytearray(bytes.fromhex(_initialize_update(ks, challenge)))
    answer[-1] ^= 1
    body = {"se_id": ks.se_id, "purpose": "SE_MANAGEMENT", "host_challenge": challenge.hex(),
            "card_response": answer.hex()}
    refused = ks.client.post(CHANNELS, json=body, headers=ks.headers("perso"))
    assert refused.status_code == 422 and refused.get_json()["code"] == "cryptogram_mismatch"
    answer[0] ^= 0xFF  # the KDD: not this SE
    wrong = ks.client.post(CHANNELS, json={**body, "card_response": answer.hex()}, headers=ks.headers("perso"))
    assert wrong.status_code == 409 and wrong.get_json()["code"] == "wrong_card"


def test_kcv_and_other_owners(ks):
    kcv = ks.client.get("/api/v1/key-service/keys/vendor-isd/kcv?purpose=SE_MANAGEMENT", headers=ks.headers("perso"))
    assert kcv.status_code == 200 and kcv.get_json()["kcv"] == ks.lab.keys.keys.show("vendor-isd").kcv
    for who in ("sp", "vendor", "device"):
        response = ks.client.post(CHANNELS, json={"se_id": ks.se_id, "purpose": "SE_MANAGEMENT"},
                                  headers=ks.headers(who))
        assert response.status_code == 403 and response.get_json()["code"] == "scope_missing", who


def test_key_blocks_are_reserved_to_officers_by_the_key_service(ks):
    exported = ks.client.post("/api/v1/key-service/key-block-exports",
                              json={"label": "vendor-isd", "kbpk": "vendor-ssd", "usage": "K0"},
                              headers=ks.headers("perso"))
    assert exported.status_code == 403 and exported.get_json()["code"] == "purpose_not_granted"
    exporter = apikeys.create(ks.lab.tsm, "component", "exchange", (), ("VENDOR_EXPORT",)).key
    refused = ks.client.post("/api/v1/key-service/key-block-exports",
                             json={"label": "vendor-isd", "kbpk": "vendor-ssd", "usage": "K0"},
                             headers={"Authorization": f"Bearer {exporter}"})
    assert refused.status_code == 403 and refused.get_json()["code"] == "policy_denied"


def test_component_keys_name_purposes(ks):
    from tsm_core.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="purposes"):
        apikeys.create(ks.lab.tsm, "component", "x", (), ())
    with pytest.raises(InvalidRequest, match="AUDIT"):
        apikeys.create(ks.lab.tsm, "component", "x", (), ("AUDIT",))
    with pytest.raises(InvalidRequest, match="only a TSM component"):
        apikeys.create(ks.lab.tsm, "sp", "metro", (), ("SE_PERSO",))


@pytest.mark.postgres
def test_open_and_wrap_on_sqlite_and_postgresql(any_db_world):
    world = any_db_world
    world.keys["perso"] = apikeys.create(world.lab.tsm, "component", "perso", (), ("SE_MANAGEMENT",)).key
    world.isd = registry.show(world.lab.tsm, world.se_id).profile.isd_aid
    channel = _open(world).get_json()
    assert _send(world.card, channel["external_authenticate"]).sw == 0x9000
    for _ in range(2):
        wrapped = world.client.post(f"{CHANNELS}/{channel['id']}/wrap", json={"command": GET_STATUS_ISD},
                                    headers=world.headers("perso")).get_json()["command"]
        assert _send(world.card, wrapped).sw == 0x9000
