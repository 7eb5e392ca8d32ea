"""Ceremonies 1 and 2 end to end at the service layer on a real SoftHSM2 token: master key generation (plain and
split into custodians' components) and import from components (docs/ceremonies.md)."""

from __future__ import annotations

from functools import reduce

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ceremonies.errors import DutiesNotSegregated, OutOfTurn
from keyservice.errors import ApprovalRequired, KcvMismatch, QuorumNotReached
from tests.ceremonies.conftest import Room


def aes_kcv(value: bytes) -> str:
    enc = Cipher(algorithms.AES(value), modes.ECB()).encryptor()  # noqa: S305 - the GP KCV of AES (Amd D)
    return (enc.update(b"\x01" * 16) + enc.finalize())[:3].hex().upper()


def test_generation_split_into_components_on_a_production_token(production: Room):
    room = production
    cid = room.start("key-generation", {"label": "kmc-1", "components": "2"})
    for who, role in (("bob", "officer"), ("cus1", "custodian"), ("cus2", "custodian")):
        room.join(cid, who, role)
    room.sign(cid, "alice")  # 1 open
    shown = [room.sign(cid, "cus1"), room.sign(cid, "cus2")]  # 2, 3 each custodian's component, shown once
    assert all(s["kcv"] == aes_kcv(bytes.fromhex(s["component"])) for s in shown)
    assert room.service.show(cid).steps[1].output == {"component_1_kcv": shown[0]["kcv"]}
    with pytest.raises(ApprovalRequired):  # 4 combine: privileged, no approvals yet
        room.sign(cid, "alice")
    room.approve(cid, "bob")
    with pytest.raises(QuorumNotReached):
        room.sign(cid, "alice")
    room.approve(cid, "bob", "carol")  # the failed attempt spent nothing: the exception is recorded
    room.sign(cid, "alice")
    combined = reduce(lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)),
                      [bytes.fromhex(s["component"]) for s in shown])
    kcv = room.service.show(cid).outputs["label_kcv"]
    assert kcv == aes_kcv(combined)
    with pytest.raises(DutiesNotSegregated):  # the requester does not confirm their own KCV
        room.sign(cid, "alice", kcv=kcv)
    with pytest.raises(KcvMismatch):
        room.sign(cid, "bob", kcv="000000")
    room.sign(cid, "bob", kcv=kcv)  # 5
    room.approve(cid, "carol", "dave")
    room.sign(cid, "alice")  # 6 activate
    view = room.service.show(cid)
    assert view.state == "completed" and view.next_step is None
    assert [s.signed_by for s in view.steps] == ["alice", "cus1", "cus2", "alice", "bob", "alice"]
    assert {e.kind for e in view.events} >= {"start", "join", "sign", "approve", "exception", "complete"}
    key = room.ks.keys.show("kmc-1")
    assert key.state == "active" and key.kcv == kcv
    assert room.ks.components.held(cid) == []
    assert room.ks.keys.check().consistent


def test_generation_without_split_on_a_lab_token(lab: Room):
    cid = lab.start("key-generation", {"label": "kek-1", "usage": "KEK", "algorithm": "des3"})
    lab.join(cid, "bob", "officer")
    lab.sign(cid, "alice")
    lab.sign(cid, "alice")  # generate: the lab's console officer alone, marked lab
    kcv = lab.service.show(cid).outputs["label_kcv"]
    lab.sign(cid, "bob", kcv=kcv)
    lab.sign(cid, "alice")
    assert lab.service.show(cid).state == "completed"
    assert lab.ks.keys.show("kek-1").state == "active"


def test_import_from_components_catches_a_wrong_component_kcv(production: Room):
    room = production
    c1, c2 = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    total = bytes(x ^ y for x, y in zip(c1, c2, strict=True))
    cid = room.start("key-import", {"label": "kmc-imp", "kcv": aes_kcv(total)})
    for who, role in (("dave", "officer"), ("cus1", "custodian"), ("cus2", "custodian")):
        room.join(cid, who, role)
    room.sign(cid, "alice")
    with pytest.raises(OutOfTurn):  # not a custodian
        room.sign(cid, "dave", component=c1.hex(), kcv=aes_kcv(c1))
    with pytest.raises(KcvMismatch):
        room.sign(cid, "cus1", component=c1.hex(), kcv=aes_kcv(c2))
    assert room.ks.components.held(cid) == []
    room.sign(cid, "cus1", component=c1.hex(), kcv=aes_kcv(c1))
    with pytest.raises(DutiesNotSegregated):  # each component goes to another custodian
        room.sign(cid, "cus1", component=c2.hex(), kcv=aes_kcv(c2))
    room.sign(cid, "cus2", component=c2.hex(), kcv=aes_kcv(c2))
    room.approve(cid, "bob", "carol")
    room.sign(cid, "alice")
    room.sign(cid, "dave", kcv=aes_kcv(total))
    room.approve(cid, "bob", "carol")
    room.sign(cid, "alice")
    assert room.ks.keys.show("kmc-imp").provenance == "imported-components"
    assert room.ks.keys.show("kmc-imp").kcv == aes_kcv(total)
    assert room.ks.keys.check().consistent
