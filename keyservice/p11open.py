"""Loading the PKCS#11 module and opening a logged-in session on a token, with retries that really start over.

python-pkcs11 0.10.1 keeps one `lib` per module path and process (`pkcs11.lib()` caches it and calls
C_Initialize only while it is not initialised), and SoftHSM2 reads its token directory once, at C_Initialize.
When another process rewrites the token file at that instant (a login or a key generation), the token is
missing from this process's slot list (`NoSuchToken`) or a call fails with CKR_GENERAL_ERROR, and a plain retry
sees the same stale view. So a retry first calls C_Finalize (`lib.finalize()`, PKCS#11 v2.40 §5.4) and the
next `pkcs11.lib()` initialises the module again. C_Finalize closes every session of the process: it is skipped
while this process holds another open session (each `open_session` holder, until its `release`).
python-pkcs11 initialises without locking (PLATFORM.md), so opening and re-initialising run under one
process-wide lock.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any, Final

import pkcs11
import pkcs11.exceptions as p11e
from pkcs11.constants import TokenFlag

from keyservice import ckr
from keyservice.errors import HsmBusy, HsmError, HsmModuleNotLoadable, HsmUnavailable

log = logging.getLogger(__name__)

MODULE_SETTING: Final = "set TSM_PKCS11_MODULE (pkcs11_module in tsm.toml) to the HSM vendor's PKCS#11 library"
LABEL_SETTING: Final = "set TSM_TOKEN_LABEL (token_label in tsm.toml), or run `tsm init` for the embedded token"
_SHOWN_LABELS: Final = 5
OPEN_ATTEMPTS: Final = 6
FIRST_PAUSE: Final = 0.05  # seconds

# Failures another process can cause for a moment (SoftHSM2 reading a token file that is being rewritten may
# also see its flags without CKF_USER_PIN_INITIALIZED); anything else is reported at once, a wrong PIN above
# all: each wrong attempt counts towards the token's lock-out.
_TRANSIENT: Final = (p11e.NoSuchToken, p11e.GeneralError, p11e.TokenNotPresent, p11e.TokenNotRecognised,
                     p11e.DeviceError, p11e.DeviceRemoved, p11e.SessionCount, p11e.SessionReadWriteSOExists,
                     p11e.UserPinNotInitialized)
CKR_USER_PIN_NOT_INITIALIZED: Final = ckr.BY_NAME["CKR_USER_PIN_NOT_INITIALIZED"]

_lock = threading.Lock()
_holders: dict[int, weakref.WeakSet[object]] = {}  # pid -> objects holding an open session on a module


def _pauses() -> Iterator[float]:
    """The pause before each retry: 50 ms doubling, each drawn between half and all of that (workers that
    started together drift apart); 0.8-1.6 s over the OPEN_ATTEMPTS."""
    rng = secrets.SystemRandom()
    for n in range(OPEN_ATTEMPTS - 1):
        ceiling = FIRST_PAUSE * 2**n
        yield rng.uniform(ceiling / 2, ceiling)


def check_module(module: str) -> None:
    """Refuse, naming the path and the setting, a module file that is missing or not a PKCS#11 library."""
    if not os.path.isfile(module):
        raise HsmModuleNotLoadable(f"the PKCS#11 module {module} does not exist: {MODULE_SETTING}")
    try:
        library = ctypes.CDLL(module)
    except OSError as exc:
        reason = str(exc).removeprefix(f"{module}: ")
        raise HsmModuleNotLoadable(f"the PKCS#11 module {module} cannot be loaded ({reason}): {MODULE_SETTING}") \
            from None
    if not hasattr(library, "C_GetFunctionList"):
        raise HsmModuleNotLoadable(f"{module} is not a PKCS#11 module (no C_GetFunctionList): {MODULE_SETTING}")


def release(holder: object) -> None:
    """`holder` (given to `open_session`) closed its session: the module may be re-initialised again."""
    with _lock:
        _holders.get(os.getpid(), weakref.WeakSet()).discard(holder)


def _sessions_held() -> bool:
    return bool(_holders.get(os.getpid()))


