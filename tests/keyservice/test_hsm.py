"""The PKCS#11 session owner and the attribute templates, on real SoftHSM2 tokens."""

from __future__ import annotations

import pytest
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import KeyType, Mechanism

from globalplatform.keys import KeyAlgorithm
from keyservice import templates
from keyservice.errors import HsmError, HsmLoginFailed, HsmOperationRefused, HsmUnavailable, KeyExists, KeyNotFound
from keyservice.hsm import Hsm
from keyservice.inventory import CAPABILITIES, KeyUsage
from tests.conftest import MODULE, new_token

GP_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")


@pytest.fixture(scope="module")
def hsm():
    token = new_token("hsm")
    return Hsm(MODULE, token.label, token.pins.user_pin)


def test_master_key_template_is_locked_down():
    t = templates.master_key("l", b"\x01", KeyType.AES, CAPABILITIES[KeyUsage.TOKEN_KEY])
    assert t[Attribute.TOKEN] and t[Attribute.PRIVATE] and t[Attribute.SENSITIVE]
    assert t[Attribute.EXTRACTABLE] is False
    assert t[Attribute.SIGN] and not t[Attribute.WRAP] and not t[Attribute.UNWRAP] and not t[Attribute.DERIVE]
    s = templates.session_key(KeyType.AES, 16)
    assert s[Attribute.TOKEN] is False and s[Attribute.SENSITIVE] and s[Attribute.EXTRACTABLE] is False
    assert Attribute.VALUE_LEN not in templates.session_key(KeyType.DES2)
    assert templates.data_object("x", "tsm")[Attribute.CLASS] == ObjectClass.DATA


def test_rsa_key_pair_template_signs_only_and_keeps_the_private_key_in():
    public, private = templates.rsa_key_pair("t", b"\x01", 2048)
    assert private[Attribute.CLASS] == ObjectClass.PRIVATE_KEY and private[Attribute.TOKEN]
    assert private[Attribute.SENSITIVE] and private[Attribute.EXTRACTABLE] is False and private[Attribute.PRIVATE]
    assert private[Attribute.SIGN] and not any(private[a] for a in (Attribute.DECRYPT, Attribute.UNWRAP,
                                                                     Attribute.DERIVE, Attribute.SIGN_RECOVER))
    assert public[Attribute.CLASS] == ObjectClass.PUBLIC_KEY and public[Attribute.VERIFY]
    assert public[Attribute.MODULUS_BITS] == 2048 and public[Attribute.PUBLIC_EXPONENT] == b"\x01\x00\x01"
    assert not any(public[a] for a in (Attribute.ENCRYPT, Attribute.WRAP, Attribute.DERIVE))


def test_a_key_pair_is_generated_found_and_destroyed_as_one_key(hsm):
    from keyservice.errors import InvalidInput

    public = hsm.generate_pair("pair", b"\x05", 1024)
    assert hsm.handle("pair", ObjectClass.PUBLIC_KEY) == public
    assert hsm.key_length(public) == hsm.key_length(hsm.handle("pair", ObjectClass.PRIVATE_KEY)) == 1024
    with pytest.raises(KeyNotFound):
        hsm.handle("pair")  # not a secret key
    with pytest.raises(KeyExists):
        hsm.generate_pair("pair", b"\x06", 1024)
    with pytest.raises(KeyExists):
        hsm.create("pair", b"\x06", KeyType.AES, GP_KEY, templates.ALL_CAPABILITIES)
    assert sorted(o.object_class for o in hsm.objects() if o.label == "pair") == ["private_key", "public_key"]
    hsm.destroy("pair")
    assert not [o for o in hsm.objects() if o.label == "pair"]
    with pytest.raises(InvalidInput):
        templates.key_type(KeyAlgorithm.RSA, 2048)


def test_unknown_token_and_wrong_pin_are_typed():
    with pytest.raises(HsmUnavailable):
        Hsm(MODULE, "no-such-token", "whatever1")
    token = new_token("pin")
    with pytest.raises(HsmLoginFailed):
        Hsm(MODULE, token.label, "wrong-pin-1")


def test_usage_flags_are_enforced_by_the_token(hsm):
    handle = hsm.create("mac-only", b"\x02", KeyType.AES, GP_KEY, CAPABILITIES[KeyUsage.AUDIT_KEY])
    with pytest.raises(HsmOperationRefused), hsm.lock:
        hsm.raw.decrypt(handle, Mechanism.AES_ECB, bytes(16))
    with pytest.raises(KeyExists):
        hsm.create("mac-only", b"\x03", KeyType.AES, GP_KEY, CAPABILITIES[KeyUsage.AUDIT_KEY])


def test_handles_are_cached_and_forgotten(hsm):
    hsm.create("cached", b"\x04", KeyType.AES, GP_KEY, templates.ALL_CAPABILITIES)
    first = hsm.hot_handle("cached")
    assert hsm.hot_handle("cached") == first
    hsm.destroy("cached")
    with pytest.raises(KeyNotFound):
        hsm.handle("cached")


def test_anchor_roundtrip(hsm):
    assert hsm.anchor("tests.anchor") is None
    with pytest.raises(HsmError, match="tsm init"):  # only made once, by `tsm init`
        hsm.set_anchor("tests.anchor", "1:ab")
    assert hsm.make_anchor("tests.anchor", "1:ab") and not hsm.make_anchor("tests.anchor", "0:00")
    hsm.set_anchor("tests.anchor", "2:cd")
    assert hsm.anchor("tests.anchor") == "2:cd"
