"""Key components under split knowledge (`KeyService.components`): KCV checked at entry, held sealed, combined in
the HSM into a non-extractable key, discarded with anything half-made (docs/ceremonies.md)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import select

from globalplatform.keys import KeyAlgorithm
from keyservice.components import SEAL_KEY_LABEL
from keyservice.errors import InvalidInput, KcvMismatch, KeyExists, UnsealFailed
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.models import ComponentRecord
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey
from tests.conftest import core_of

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "cer-test")
C1 = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
C2 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def aes_kcv(value: bytes) -> str:
    enc = Cipher(algorithms.AES(value), modes.ECB()).encryptor()  # noqa: S305 - the GP KCV of AES (Amd D): E(K, 01..01)
    return (enc.update(b"\x01" * 16) + enc.finalize())[:3].hex().upper()


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def test_entered_components_combine_into_a_key_with_the_sum_kcv(keyservice):
    comps = keyservice.components
    comps.enter(OFFICER, "set-1", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))
    comps.enter(OFFICER, "set-1", 2, KeyAlgorithm.AES, C2, aes_kcv(C2))
    assert [c.kcv for c in comps.held("set-1")] == [aes_kcv(C1), aes_kcv(C2)]
    with core_of(keyservice).sessions() as db:
        stored = " ".join(r.sealed.upper() for r in db.execute(select(ComponentRecord)).scalars())
    assert C1.hex().upper() not in stored and C2.hex().upper() not in stored
    view = comps.combine(OFFICER, "set-1", NewKey("kmc-1", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"), 2,
                         generated=False)
    assert view.kcv == aes_kcv(xor(C1, C2))
    assert view.state == KeyState.PRE_ACTIVATION and view.provenance == "imported-components"
    assert comps.held("set-1") == []
    # the formed key is sensitive and not extractable: the token check compares it with its template
    assert keyservice.keys.check().consistent


def test_a_wrong_component_kcv_is_refused_and_nothing_is_stored(keyservice):
    with pytest.raises(KcvMismatch):
        keyservice.components.enter(OFFICER, "set-2", 1, KeyAlgorithm.AES, C1, aes_kcv(C2))
    assert keyservice.components.held("set-2") == []
    assert keyservice.audit.records(1)[0].outcome == "refused"


def test_another_component_for_a_held_index_is_refused(keyservice):
    keyservice.components.enter(OFFICER, "set-3", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))
    keyservice.components.enter(OFFICER, "set-3", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))  # the same: harmless
    with pytest.raises(KeyExists):
        keyservice.components.enter(OFFICER, "set-3", 1, KeyAlgorithm.AES, C2, aes_kcv(C2))


def test_generated_components_are_shown_once_and_form_the_key(keyservice):
    comps = keyservice.components
    shown = [comps.generate(OFFICER, "set-4", i, KeyAlgorithm.DES3, 16) for i in (1, 2, 3)]
    assert all(s.value not in repr(s) for s in shown)
    values = [bytes.fromhex(s.value) for s in shown]
    view = comps.combine(OFFICER, "set-4", NewKey("kek-1", KeyAlgorithm.DES3, 16, KeyUsage.KEK, "issuer"), 3,
                         generated=True)
    total = xor(xor(values[0], values[1]), values[2])
    enc = Cipher(TripleDES(total + total[:8]), modes.ECB()).encryptor()  # noqa: S305 - GP KCV
    assert view.kcv == (enc.update(bytes(8)) + enc.finalize())[:3].hex().upper()
    assert view.provenance == "generated"


def test_a_sealed_component_moved_to_another_index_does_not_open(keyservice):
    comps = keyservice.components
    comps.enter(OFFICER, "set-5", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))
    comps.enter(OFFICER, "set-5", 2, KeyAlgorithm.AES, C2, aes_kcv(C2))
    with core_of(keyservice).sessions() as db, db.begin():
        rows = list(db.execute(select(ComponentRecord).order_by(ComponentRecord.idx)).scalars())
        rows[0].sealed, rows[1].sealed = rows[1].sealed, rows[0].sealed
    with pytest.raises(UnsealFailed):
        comps.combine(OFFICER, "set-5", NewKey("kmc-5", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"), 2,
                      generated=False)
    assert "kmc-5" not in [o.label for o in core_of(keyservice).hsm.objects()]


def test_discard_deletes_components_and_destroys_a_never_activated_key(keyservice):
    comps = keyservice.components
    comps.enter(OFFICER, "set-6", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))
    comps.enter(OFFICER, "set-6", 2, KeyAlgorithm.AES, C2, aes_kcv(C2))
    comps.combine(OFFICER, "set-6", NewKey("kmc-6", KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"), 2,
                  generated=False)
    comps.enter(OFFICER, "set-6", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))
    assert comps.discard(Request(OFFICER.caller, Purpose.KEY_MANAGEMENT, "set-6"), "set-6") == ["kmc-6"]
    assert comps.held("set-6") == []
    assert keyservice.keys.show("kmc-6").state == KeyState.DESTROYED
    labels = [o.label for o in core_of(keyservice).hsm.objects()]
    assert "kmc-6" not in labels and SEAL_KEY_LABEL in labels
    assert keyservice.keys.check().consistent


def test_combination_needs_every_component(keyservice):
    keyservice.components.enter(OFFICER, "set-7", 1, KeyAlgorithm.AES, C1, aes_kcv(C1))
    with pytest.raises(InvalidInput):
        keyservice.components.combine(OFFICER, "set-7", NewKey("kmc-7", KeyAlgorithm.AES, 16, KeyUsage.KMC,
                                                                "issuer"), 2, generated=False)
