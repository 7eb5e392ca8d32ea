"""The leanest SCP03 set-up a process can make on a PKCS#11 token: the baseline every ratio is measured against.

Independent of the key service's code: its own ctypes declarations, its own session, every mechanism, parameter,
template and output buffer built once, and the loop body nothing but the PKCS#11 calls of one set-up (KDF3
diversification of ENC and MAC from a KMC, S-ENC/S-MAC/S-RMAC by CMAC emulation, card and host cryptograms,
the EXTERNAL AUTHENTICATE C-MAC, and the destruction of the five objects). The host-side inputs of the CMAC
emulation depend only on the card's answer, which the loop replays, so they are computed once too.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CK_ULONG = ctypes.c_ulong
CKM_AES_ECB: Final = 0x1081
CKM_AES_CMAC: Final = 0x108A
CKM_AES_ECB_ENCRYPT_DATA: Final = 0x1104
CKA_CLASS, CKA_TOKEN, CKA_KEY_TYPE, CKA_SENSITIVE = 0x0, 0x1, 0x100, 0x103
CKA_ENCRYPT, CKA_SIGN, CKA_DERIVE, CKA_EXTRACTABLE, CKA_VALUE_LEN = 0x104, 0x108, 0x10C, 0x162, 0x161
CKO_SECRET_KEY, CKK_AES = 0x4, 0x1F
CKF_SERIAL_SESSION, CKF_RW_SESSION = 0x4, 0x2


class Mech(ctypes.Structure):
    _fields_ = (("mechanism", CK_ULONG), ("parameter", ctypes.c_void_p), ("parameter_len", CK_ULONG))


class Attr(ctypes.Structure):
    _fields_ = (("type", CK_ULONG), ("value", ctypes.c_void_p), ("value_len", CK_ULONG))


class StringData(ctypes.Structure):
    _fields_ = (("data", ctypes.c_void_p), ("length", CK_ULONG))


def _double(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    if block[0] & 0x80:
        value ^= 0x87
    return (value & ((1 << 128) - 1)).to_bytes(16, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _ecb(key: bytes, data: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(data)  # noqa: S305 - CMAC subkeys


def setup_loop(module: str, slot: int, kmc: int, kmc_value: bytes, kdd: bytes, host: bytes,
               card: bytes) -> Callable[[], None]:
    """A function doing one SCP03 set-up with raw PKCS#11 calls on a session of its own.

    `kmc` is the handle of the KMC on the (already logged-in) token; `kmc_value` serves only to precompute the
    host-side CMAC inputs, which in production come from E(K, 0) and the card's answer.
    """
    lib = ctypes.CDLL(module)
    session = CK_ULONG()
    rv = lib.C_OpenSession(CK_ULONG(slot), CK_ULONG(CKF_SERIAL_SESSION | CKF_RW_SESSION), None, None,
                           ctypes.byref(session))
    if rv:
        raise RuntimeError(f"C_OpenSession: 0x{rv:X}")
    h = session.value
    for fn in (lib.C_DeriveKey, lib.C_EncryptInit, lib.C_Encrypt, lib.C_SignInit, lib.C_Sign, lib.C_DestroyObject):
        fn.restype = CK_ULONG
    lib.C_DeriveKey.argtypes = (CK_ULONG, ctypes.c_void_p, CK_ULONG, ctypes.c_void_p, CK_ULONG, ctypes.c_void_p)
    lib.C_EncryptInit.argtypes = lib.C_SignInit.argtypes = (CK_ULONG, ctypes.c_void_p, CK_ULONG)
    lib.C_Encrypt.argtypes = lib.C_Sign.argtypes = (CK_ULONG, ctypes.c_char_p, CK_ULONG, ctypes.c_void_p,
                                                    ctypes.c_void_p)
    lib.C_DestroyObject.argtypes = (CK_ULONG, CK_ULONG)
    derive, enc_init, encrypt = lib.C_DeriveKey, lib.C_EncryptInit, lib.C_Encrypt
    sign_init, sign, destroy = lib.C_SignInit, lib.C_Sign, lib.C_DestroyObject

    # the template of every derived key: a sensitive, non-extractable AES-128 session object
    values = [CK_ULONG(CKO_SECRET_KEY), ctypes.c_ubyte(0), CK_ULONG(CKK_AES), ctypes.c_ubyte(1), ctypes.c_ubyte(0),
              ctypes.c_ubyte(1), ctypes.c_ubyte(1), ctypes.c_ubyte(1), CK_ULONG(16)]
    types = [CKA_CLASS, CKA_TOKEN, CKA_KEY_TYPE, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ENCRYPT, CKA_SIGN, CKA_DERIVE,
             CKA_VALUE_LEN]
    template = (Attr * len(types))(*(Attr(t, ctypes.cast(ctypes.pointer(v), ctypes.c_void_p), ctypes.sizeof(v))
                                     for t, v in zip(types, values, strict=True)))

    # host-side inputs (SP 800-38B: one complete block xor K1 per derived key, Amd D §6.2.2 KDF messages)
    def kdf(constant: int, bits: int, context: bytes) -> bytes:
        return bytes(11) + bytes([constant]) + b"\x00" + bits.to_bytes(2, "big") + b"\x01" + context

    k1_kmc = _double(_ecb(kmc_value, bytes(16)))
    enc_key = _ecb(kmc_value, _xor(b"\x01\x00\x00\x00\x01\x00" + kdd, k1_kmc))
    mac_key = _ecb(kmc_value, _xor(b"\x01\x00\x00\x00\x02\x00" + kdd, k1_kmc))
    ctx = host + card
    inputs = []
    for key, constant in ((enc_key, 4), (mac_key, 6), (mac_key, 7)):
        msg = kdf(constant, 128, ctx)
        chain = _ecb(key, msg[:16])
        inputs.append(_xor(_xor(chain, msg[16:]), _double(_ecb(key, bytes(16)))))
    x_enc = _xor(b"\x01\x00\x00\x00\x01\x00" + kdd, k1_kmc)
    x_mac = _xor(b"\x01\x00\x00\x00\x02\x00" + kdd, k1_kmc)
    strings = [ctypes.create_string_buffer(x, 16) for x in (x_enc, x_mac, *inputs)]
    params = [StringData(ctypes.cast(s, ctypes.c_void_p), 16) for s in strings]
    derive_mechs = [Mech(CKM_AES_ECB_ENCRYPT_DATA, ctypes.cast(ctypes.pointer(p), ctypes.c_void_p),
                         ctypes.sizeof(p)) for p in params]
    ecb, cmac = Mech(CKM_AES_ECB, None, 0), Mech(CKM_AES_CMAC, None, 0)
    card_msg, host_msg = kdf(0, 64, ctx), kdf(1, 64, ctx)
    ext_auth = bytes(16) + bytes([0x84, 0x82, 0x03, 0x00, 0x10]) + bytes(8)  # chaining value || header || cryptogram
    messages = [(m, len(m)) for m in (card_msg, host_msg, ext_auth)]
    l_enc_in = bytes(16) + kdf(4, 128, ctx)[:16]
    l_mac_in = bytes(16) + kdf(6, 128, ctx)[:16] + kdf(7, 128, ctx)[:16]
    out = ctypes.create_string_buffer(64)
    out_len = CK_ULONG()
    objs = [CK_ULONG() for _ in range(5)]
    refs = [ctypes.byref(o) for o in objs]
    mech_refs = [ctypes.byref(m) for m in derive_mechs]
    ecb_ref, cmac_ref, out_len_ref = ctypes.byref(ecb), ctypes.byref(cmac), ctypes.byref(out_len)

    def one() -> None:
        derive(h, mech_refs[0], kmc, template, 9, refs[0])                     # ENC = KDF3(KMC)
        derive(h, mech_refs[1], kmc, template, 9, refs[1])                     # MAC = KDF3(KMC)
        enc, mac = objs[0].value, objs[1].value
        enc_init(h, ecb_ref, enc)                                              # L and first block, S-ENC
        out_len.value = 64
        encrypt(h, l_enc_in, 32, out, out_len_ref)
        enc_init(h, ecb_ref, mac)                                              # L and first blocks, S-MAC/RMAC
        out_len.value = 64
        encrypt(h, l_mac_in, 48, out, out_len_ref)
        derive(h, mech_refs[2], enc, template, 9, refs[2])                     # S-ENC
        derive(h, mech_refs[3], mac, template, 9, refs[3])                     # S-MAC
        derive(h, mech_refs[4], mac, template, 9, refs[4])                     # S-RMAC
        s_mac = objs[3].value
        for message, length in messages:                                       # card, host cryptogram, C-MAC
            sign_init(h, cmac_ref, s_mac)
            out_len.value = 64
            sign(h, message, length, out, out_len_ref)
        for obj in objs:
            destroy(h, obj.value)

    return one
