"""Opening the token (retries that re-initialise the module, busy vs absent) and PKCS#11 error messages."""

from __future__ import annotations

import ctypes
import multiprocessing
from pathlib import Path

import pkcs11
import pytest
from pkcs11.mechanisms import KeyType, Mechanism

from keyservice import p11raw, templates
from keyservice.errors import HsmError, HsmLoginFailed, HsmUnavailable
from keyservice.hsm import Hsm
from softhsm import bootstrap
from tests.conftest import MODULE, TOKEN_DIR, new_token
from tests.keyservice import open_worker

WORKERS = 4
ROUNDS = 8
SPAWN = multiprocessing.get_context("spawn")


def test_processes_opening_one_token_at_the_same_instant_all_start():
    """Issue 8: gunicorn workers start at once; SoftHSM2 reads its token directory at C_Initialize while another
    worker's login rewrites the token file, and a retry on python-pkcs11's cached library saw the same
    incomplete directory again (NoSuchToken after every retry)."""
    token = new_token("race")
    barrier, results = SPAWN.Barrier(WORKERS), SPAWN.Queue()
    workers = [SPAWN.Process(target=open_worker.open_rounds,
                             args=(barrier, results, MODULE, token.label, token.pins.user_pin, ROUNDS))
               for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    failures = [failure for _ in workers for failure in results.get(timeout=300)]
    for worker in workers:
        worker.join()
    assert failures == []


def _token_object(label: str) -> Path:
    """SoftHSM2's token.object of the token labelled `label` (the label is stored in it, blank-padded)."""
    needle = label.encode().ljust(32)
    return next(p for p in TOKEN_DIR.glob("*/token.object") if needle in p.read_bytes())


def test_a_token_busy_through_every_retry_is_reported_busy():
    """Issue 8: the token is there but is being written through every attempt: `hsm_busy`, telling to retry,
    not an unexplained NoSuchToken."""
    token = new_token("busy")
    results = SPAWN.Queue()
    child = SPAWN.Process(target=open_worker.open_while_written,
                          args=(results, MODULE, token.label, token.pins.user_pin, str(_token_object(token.label))))
    child.start()
    code, message = results.get(timeout=120)
    child.join()
    assert code == "hsm_busy"
    assert token.label in message and "retry" in message
    assert token.pins.user_pin not in message and token.pins.so_pin not in message


def test_a_token_that_is_not_there_stays_unavailable():
    with pytest.raises(HsmUnavailable) as caught:
        Hsm(MODULE, "no-such-token-here", "not-the-pin-9f3a")
    assert caught.value.code == "hsm_unavailable"
    message = str(caught.value)
    assert "no-such-token-here" in message and "TSM_TOKEN_LABEL" in message
    assert "not-the-pin-9f3a" not in message


def test_a_wrong_pin_is_named_and_not_echoed():
    token = new_token("pin")
    with pytest.raises(HsmLoginFailed) as caught:
        Hsm(MODULE, token.label, "wrong-pin-5e1d")
    assert "CKR_PIN_INCORRECT" in str(caught.value) and "wrong-pin-5e1d" not in str(caught.value)


def test_a_missing_module_names_its_path_and_the_setting(tmp_path: Path):
    missing = tmp_path / "libvendor-pkcs11.so"
    with pytest.raises(HsmUnavailable) as caught:
        Hsm(str(missing), "tsm", "not-the-pin-9f3a")
    message = str(caught.value)
    assert caught.value.code == "hsm_module_not_loadable"
    assert str(missing) in message and "TSM_PKCS11_MODULE" in message and "pkcs11_module" in message
    assert "not-the-pin-9f3a" not in message


def test_a_module_that_is_not_a_library_names_its_path_and_the_setting(tmp_path: Path):
    bogus = tmp_path / "libnot-a-library.so"
    bogus.write_text("not an ELF shared object\n")
    with pytest.raises(HsmUnavailable) as caught:
        Hsm(str(bogus), "tsm", "not-the-pin-9f3a")
    message = str(caught.value)
    assert caught.value.code == "hsm_module_not_loadable"
    assert str(bogus) in message and "TSM_PKCS11_MODULE" in message


def test_wrapping_with_a_kek_of_the_wrong_type_is_explained():
    """The token's own answer (0x115) is named, with what it means here."""
    token = new_token("wrap")
    hsm = Hsm(MODULE, token.label, token.pins.user_pin)
    try:
        with hsm.lock:
            kek = hsm.raw.generate(Mechanism.DES3_KEY_GEN, templates.session_key(KeyType.DES3))
            key = hsm.raw.generate(Mechanism.AES_KEY_GEN, templates.wrappable_session_key(KeyType.AES, 16))
            with pytest.raises(HsmError) as caught:
                hsm.raw.wrap(kek, Mechanism.AES_KEY_WRAP, key)
    finally:
        hsm.close()
    message = str(caught.value)
    assert caught.value.ckr == "CKR_WRAPPING_KEY_TYPE_INCONSISTENT"
    assert "CKR_WRAPPING_KEY_TYPE_INCONSISTENT" in message and "AES KEK" in message


# (CK_RV, name) from PKCS#11 v2.40 pkcs11t.h: the codes the key service's calls can return.
SPEC_NAMES = [
    (0x05, "CKR_GENERAL_ERROR"), (0x06, "CKR_FUNCTION_FAILED"), (0x07, "CKR_ARGUMENTS_BAD"),
    (0x10, "CKR_ATTRIBUTE_READ_ONLY"), (0x11, "CKR_ATTRIBUTE_SENSITIVE"), (0x12, "CKR_ATTRIBUTE_TYPE_INVALID"),
    (0x13, "CKR_ATTRIBUTE_VALUE_INVALID"), (0x1B, "CKR_ACTION_PROHIBITED"), (0x20, "CKR_DATA_INVALID"),
    (0x21, "CKR_DATA_LEN_RANGE"), (0x30, "CKR_DEVICE_ERROR"), (0x31, "CKR_DEVICE_MEMORY"),
    (0x32, "CKR_DEVICE_REMOVED"), (0x40, "CKR_ENCRYPTED_DATA_INVALID"), (0x41, "CKR_ENCRYPTED_DATA_LEN_RANGE"),
    (0x54, "CKR_FUNCTION_NOT_SUPPORTED"), (0x60, "CKR_KEY_HANDLE_INVALID"), (0x62, "CKR_KEY_SIZE_RANGE"),
    (0x63, "CKR_KEY_TYPE_INCONSISTENT"), (0x64, "CKR_KEY_NOT_NEEDED"), (0x65, "CKR_KEY_CHANGED"),
    (0x66, "CKR_KEY_NEEDED"), (0x67, "CKR_KEY_INDIGESTIBLE"), (0x68, "CKR_KEY_FUNCTION_NOT_PERMITTED"),
    (0x69, "CKR_KEY_NOT_WRAPPABLE"), (0x6A, "CKR_KEY_UNEXTRACTABLE"), (0x70, "CKR_MECHANISM_INVALID"),
    (0x71, "CKR_MECHANISM_PARAM_INVALID"), (0x82, "CKR_OBJECT_HANDLE_INVALID"), (0x90, "CKR_OPERATION_ACTIVE"),
    (0x91, "CKR_OPERATION_NOT_INITIALIZED"), (0xA0, "CKR_PIN_INCORRECT"), (0xA4, "CKR_PIN_LOCKED"),
    (0xB0, "CKR_SESSION_CLOSED"), (0xB1, "CKR_SESSION_COUNT"), (0xB3, "CKR_SESSION_HANDLE_INVALID"),
    (0xB5, "CKR_SESSION_READ_ONLY"), (0xC0, "CKR_SIGNATURE_INVALID"), (0xC1, "CKR_SIGNATURE_LEN_RANGE"),
    (0xD0, "CKR_TEMPLATE_INCOMPLETE"), (0xD1, "CKR_TEMPLATE_INCONSISTENT"), (0xE0, "CKR_TOKEN_NOT_PRESENT"),
    (0xE1, "CKR_TOKEN_NOT_RECOGNIZED"), (0xE2, "CKR_TOKEN_WRITE_PROTECTED"),
    (0xF0, "CKR_UNWRAPPING_KEY_HANDLE_INVALID"), (0xF1, "CKR_UNWRAPPING_KEY_SIZE_RANGE"),
    (0xF2, "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT"), (0x101, "CKR_USER_NOT_LOGGED_IN"),
    (0x102, "CKR_USER_PIN_NOT_INITIALIZED"), (0x110, "CKR_WRAPPED_KEY_INVALID"),
    (0x112, "CKR_WRAPPED_KEY_LEN_RANGE"), (0x113, "CKR_WRAPPING_KEY_HANDLE_INVALID"),
    (0x114, "CKR_WRAPPING_KEY_SIZE_RANGE"), (0x115, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT"),
    (0x121, "CKR_RANDOM_NO_RNG"), (0x150, "CKR_BUFFER_TOO_SMALL"), (0x190, "CKR_CRYPTOKI_NOT_INITIALIZED"),
    (0x1B0, "CKR_NEW_PIN_MODE"), (0x1B6, "CKR_FIPS_SELF_TEST_FAILED"), (0x200, "CKR_FUNCTION_REJECTED"),
]


@pytest.mark.parametrize(("rv", "name"), SPEC_NAMES, ids=[name for _, name in SPEC_NAMES])
def test_every_return_value_the_key_service_can_meet_has_its_name(rv: int, name: str):
    with pytest.raises(HsmError) as caught:
        p11raw.check(rv, "C_WrapKey")
    assert caught.value.ckr == name
    assert f"({name})" in str(caught.value) and "C_WrapKey" in str(caught.value)


def test_a_vendor_defined_return_value_says_so():
    with pytest.raises(HsmError) as caught:
        p11raw.check(0x80000123, "C_Sign")
    assert caught.value.ckr == "CKR_VENDOR_DEFINED+0x123"
    assert "vendor" in str(caught.value)


def _token_without_user_pin(label: str) -> None:
    """C_InitToken on the free slot, without the C_InitPIN that `tsm init` does (PKCS#11 v2.40 §5.6)."""
    pkcs11.lib(MODULE)  # C_Initialize
    lib = ctypes.CDLL(MODULE)
    count = ctypes.c_ulong()
    assert lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)) == 0
    slots = (ctypes.c_ulong * count.value)()
    assert lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)) == 0
    info = bootstrap.CkTokenInfo()
    free = next(slot for slot in slots if lib.C_GetTokenInfo(ctypes.c_ulong(slot), ctypes.byref(info)) == 0
                and not info.flags & bootstrap.CKF_TOKEN_INITIALIZED)
    so_pin = bootstrap.generate_pins().so_pin.encode()
    assert lib.C_InitToken(ctypes.c_ulong(free), so_pin, ctypes.c_ulong(len(so_pin)),
                           label.encode().ljust(bootstrap.TOKEN_LABEL_LENGTH)) == 0


def test_a_token_without_user_pin_is_not_called_busy():
    """A login refused with CKR_USER_PIN_NOT_INITIALIZED is retried (a token file read mid-write looks like
    that); when the token's flags confirm it, the error says so instead of "busy"."""
    _token_without_user_pin("no-user-pin")
    with pytest.raises(HsmLoginFailed) as caught:
        Hsm(MODULE, "no-user-pin", "not-the-pin-9f3a")
    assert caught.value.ckr == "CKR_USER_PIN_NOT_INITIALIZED" and "tsm init" in str(caught.value)
