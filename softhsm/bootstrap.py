"""Bootstrap of the embedded default HSM: a private SoftHSM2 configuration and token under `$TSM_HOME`.

The token's SO and user PINs are generated here and kept in a JSON file readable only by its owner (0600).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import pkcs11

# PKCS#11 v2.40 constants of the token initialisation (§5.4, §5.6).
CKU_SO: Final = 0
CKF_RW_SESSION: Final = 0x2
CKF_SERIAL_SESSION: Final = 0x4
CKF_TOKEN_INITIALIZED: Final = 0x400
TOKEN_LABEL_LENGTH: Final = 32


class BootstrapError(Exception):
    """The embedded token could not be created (module not loadable, no free slot, unwritable directory)."""

    code = "bootstrap_error"


@dataclass(frozen=True)
class TokenPins:
    """The PINs of the embedded token. Never logged, never printed."""

    so_pin: str
    user_pin: str

    def __repr__(self) -> str:
        return "TokenPins(<redacted>)"


def write_conf(conf: Path, tokendir: Path) -> None:
    """Write the private softhsm2.conf pointing at `tokendir` (idempotent)."""
    tokendir.mkdir(parents=True, exist_ok=True, mode=0o700)
    template = resources.files("softhsm").joinpath("softhsm2.conf.in").read_text()
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(template.format(tokendir=tokendir))


def generate_pins() -> TokenPins:
    """Fresh random PINs (128 bits each)."""
    return TokenPins(so_pin=secrets.token_hex(16), user_pin=secrets.token_hex(16))


def save_pins(path: Path, pins: TokenPins) -> None:
    """Write the PIN file with mode 0600 (created that way, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"so_pin": pins.so_pin, "user_pin": pins.user_pin}, fh)
    os.chmod(path, 0o600)


def load_pins(path: Path) -> TokenPins:
    """Read the PIN file; refuse one that others can read."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise BootstrapError(f"PIN file {path} must be readable by its owner only (mode is {mode:o})")
        data = json.loads(path.read_text())
        return TokenPins(so_pin=str(data["so_pin"]), user_pin=str(data["user_pin"]))
    except FileNotFoundError:
        raise BootstrapError(f"PIN file {path} does not exist: run `tsm init`") from None
    except (KeyError, ValueError):
        raise BootstrapError(f"PIN file {path} is not a valid PIN file") from None


class CkTokenInfo(ctypes.Structure):
    """CK_TOKEN_INFO up to its flags (PKCS#11 v2.40 §3.2); the rest is read into padding."""

    _fields_ = (("label", ctypes.c_char * 32), ("manufacturer", ctypes.c_char * 32), ("model", ctypes.c_char * 16),
                ("serial", ctypes.c_char * 16), ("flags", ctypes.c_ulong), ("rest", ctypes.c_ubyte * 256))


def token_exists(module: str, label: str) -> bool:
    """Whether the module offers an initialised token with `label` (loads the module: set SOFTHSM2_CONF first)."""
    try:
        return bool(list(pkcs11.lib(module).get_tokens(token_label=label)))
    except RuntimeError as exc:  # python-pkcs11 raises it when the module cannot be loaded
        raise BootstrapError(f"cannot load the PKCS#11 module {module}: {exc}") from None


def init_token(module: str, label: str, pins: TokenPins) -> None:
    """Initialise a token on SoftHSM2's free slot inside this process (C_InitToken, then C_InitPIN as SO).

    In-process rather than `softhsm2-util`: the PINs never appear on a command line, and a process that has
    already loaded the library sees the new token (SoftHSM2 reads its token directory once, at C_Initialize).
    """
    pkcs11.lib(module)  # C_Initialize through python-pkcs11 (idempotent)
    lib = ctypes.CDLL(module)
    count = ctypes.c_ulong()
    _ok(lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList")
    slots = (ctypes.c_ulong * count.value)()
    _ok(lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
    info = CkTokenInfo()
    free = None
    for slot in slots:
        _ok(lib.C_GetTokenInfo(ctypes.c_ulong(slot), ctypes.byref(info)), "C_GetTokenInfo")
        if not info.flags & CKF_TOKEN_INITIALIZED:
            free = slot
            break
    if free is None:
        raise BootstrapError("the PKCS#11 module offers no free slot for a new token")
    so, user = pins.so_pin.encode(), pins.user_pin.encode()
    _ok(lib.C_InitToken(ctypes.c_ulong(free), so, ctypes.c_ulong(len(so)), label.encode().ljust(TOKEN_LABEL_LENGTH)),
        "C_InitToken")
    session = ctypes.c_ulong()
    _ok(lib.C_OpenSession(ctypes.c_ulong(free), ctypes.c_ulong(CKF_RW_SESSION | CKF_SERIAL_SESSION), None, None,
                          ctypes.byref(session)), "C_OpenSession")
    try:
        _ok(lib.C_Login(session, ctypes.c_ulong(CKU_SO), so, ctypes.c_ulong(len(so))), "C_Login")
        _ok(lib.C_InitPIN(session, user, ctypes.c_ulong(len(user))), "C_InitPIN")
        _ok(lib.C_Logout(session), "C_Logout")
    finally:
        lib.C_CloseSession(session)


def _ok(rv: int, what: str) -> None:
    if rv:
        raise BootstrapError(f"{what} failed (CKR 0x{rv:X})")
