"""Bootstrap of the embedded default HSM: a private SoftHSM2 configuration and token under `$TSM_HOME`.

The token's SO and user PINs are generated here and kept in a JSON file readable only by its owner (0600),
in a directory only its owner can enter (0700); wider modes are refused (storage.permissions).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import pkcs11

from storage.permissions import PRIVATE_FILE, make_private_dir, refuse_if_shared

# PKCS#11 v2.40 constants of the token initialisation (§5.4, §5.6).
CKU_SO: Final = 0
CKF_RW_SESSION: Final = 0x2
CKF_SERIAL_SESSION: Final = 0x4
CKF_TOKEN_INITIALIZED: Final = 0x400
TOKEN_LABEL_LENGTH: Final = 32
PIN_DIR: Final = "directory of the PIN file"
MAX_PIN_FILE: Final = 4096
_PIN_FIELDS: Final = ("so_pin", "user_pin")


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
    """Write the private softhsm2.conf pointing at `tokendir` (idempotent; missing directories made 0700)."""
    make_private_dir(tokendir)
    make_private_dir(conf.parent)
    template = resources.files("softhsm").joinpath("softhsm2.conf.in").read_text()
    conf.write_text(template.format(tokendir=tokendir))


def generate_pins() -> TokenPins:
    """Fresh random PINs (128 bits each)."""
    return TokenPins(so_pin=secrets.token_hex(16), user_pin=secrets.token_hex(16))


def save_pins(path: Path, pins: TokenPins) -> None:
    """Write the PIN file with mode 0600 (created that way, never widened) in a 0700 directory."""
    make_private_dir(path.parent)
    refuse_if_shared(path.parent, PIN_DIR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), PRIVATE_FILE)
        json.dump({"so_pin": pins.so_pin, "user_pin": pins.user_pin}, fh)


def load_pins(path: Path) -> TokenPins:
    """Read the PIN file; refuse one, or a directory holding it, that others can use.

    The mode is checked on the file actually opened (fstat), not on the name.
    """
    try:
        refuse_if_shared(path.parent, PIN_DIR)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the process
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BootstrapError(f"PIN file {path} is not a regular file")
            refuse_if_shared(path, "PIN file", st)
            raw = fh.read(MAX_PIN_FILE)
    except (FileNotFoundError, NotADirectoryError):
        raise BootstrapError(f"PIN file {path} does not exist: run `tsm init`") from None
    except OSError as exc:
        raise BootstrapError(f"PIN file {path} cannot be read ({exc.strerror})") from None
    try:
        data = json.loads(raw)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        data = None
    if not (isinstance(data, dict) and all(isinstance(data.get(k), str) and data[k] for k in _PIN_FIELDS)):
        raise BootstrapError(f"PIN file {path} is not a valid PIN file: it must be a JSON object with the "
                             f"non-empty strings so_pin and user_pin, as `tsm init` writes it")
    return TokenPins(so_pin=data["so_pin"], user_pin=data["user_pin"])


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
