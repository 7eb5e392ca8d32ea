"""The lean PKCS#11 call path (ctypes) for the hot operations.

python-pkcs11 owns the library, the login and object management; its per-object wrapping costs about
90 µs per derived key on SoftHSM2 (PLATFORM.md), so encrypt, sign, derive, copy and destroy go through the
module's exported `C_*` functions directly, on the session handle python-pkcs11 opened (PKCS#11 v2.40 §5).
Callers hold `Hsm.lock`: one thread at a time per process.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping
from typing import Final

from pkcs11.constants import Attribute
from pkcs11.mechanisms import Mechanism

from keyservice import ckr

CK_ULONG = ctypes.c_ulong
CK_BBOOL = ctypes.c_ubyte

AttrValue = bool | int | bytes | str
Template = Mapping[Attribute, AttrValue]


class CkMechanism(ctypes.Structure):
    """CK_MECHANISM (PKCS#11 v2.40 §3.6)."""

    _fields_ = (("mechanism", CK_ULONG), ("parameter", ctypes.c_void_p), ("parameter_len", CK_ULONG))


class CkAttribute(ctypes.Structure):
    """CK_ATTRIBUTE (PKCS#11 v2.40 §3.4)."""

    _fields_ = (("type", CK_ULONG), ("value", ctypes.c_void_p), ("value_len", CK_ULONG))


class CkKeyDerivationStringData(ctypes.Structure):
    """CK_KEY_DERIVATION_STRING_DATA, the parameter of DES3_ECB_ENCRYPT_DATA (Mechanisms §2.x)."""

    _fields_ = (("data", ctypes.c_void_p), ("length", CK_ULONG))


class CkDesCbcEncryptDataParams(ctypes.Structure):
    """CK_DES_CBC_ENCRYPT_DATA_PARAMS (iv[8], data, length)."""

    _fields_ = (("iv", ctypes.c_ubyte * 8), ("data", ctypes.c_void_p), ("length", CK_ULONG))


class CkAesCbcEncryptDataParams(ctypes.Structure):
    """CK_AES_CBC_ENCRYPT_DATA_PARAMS (iv[16], data, length)."""

    _fields_ = (("iv", ctypes.c_ubyte * 16), ("data", ctypes.c_void_p), ("length", CK_ULONG))


class CkGcmParams(ctypes.Structure):
    """CK_GCM_PARAMS (PKCS#11 v2.40 §2.12.3, with ulIvBits as SoftHSM2 2.6.1 reads it: checked by the CAVP KAT)."""

    _fields_ = (("iv", ctypes.c_void_p), ("iv_len", CK_ULONG), ("iv_bits", CK_ULONG), ("aad", ctypes.c_void_p),
                ("aad_len", CK_ULONG), ("tag_bits", CK_ULONG))


CKR_ATTRIBUTE_TYPE_INVALID: Final = 0x12
AEAD_REFUSED: Final = frozenset({0x05, 0x35, 0x40, 0x41})
"""What C_Decrypt answers for an AES-GCM input whose tag does not verify: CKR_GENERAL_ERROR (SoftHSM2 2.6.1,
measured), CKR_AEAD_DECRYPT_FAILED (PKCS#11 v3.0), CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE."""


def check(rv: int, what: str) -> None:
    """Raise the mapped error (named, with its explanation: `keyservice.ckr`) for a non-zero CK_RV."""
    if rv:
        raise ckr.error(rv, what)


def pack_template(template: Template) -> tuple[ctypes.Array[CkAttribute], list[object]]:
    """A CK_ATTRIBUTE array for `template`, and the buffers it points into (keep them alive).

    Packing costs more than the PKCS#11 call it serves (≈ 40 µs against ≈ 20 µs for a derive on SoftHSM2), so
    the arrays of the last templates are kept (`_packed`): PKCS#11 only reads a template.
    """
    return _packed(tuple(template.items()))


@functools.lru_cache(maxsize=64)
def _packed(items: tuple[tuple[Attribute, AttrValue], ...]) -> tuple[ctypes.Array[CkAttribute], list[object]]:
    attrs = (CkAttribute * len(items))()
    keep: list[object] = []
    for i, (attr, value) in enumerate(items):
        buf: ctypes.Array[ctypes.c_char] | CK_ULONG | CK_BBOOL
        if isinstance(value, bool):
            buf = CK_BBOOL(1 if value else 0)
        elif isinstance(value, int):
            buf = CK_ULONG(value)
        else:
            raw = value.encode() if isinstance(value, str) else value
            buf = ctypes.create_string_buffer(raw, len(raw))
        keep.append(buf)
        attrs[i].type = int(attr)
        attrs[i].value = ctypes.cast(ctypes.pointer(buf), ctypes.c_void_p)
        attrs[i].value_len = ctypes.sizeof(buf)
    return attrs, keep


class RawSession:
    """Direct `C_*` calls on one open, logged-in session handle."""

    def __init__(self, module_path: str, session_handle: int) -> None:
        self._lib = ctypes.CDLL(module_path)
        self._h = CK_ULONG(session_handle)
        self._mech = CkMechanism()
        self._out = ctypes.create_string_buffer(8192)
        self._out_len = CK_ULONG()
        self._obj = CK_ULONG()
        self._param: object | None = None
        lib = self._lib
        self._encrypt_init, self._encrypt = lib.C_EncryptInit, lib.C_Encrypt
        self._decrypt_init, self._decrypt = lib.C_DecryptInit, lib.C_Decrypt
        self._sign_init, self._sign = lib.C_SignInit, lib.C_Sign
        self._derive = lib.C_DeriveKey
        self._destroy = lib.C_DestroyObject
        self._copy = lib.C_CopyObject
        self._wrap, self._unwrap = lib.C_WrapKey, lib.C_UnwrapKey
        self._generate, self._create = lib.C_GenerateKey, lib.C_CreateObject
        self._generate_pair = lib.C_GenerateKeyPair
        self._get_attr = lib.C_GetAttributeValue

    def _set_mech(self, mechanism: Mechanism, param: ctypes.Structure | ctypes.Array[ctypes.c_char] | None) -> None:
        self._mech.mechanism = int(mechanism)
        self._param = param  # the mechanism points into it until the call returns
        if param is None:
            self._mech.parameter = None
            self._mech.parameter_len = 0
        else:
            self._mech.parameter = ctypes.cast(ctypes.pointer(param), ctypes.c_void_p)
            self._mech.parameter_len = ctypes.sizeof(param)

    @staticmethod
    def _param_for(iv: bytes | None) -> ctypes.Array[ctypes.c_char] | None:
        return None if iv is None else ctypes.create_string_buffer(iv, len(iv))

    def encrypt(self, key: int, mechanism: Mechanism, data: bytes, iv: bytes | None = None) -> bytes:
        """C_EncryptInit + C_Encrypt (single part)."""
        self._set_mech(mechanism, self._param_for(iv))
        check(self._encrypt_init(self._h, ctypes.byref(self._mech), CK_ULONG(key)), "C_EncryptInit")
        self._out_len.value = len(self._out)
        check(self._encrypt(self._h, data, CK_ULONG(len(data)), self._out, ctypes.byref(self._out_len)),
              "C_Encrypt")
        return ctypes.string_at(self._out, self._out_len.value)

    def decrypt(self, key: int, mechanism: Mechanism, data: bytes, iv: bytes | None = None) -> bytes:
        """C_DecryptInit + C_Decrypt (single part)."""
        self._set_mech(mechanism, self._param_for(iv))
        check(self._decrypt_init(self._h, ctypes.byref(self._mech), CK_ULONG(key)), "C_DecryptInit")
        self._out_len.value = len(self._out)
        check(self._decrypt(self._h, data, CK_ULONG(len(data)), self._out, ctypes.byref(self._out_len)),
              "C_Decrypt")
        return ctypes.string_at(self._out, self._out_len.value)

    def _gcm(self, nonce: bytes, aad: bytes, tag_bits: int) -> list[object]:
        """Point the mechanism at CK_GCM_PARAMS for AES_GCM; returns the buffers to keep alive during the call."""
        iv, extra = ctypes.create_string_buffer(nonce, len(nonce)), ctypes.create_string_buffer(aad, len(aad))
        self._set_mech(Mechanism.AES_GCM, CkGcmParams(ctypes.cast(iv, ctypes.c_void_p), len(nonce), 8 * len(nonce),
                                                     ctypes.cast(extra, ctypes.c_void_p), len(aad), tag_bits))
        return [iv, extra]

    def encrypt_gcm(self, key: int, nonce: bytes, aad: bytes, data: bytes, tag_bits: int) -> bytes:
        """AES-GCM encryption (SP 800-38D): ciphertext ‖ tag."""
        _keep = self._gcm(nonce, aad, tag_bits)
        check(self._encrypt_init(self._h, ctypes.byref(self._mech), CK_ULONG(key)), "C_EncryptInit")
        self._out_len.value = len(self._out)
        check(self._encrypt(self._h, data, CK_ULONG(len(data)), self._out, ctypes.byref(self._out_len)),
              "C_Encrypt")
        return ctypes.string_at(self._out, self._out_len.value)

    def decrypt_gcm(self, key: int, nonce: bytes, aad: bytes, data: bytes, tag_bits: int) -> bytes | None:
        """AES-GCM decryption of ciphertext ‖ tag; None when the tag does not verify (`AEAD_REFUSED`: nothing of
        the plaintext is released). The output buffer is cleared after the plaintext is copied out."""
        _keep = self._gcm(nonce, aad, tag_bits)
        check(self._decrypt_init(self._h, ctypes.byref(self._mech), CK_ULONG(key)), "C_DecryptInit")
        self._out_len.value = len(self._out)
        rv = self._decrypt(self._h, data, CK_ULONG(len(data)), self._out, ctypes.byref(self._out_len))
        if rv in AEAD_REFUSED:
            return None
        check(rv, "C_Decrypt")
        plain = ctypes.string_at(self._out, self._out_len.value)
        ctypes.memset(self._out, 0, self._out_len.value)
        return plain

    def sign(self, key: int, mechanism: Mechanism, data: bytes) -> bytes:
        """C_SignInit + C_Sign: CMAC, HMAC, RSA PKCS#1 v1.5 with a hash (single part)."""
        self._set_mech(mechanism, None)
        check(self._sign_init(self._h, ctypes.byref(self._mech), CK_ULONG(key)), "C_SignInit")
        self._out_len.value = len(self._out)
        check(self._sign(self._h, data, CK_ULONG(len(data)), self._out, ctypes.byref(self._out_len)), "C_Sign")
        return ctypes.string_at(self._out, self._out_len.value)

    def derive_encrypt_data(self, base: int, mechanism: Mechanism, data: bytes, iv: bytes | None,
                            template: Template) -> int:
        """C_DeriveKey with a *_ENCRYPT_DATA mechanism: the new key's value is E(base, data).

        ECB variants take CK_KEY_DERIVATION_STRING_DATA, CBC variants CK_{DES,AES}_CBC_ENCRYPT_DATA_PARAMS.
        """
        buf = ctypes.create_string_buffer(data, len(data))
        param: ctypes.Structure
        if iv is None:
            param = CkKeyDerivationStringData(ctypes.cast(buf, ctypes.c_void_p), len(data))
        elif len(iv) == 8:
            param = CkDesCbcEncryptDataParams((ctypes.c_ubyte * 8)(*iv), ctypes.cast(buf, ctypes.c_void_p),
                                              len(data))
        else:
            param = CkAesCbcEncryptDataParams((ctypes.c_ubyte * 16)(*iv), ctypes.cast(buf, ctypes.c_void_p),
                                              len(data))
        self._set_mech(mechanism, param)
        attrs, _keep = pack_template(template)
        check(self._derive(self._h, ctypes.byref(self._mech), CK_ULONG(base), attrs, CK_ULONG(len(template)),
                           ctypes.byref(self._obj)), "C_DeriveKey")
        return int(self._obj.value)

    def _get(self, obj: int, attribute: Attribute, value: CK_ULONG | CK_BBOOL) -> bool:
        """Read one fixed-size attribute into `value`; False when the object has no such attribute."""
        attr = CkAttribute(int(attribute), ctypes.cast(ctypes.pointer(value), ctypes.c_void_p), ctypes.sizeof(value))
        rv = self._get_attr(self._h, CK_ULONG(obj), ctypes.byref(attr), CK_ULONG(1))
        if rv == CKR_ATTRIBUTE_TYPE_INVALID:
            return False
        check(rv, "C_GetAttributeValue")
        return True

    def get_ulong(self, obj: int, attribute: Attribute) -> int | None:
        """A CK_ULONG attribute of an object (None when the object has no such attribute)."""
        value = CK_ULONG()
        return int(value.value) if self._get(obj, attribute, value) else None

    def get_bool(self, obj: int, attribute: Attribute) -> bool | None:
        """A CK_BBOOL attribute of an object (None when the object has no such attribute)."""
        value = CK_BBOOL()
        return bool(value.value) if self._get(obj, attribute, value) else None

    def get_bytes(self, obj: int, attribute: Attribute) -> bytes | None:
        """A variable-length attribute (CKA_MODULUS, CKA_PUBLIC_EXPONENT); None when the object has no such
        attribute. A sensitive one is refused by the token (CKR_ATTRIBUTE_SENSITIVE: HsmOperationRefused)."""
        attr = CkAttribute(int(attribute), None, 0)
        rv = self._get_attr(self._h, CK_ULONG(obj), ctypes.byref(attr), CK_ULONG(1))
        if rv == CKR_ATTRIBUTE_TYPE_INVALID:
            return None
        check(rv, "C_GetAttributeValue")
        buf = ctypes.create_string_buffer(int(attr.value_len))
        attr.value = ctypes.cast(buf, ctypes.c_void_p)
        check(self._get_attr(self._h, CK_ULONG(obj), ctypes.byref(attr), CK_ULONG(1)), "C_GetAttributeValue")
        return buf.raw[: int(attr.value_len)]

    def generate_pair(self, mechanism: Mechanism, public: Template, private: Template) -> tuple[int, int]:
        """C_GenerateKeyPair: (public key handle, private key handle)."""
        self._set_mech(mechanism, None)
        pub_attrs, _keep_pub = pack_template(public)
        priv_attrs, _keep_priv = pack_template(private)
        pub, priv = CK_ULONG(), CK_ULONG()
        check(self._generate_pair(self._h, ctypes.byref(self._mech), pub_attrs, CK_ULONG(len(public)), priv_attrs,
                                  CK_ULONG(len(private)), ctypes.byref(pub), ctypes.byref(priv)),
              "C_GenerateKeyPair")
        return int(pub.value), int(priv.value)

    def generate(self, mechanism: Mechanism, template: Template) -> int:
        """C_GenerateKey (secret keys)."""
        self._set_mech(mechanism, None)
        attrs, _keep = pack_template(template)
        check(self._generate(self._h, ctypes.byref(self._mech), attrs, CK_ULONG(len(template)),
                             ctypes.byref(self._obj)), "C_GenerateKey")
        return int(self._obj.value)

    def create(self, template: Template) -> int:
        """C_CreateObject."""
        attrs, _keep = pack_template(template)
        check(self._create(self._h, attrs, CK_ULONG(len(template)), ctypes.byref(self._obj)), "C_CreateObject")
        return int(self._obj.value)

    def copy(self, obj: int, template: Template) -> int:
        """C_CopyObject (e.g. a token key into a session object)."""
        attrs, _keep = pack_template(template)
        check(self._copy(self._h, CK_ULONG(obj), attrs, CK_ULONG(len(template)), ctypes.byref(self._obj)),
              "C_CopyObject")
        return int(self._obj.value)

    def destroy(self, obj: int) -> None:
        """C_DestroyObject."""
        check(self._destroy(self._h, CK_ULONG(obj)), "C_DestroyObject")

    def wrap(self, wrapping_key: int, mechanism: Mechanism, key: int, iv: bytes | None = None) -> bytes:
        """C_WrapKey (AES_KEY_WRAP, AES_KEY_WRAP_PAD, AES_CBC)."""
        self._set_mech(mechanism, self._param_for(iv))
        self._out_len.value = len(self._out)
        check(self._wrap(self._h, ctypes.byref(self._mech), CK_ULONG(wrapping_key), CK_ULONG(key), self._out,
                         ctypes.byref(self._out_len)), "C_WrapKey")
        return ctypes.string_at(self._out, self._out_len.value)

    def unwrap(self, unwrapping_key: int, mechanism: Mechanism, wrapped: bytes, template: Template,
               iv: bytes | None = None) -> int:
        """C_UnwrapKey into a new object described by `template`."""
        self._set_mech(mechanism, self._param_for(iv))
        attrs, _keep = pack_template(template)
        check(self._unwrap(self._h, ctypes.byref(self._mech), CK_ULONG(unwrapping_key), wrapped,
                           CK_ULONG(len(wrapped)), attrs, CK_ULONG(len(template)), ctypes.byref(self._obj)),
              "C_UnwrapKey")
        return int(self._obj.value)