def _finalize(lib: Any) -> bool:
    """C_Finalize, so that the next `pkcs11.lib()` calls C_Initialize; False while sessions are held."""
    if lib is None or _sessions_held():
        return False
    try:
        lib.finalize()
    except p11e.PKCS11Error as exc:  # e.g. not initialised: python-pkcs11 has marked it uninitialised anyway
        log.debug("C_Finalize of the PKCS#11 module failed (%s)", type(exc).__name__)
    return True


def open_session(module: str, label: str, user_pin: str, holder: object) -> tuple[Any, Any, Any]:
    """(lib, token, session): a read-write session logged in as user on the token labelled `label`, recorded
    as held by `holder` until `release(holder)`.

    Transient failures are retried with back-off on a re-initialised module; when they last, the slot list is
    read once more: a token that is listed is busy (`HsmBusy`), one that is not is unavailable.
    """
    check_module(module)
    failures: list[str] = []
    lib: Any = None
    started = time.monotonic()
    with _lock:
        pauses = _pauses()
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            if attempt > 1:
                pause = next(pauses)
                log.debug("token %r not reachable (%s): attempt %d of %d in %.2f s", label, failures[-1], attempt,
                         OPEN_ATTEMPTS, pause)
                time.sleep(pause)
                _finalize(lib)
            try:
                lib = pkcs11.lib(module)
                token = lib.get_token(token_label=label)
                session = token.open(rw=True, user_pin=user_pin)
            except _TRANSIENT as exc:
                failures.append(_failure(exc))
                continue
            except p11e.MultipleTokensReturned:
                raise HsmUnavailable(f"more than one token on {module} is labelled {label!r}: {LABEL_SETTING}") \
                    from None
            except p11e.PKCS11Error as exc:
                raise ckr.from_exception(exc, f"open session on token {label!r}") from None
            _holders.setdefault(os.getpid(), weakref.WeakSet()).add(holder)
            return lib, token, session
        log.info("token %r not reachable after %d attempts (%s): reading the slot list again", label,
                 OPEN_ATTEMPTS, ", ".join(dict.fromkeys(failures)))
        raise _unreachable(module, label, lib, failures, time.monotonic() - started)


def _failure(exc: p11e.PKCS11Error) -> str:
    return "not in the slot list" if isinstance(exc, p11e.NoSuchToken) else ckr.name_of(exc)


def _unreachable(module: str, label: str, lib: Any, failures: list[str], elapsed: float) -> HsmError:
    """Tell a busy token (listed now, or the listing itself fails) from one that is not there."""
    reread = _finalize(lib) or lib is None
    try:
        lib = pkcs11.lib(module)
    except p11e.PKCS11Error as exc:
        return HsmUnavailable(f"the PKCS#11 module {module} does not initialise; with SoftHSM2 check SOFTHSM2_CONF "
                              "(softhsm_conf in tsm.toml) and the token directory it names", ckr.name_of(exc))
    tried = f"{len(failures)} attempts over {elapsed:.1f} s failed ({', '.join(dict.fromkeys(failures))})"
    try:
        labels = _labels(lib)
    except p11e.PKCS11Error as exc:
        return HsmBusy(f"token {label!r} is busy: {tried}, and reading the slot list fails too; retry",
                       ckr.name_of(exc))
    if label in labels and not labels[label] & TokenFlag.USER_PIN_INITIALIZED:
        return ckr.error(CKR_USER_PIN_NOT_INITIALIZED, f"open session on token {label!r}")
    if label in labels:
        return HsmBusy(f"token {label!r} is busy: the module lists it, but {tried}; another process is probably "
                       "writing it (e.g. a concurrent `tsm keys generate`): retry")
    shown = ", ".join(repr(name) for name in sorted(labels)[:_SHOWN_LABELS]) or "none"
    more = ", ..." if len(labels) > _SHOWN_LABELS else ""
    stale = "" if reread else " (slot list not re-read: this process holds other sessions on the module)"
    return HsmUnavailable(f"no token labelled {label!r} on PKCS#11 module {module} (tokens there: {shown}{more})"
                          f"{stale}: {LABEL_SETTING}")


def _labels(lib: Any) -> dict[str, int]:
    """Label -> CK_TOKEN_INFO flags of each initialised token the module lists."""
    labels = {}
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except (p11e.TokenNotPresent, p11e.TokenNotRecognised):
            continue
        if token.label:
            labels[str(token.label)] = int(token.flags)
    return labels
