"""Ceremony 3 end to end at the service layer on a real SoftHSM2 production token (quorum 2): the vendor's KBPK
formed from components, an exportable key sent to the vendor as a TR-31 block (checked with the independent psec
implementation, as the vendor would), the same block imported back under the KBPK with its KCV, a tampered
block refused (the ceremony aborted, nothing made), and an imported key destroyed when its ceremony is aborted
before activation (docs/ceremonies.md, ceremony 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from psec import tr31 as psec_tr31

from globalplatform.keys import KeyAlgorithm
from keyservice import operations
from keyservice.approvals import ApprovalSet
from keyservice.errors import MacMismatch
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.operations import OperationSpec
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from tests.ceremonies.conftest import Room
from tests.ceremonies.test_key_ceremonies import aes_kcv

C1, C2 = bytes.fromhex("00112233445566778899AABBCCDDEEFF"), bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")
KBPK = bytes(x ^ y for x, y in zip(C1, C2, strict=True))
ALICE = Caller("alice", CallerKind.OFFICER)


def approved(room: Room, spec: OperationSpec, call: Callable[[Request], object]) -> None:
    """A privileged key-service call by alice with bob's and carol's approvals for exactly `spec`."""
    approvals = ApprovalSet("alice", tuple(room.ks.approvals.approve(spec.digest, who, room.creds(who),
                                                                     requester="alice", now=room.t)
                                           for who in ("bob", "carol")))
    call(Request(ALICE, Purpose.KEY_MANAGEMENT, "setup", approvals=approvals))


def exchange(room: Room, params: dict[str, str], **inputs: dict[str, str]) -> str:
    """Run a vendor-exchange ceremony up to its privileged import or export step (that step not signed)."""
    cid = room.start("vendor-exchange", {"vendor": "acme", "kcv": aes_kcv(KBPK), **params})
    split = params.get("components") != "0"
    signers = [("cus1", "custodian"), ("cus2", "custodian")] if split else []
    for who, role in [*signers, ("vera", "vendor")]:
        room.join(cid, who, role)  # only those who sign join (approvers need not)
    room.sign(cid, "alice")
    if split:
        room.sign(cid, "cus1", component=C1.hex(), kcv=aes_kcv(C1))
        room.sign(cid, "cus2", component=C2.hex(), kcv=aes_kcv(C2))
        room.approve(cid, "bob", "carol")
        room.sign(cid, "alice")  # form the KBPK
    room.sign(cid, "vera", kcv=aes_kcv(KBPK))  # the vendor confirms the KBPK's KCV from its letter
    if split:
        room.approve(cid, "bob", "carol")
        room.sign(cid, "alice")  # activate the KBPK
    if "block" in inputs:
        room.sign(cid, "vera", **inputs["block"])  # the vendor hands over the block
    room.approve(cid, "bob", "carol")
    return cid


def test_export_to_the_vendor_then_import_back_tampered_refused_abort_destroys(production: Room):
    room = production
    spec = NewKey("zmk-out", KeyAlgorithm.AES, 16, KeyUsage.KEK, "issuer", exportable=True)
    approved(room, operations.generate(spec), lambda req: room.ks.keys.generate(req, spec))
    approved(room, operations.change_state("zmk-out", KeyState.ACTIVE),
             lambda req: room.ks.keys.change_state(req, "zmk-out", KeyState.ACTIVE))
    sent_kcv = room.ks.keys.show("zmk-out").kcv

    out = exchange(room, {"kbpk": "kbpk-acme", "direction": "export", "key": "zmk-out"})
    block = room.sign(out, "alice")["key_block"]  # shown once, handed to the vendor
    room.join(out, "eve", "auditor")
    room.sign(out, "eve")
    view = room.service.show(out)
    assert view.state == "completed" and view.outputs["key_kcv"] == sent_kcv
    assert "key_block" not in view.outputs and room.ks.keys.show("kbpk-acme").state == "active"
    header, value = psec_tr31.unwrap(KBPK, block)  # what the vendor does with its KBPK
    assert header.version_id == "D" and header.key_usage == "K0" and aes_kcv(value) == sent_kcv

    tampered = block[:-1] + ("0" if block[-1] != "0" else "1")
    bad = exchange(room, {"kbpk": "kbpk-acme", "components": "0", "direction": "import", "key": "zmk-bad"},
                   block={"block": tampered, "kcv": sent_kcv})
    with pytest.raises(MacMismatch):
        room.sign(bad, "alice")
    assert room.service.show(bad).state == "aborted"  # the script aborts on an altered block
    assert "zmk-bad" not in room.token_labels()

    back = {"kbpk": "kbpk-acme", "components": "0", "direction": "import"}
    left = exchange(room, {**back, "key": "zmk-left"}, block={"block": block, "kcv": sent_kcv})
    assert room.sign(left, "alice") == {}
    assert room.ks.keys.show("zmk-left").kcv == sent_kcv  # imported back with its KCV checked
    room.service.abort(left, "the vendor withdrew the key", "bob", room.creds("bob"))
    assert room.ks.keys.show("zmk-left").state == "destroyed" and "zmk-left" not in room.token_labels()

    kept = exchange(room, {**back, "key": "zmk-back"}, block={"block": block, "kcv": sent_kcv})
    room.sign(kept, "alice")  # import
    room.approve(kept, "bob", "carol")
    room.sign(kept, "alice")  # activate the received key
    room.join(kept, "eve", "auditor")
    room.sign(kept, "eve")
    received = room.ks.keys.show("zmk-back")
    assert room.service.show(kept).state == "completed"
    assert received.state == "active" and received.kcv == sent_kcv and received.provenance == "imported-wrapped"
    assert room.ks.keys.check().consistent
