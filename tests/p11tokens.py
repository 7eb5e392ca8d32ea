"""Test support: create SoftHSM2 tokens inside the test process.

SoftHSM2 reads its token directory once, at C_Initialize; a token created afterwards by softhsm2-util in
another process stays invisible to this process. So tests create tokens in-process on SoftHSM's free slot
(C_InitToken, then C_InitPIN as SO), through the library python-pkcs11 has already initialised.
"""

from __future__ import annotations

import ctypes

import pkcs11

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
CKU_SO = 0
CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKF_TOKEN_INITIALIZED = 0x400


class CkTokenInfo(ctypes.Structure):
    _fields_ = (("label", ctypes.c_char * 32), ("manufacturer", ctypes.c_char * 32), ("model", ctypes.c_char * 16),
                ("serial", ctypes.c_char * 16), ("flags", ctypes.c_ulong), ("rest", ctypes.c_ubyte * 256))


def _ok(rv: int, what: str) -> None:
    if rv:
        raise RuntimeError(f"{what} failed: CKR 0x{rv:X}")


def create_token(label: str, so_pin: str, user_pin: str) -> None:
    """Initialise a new token labelled `label` on SoftHSM's free slot."""
    pkcs11.lib(MODULE)  # C_Initialize through python-pkcs11 (idempotent)
    lib = ctypes.CDLL(MODULE)
    count = ctypes.c_ulong()
    _ok(lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList")
    slots = (ctypes.c_ulong * count.value)()
    _ok(lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
    info = CkTokenInfo()
    for slot in slots:
        _ok(lib.C_GetTokenInfo(ctypes.c_ulong(slot), ctypes.byref(info)), "C_GetTokenInfo")
        if not info.flags & CKF_TOKEN_INITIALIZED:
            break
    else:
        raise RuntimeError("SoftHSM offers no free slot")
    so = so_pin.encode()
    _ok(lib.C_InitToken(ctypes.c_ulong(slot), so, ctypes.c_ulong(len(so)), label.encode().ljust(32)), "C_InitToken")
    session = ctypes.c_ulong()
    _ok(lib.C_OpenSession(ctypes.c_ulong(slot), ctypes.c_ulong(CKF_RW_SESSION | CKF_SERIAL_SESSION), None, None,
                          ctypes.byref(session)), "C_OpenSession")
    _ok(lib.C_Login(session, ctypes.c_ulong(CKU_SO), so, ctypes.c_ulong(len(so))), "C_Login")
    user = user_pin.encode()
    _ok(lib.C_InitPIN(session, user, ctypes.c_ulong(len(user))), "C_InitPIN")
    _ok(lib.C_Logout(session), "C_Logout")
    _ok(lib.C_CloseSession(session), "C_CloseSession")
