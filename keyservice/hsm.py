"""The PKCS#11 session owner: one per process, one thread at a time (PLATFORM.md: python-pkcs11 is not
thread-safe here).

python-pkcs11 loads the module, opens and logs in the session and manages token objects; hot operations go
through `p11raw.RawSession` on the same session handle. Object handles are resolved once and cached; a token
key used on the hot path is copied once into a non-extractable session object.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import pkcs11.exceptions as p11e
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import KeyType, Mechanism

from keyservice import ckr, p11open, templates
from keyservice.errors import HsmError, KeyExists, KeyNotFound
from keyservice.p11raw import RawSession
from keyservice.strategy import SOFTHSM2, CryptoStep, select

TEST_TOKEN_MARKER: Final = "tsm.test-token"  # noqa: S105 - an object label
STALE_HANDLE: Final = "CKR_OBJECT_HANDLE_INVALID"
TRANSIENT_ANCHOR: Final = frozenset({STALE_HANDLE, "CKR_FUNCTION_FAILED"})
"""What a read or write of the anchor object may meet while another process rewrites it (SoftHSM2 keeps token
objects in files it rewrites and reloads)."""
ANCHOR_TRIES: Final = 100
ANCHOR_PAUSE: Final = 0.002
"""Up to ≈ 0.2 s of looking again (a reload was measured to take up to ≈ 0.04 s with three writers)."""
KEY_CLASSES: Final = {ObjectClass.SECRET_KEY: "secret_key", ObjectClass.PRIVATE_KEY: "private_key",
                      ObjectClass.PUBLIC_KEY: "public_key"}
"""The key object classes the key service creates, and their names in `TokenObject.object_class`."""

@contextmanager
def mapped(what: str) -> Iterator[None]:
    """Translate python-pkcs11 exceptions (empty messages, class = CKR code) through the one CKR table."""
    try:
        yield
    except p11e.PKCS11Error as exc:
        raise ckr.from_exception(exc, what) from None


@dataclass(frozen=True)
class TokenObject:
    """What the token says about one object (never its value)."""

    label: str
    cka_id: str
    object_class: str
    key_type: str | None
    length: int | None


@dataclass(frozen=True)
class TokenInfo:
    """Identity of the token and module in use."""

    label: str
    manufacturer: str
    model: str
    serial: str
    library: str
    test_token: bool


class Hsm:
    """An open, logged-in PKCS#11 session and the handle caches that belong to it."""

    def __init__(self, module: str, token_label: str, user_pin: str) -> None:
        self.module = module
        self.token_label = token_label
        self.lock = threading.RLock()
        self._pid = os.getpid()
        self._handles: dict[tuple[str, ObjectClass], int] = {}
        self._session_copies: dict[str, int] = {}
        self._static: set[int] = set()
        self.static_l: dict[int, bytes] = {}
        """E(K, 0) of static keys, the CMAC subkey source (SP 800-38B §6.1), kept for the session's life: it is
        public-data ciphertext like a KCV and reveals nothing of K (hsmops.cmac_inputs)."""
        self._anchors: dict[str, Any] = {}
        self._lib, self._token, self._session = self._open(user_pin)
        self.raw = RawSession(module, int(self._session.handle))
        self.profile = "softhsm2"
        self.strategies: dict[CryptoStep, str] = dict(SOFTHSM2)

    def use_profile(self, name: str, table: dict[CryptoStep, str]) -> None:
        """Take the strategy table of the HSM profile `name` (validated by `strategy.profile_table`)."""
        self.profile, self.strategies = name, dict(table)

    def strategy(self, step: CryptoStep) -> str:
        """The strategy the profile names for `step`; HsmMechanismUnsupported when it says `unsupported`."""
        return select(self.strategies, step, self.profile)

    def _open(self, user_pin: str) -> tuple[Any, Any, Any]:
        """Load the module and log in, retrying with back-off on a re-initialised module (`keyservice.p11open`)."""
        return p11open.open_session(self.module, self.token_label, user_pin, holder=self)

    @property
    def pid(self) -> int:
        """The process that opened this session (a forked child must open its own)."""
        return self._pid

    def close(self) -> None:
        """Destroy session copies and close the session."""
        with self.lock, mapped("close session"):
            p11open.release(self)
            self._session.close()
            self._handles.clear()
            self._session_copies.clear()
            self._static.clear()
            self.static_l.clear()

    # ---- inspection -------------------------------------------------------------------------------------

    def info(self) -> TokenInfo:
        """Token identity, and whether it carries the test-token marker."""
        with self.lock, mapped("token info"):
            tok = self._token
            slot = tok.slot
            return TokenInfo(
                label=tok.label,
                manufacturer=tok.manufacturer_id,
                model=tok.model,
                serial=tok.serial.decode() if isinstance(tok.serial, bytes) else str(tok.serial),
                library=f"{self._lib.manufacturer_id} {self._lib.library_description} "
                f"{'.'.join(map(str, self._lib.library_version))} (slot {slot.slot_id})",
                test_token=self.has_marker(TEST_TOKEN_MARKER),
            )

    def mechanisms(self) -> set[int]:
        """CKM_* values the token really reports."""
        with self.lock, mapped("get mechanism list"):
            return {int(m) for m in self._token.slot.get_mechanisms()}

    def objects(self) -> list[TokenObject]:
        """Every key object on the token: secret keys, and both halves of RSA key pairs (labels, ids and sizes
        only; an RSA pair is two objects with one label)."""
        with self.lock, mapped("list objects"):
            found = [obj for cls in KEY_CLASSES
                     for obj in self._session.get_objects({Attribute.CLASS: cls, Attribute.TOKEN: True})]
            return [TokenObject(label=obj[Attribute.LABEL], cka_id=bytes(obj[Attribute.ID]).hex(),
                                object_class=KEY_CLASSES[ObjectClass(obj[Attribute.CLASS])],
                                key_type=KeyType(obj[Attribute.KEY_TYPE]).name,
                                length=self.key_length(int(obj.handle))) for obj in found]

    # ---- handles ----------------------------------------------------------------------------------------

    def handle(self, label: str, object_class: ObjectClass = ObjectClass.SECRET_KEY) -> int:
        """The token object handle of a secret key (or of one half of an RSA pair: `object_class` PRIVATE_KEY or
        PUBLIC_KEY), resolved once (`C_FindObjects` is slow)."""
        cached = self._handles.get((label, object_class))
        if cached is not None:
            return cached
        with self.lock, mapped("find key"):
            found = list(self._session.get_objects({Attribute.CLASS: object_class, Attribute.TOKEN: True,
                                                    Attribute.LABEL: label}))
        if not found:
            what = "key" if object_class is ObjectClass.SECRET_KEY else KEY_CLASSES[object_class].replace("_", " ")
            raise KeyNotFound(f"no {what} labelled {label!r} on the token")
        if len(found) > 1:
            raise HsmError(f"{len(found)} token objects carry the label {label!r}")
        self._handles[(label, object_class)] = int(found[0].handle)
        return self._handles[(label, object_class)]

    def hot_handle(self, label: str) -> int:
        """A per-process, non-extractable session copy of a token key (17–34 µs cheaper per operation)."""
        cached = self._session_copies.get(label)
        if cached is not None:
            return cached
        with self.lock:
            copy = self.raw.copy(self.handle(label), templates.session_copy())
        self._session_copies[label] = copy
        self._static.add(copy)
        return copy

    def is_static(self, handle: int) -> bool:
        """Whether `handle` is a per-process copy of a token key (not a derived session key)."""
        return handle in self._static

    def forget(self, label: str) -> None:
        """Drop cached handles for `label` (after destroy), destroying its session copy."""
        for cls in KEY_CLASSES:
            self._handles.pop((label, cls), None)
        copy = self._session_copies.pop(label, None)
        if copy is not None:
            self._static.discard(copy)
            self.static_l.pop(copy, None)
            with self.lock:
                self.raw.destroy(copy)

    def key_length(self, handle: int) -> int:
        """Length of a key object: bytes of a secret key (DES2 16, DES3 24, else CKA_VALUE_LEN), bits of an RSA
        key's modulus."""
        with self.lock:
            key_type = self.raw.get_ulong(handle, Attribute.KEY_TYPE)
            if key_type == KeyType.DES2:
                return 16
            if key_type == KeyType.DES3:
                return 24
            if key_type == KeyType.RSA:
                modulus = self.raw.get_bytes(handle, Attribute.MODULUS)
                return 8 * len(modulus.lstrip(b"\0")) if modulus else 0
            length = self.raw.get_ulong(handle, Attribute.VALUE_LEN)
        if length is None:
            raise HsmError("the key object has no length attribute")
        return length

    def public_key(self, label: str) -> tuple[bytes, bytes]:
        """(modulus, public exponent) of an RSA pair, big-endian without leading zeros: public values, read from
        the public key object."""
        handle = self.handle(label, ObjectClass.PUBLIC_KEY)
        with self.lock:
            modulus = self.raw.get_bytes(handle, Attribute.MODULUS)
            exponent = self.raw.get_bytes(handle, Attribute.PUBLIC_EXPONENT)
        if not modulus or not exponent:
            raise HsmError(f"the public key {label!r} has no modulus or exponent")
        return modulus.lstrip(b"\0"), exponent.lstrip(b"\0")

    # ---- key management ---------------------------------------------------------------------------------

    def _labelled(self, label: str) -> list[int]:
        """Handles of every key object (secret, private, public) labelled `label`."""
        with self.lock, mapped("find key"):
            return [int(obj.handle) for cls in KEY_CLASSES
                    for obj in self._session.get_objects({Attribute.CLASS: cls, Attribute.TOKEN: True,
                                                          Attribute.LABEL: label})]

    def _ensure_absent(self, label: str) -> None:
        if self._labelled(label):
            raise KeyExists(f"a key labelled {label!r} already exists on the token")

    def generate(self, label: str, cka_id: bytes, key_type: KeyType, length: int,
                 caps: frozenset[templates.Capability], exportable: bool = False) -> int:
        """Generate a master key inside the token (sensitive; extractable only wrapped when `exportable`)."""
        self._ensure_absent(label)
        mech = {KeyType.AES: Mechanism.AES_KEY_GEN, KeyType.DES3: Mechanism.DES3_KEY_GEN,
                KeyType.DES2: Mechanism.DES2_KEY_GEN,
                KeyType.GENERIC_SECRET: Mechanism.GENERIC_SECRET_KEY_GEN}[key_type]
        template = dict(templates.master_key(label, cka_id, key_type, caps, exportable))
        if key_type in (KeyType.AES, KeyType.GENERIC_SECRET):
            template[Attribute.VALUE_LEN] = length
        with self.lock:
            handle = self.raw.generate(mech, template)
        self._handles[(label, ObjectClass.SECRET_KEY)] = handle
        return handle

    def generate_pair(self, label: str, cka_id: bytes, bits: int) -> int:
        """Generate an RSA key pair inside the token (templates.rsa_key_pair); returns the public key's handle."""
        self._ensure_absent(label)
        public, private = templates.rsa_key_pair(label, cka_id, bits)
        with self.lock:
            pub, priv = self.raw.generate_pair(Mechanism.RSA_PKCS_KEY_PAIR_GEN, public, private)
        self._handles[(label, ObjectClass.PUBLIC_KEY)] = pub
        self._handles[(label, ObjectClass.PRIVATE_KEY)] = priv
        return pub

    def create(self, label: str, cka_id: bytes, key_type: KeyType, value: bytes,
               caps: frozenset[templates.Capability], exportable: bool = False) -> int:
        """Create a token key from a clear value (test tokens and component ceremonies only)."""
        self._ensure_absent(label)
        template = dict(templates.master_key(label, cka_id, key_type, caps, exportable))
        template[Attribute.VALUE] = value
        with self.lock:
            handle = self.raw.create(template)
        self._handles[(label, ObjectClass.SECRET_KEY)] = handle
        return handle

    def random(self, length: int) -> bytes:
        """`length` bytes from the token's random number generator (C_GenerateRandom)."""
        with self.lock, mapped("generate random"):
            return bytes(self._session.generate_random(8 * length))

    def adopt(self, label: str, handle: int) -> None:
        """Record the handle of a token key created through the raw path (unwrap)."""
        self._handles[(label, ObjectClass.SECRET_KEY)] = handle

    def destroy(self, label: str) -> None:
        """Destroy a token key (both objects of an RSA pair) and forget its handles; KeyNotFound when none."""
        handles = self._labelled(label)
        if not handles:
            raise KeyNotFound(f"no key labelled {label!r} on the token")
        self.forget(label)
        with self.lock:
            for handle in handles:
                self.raw.destroy(handle)

    # ---- token data objects -----------------------------------------------------------------------------

    def has_marker(self, label: str) -> bool:
        """Whether a private data object with `label` exists (e.g. the test-token marker)."""
        with self.lock, mapped("find data object"):
            return bool(list(self._session.get_objects({Attribute.CLASS: ObjectClass.DATA,
                                                        Attribute.LABEL: label})))

    def put_marker(self, label: str, application: str = "tsm") -> None:
        """Create a private data object with `label` (idempotent)."""
        if not self.has_marker(label):
            with self.lock, mapped("create data object"):
                self._session.create_object(templates.data_object(label, application))

    def anchor(self, application: str) -> str | None:
        """The value held in the label of the data object named by `application` (audit head anchor); None when
        the token has no such object.

        SoftHSM2 refuses to modify CKA_VALUE of a data object; CKA_LABEL is modifiable and cheap
        (≈ 6,000 updates/s against ≈ 460/s for destroy + create).
        """
        for attempt in range(ANCHOR_TRIES):
            try:
                obj = self._anchor_object(application)
                if obj is None:
                    if attempt + 1 < ANCHOR_TRIES:
                        time.sleep(ANCHOR_PAUSE)  # see _transient: a search racing a reload may miss it
                        continue
                    return None
                with self.lock, mapped("read anchor"):
                    return str(obj[Attribute.LABEL])
            except HsmError as exc:
                self._transient(application, exc, attempt)
        return None  # pragma: no cover - the loop returns or raises

    def set_anchor(self, application: str, value: str, *, create: bool = False) -> None:
        """Overwrite the anchor value. The object is made only with `create` (once, by `tsm init`): a search
        that misses it while another process rewrites it must never make a second one."""
        for attempt in range(ANCHOR_TRIES):
            try:
                obj = self._anchor_object(application)
                if obj is None and not create:
                    if attempt + 1 < ANCHOR_TRIES:
                        time.sleep(ANCHOR_PAUSE)
                        continue
                    raise HsmError(f"the token has no {application} object", "CKR_OBJECT_HANDLE_INVALID",
                                   hint="the audit anchor is made by `tsm init`; a token without it is not this "
                                        "home's")
                with self.lock, mapped("write anchor"):
                    if obj is None:
                        self._anchors[application] = self._session.create_object(
                            templates.data_object(value, application))
                    else:
                        obj[Attribute.LABEL] = value
                return
            except HsmError as exc:
                self._transient(application, exc, attempt)

    def make_anchor(self, application: str, value: str) -> bool:
        """Make the anchor object when the token has none (`tsm init`, one process); True when made."""
        if self._anchor_object(application) is not None:
            return False
        self.set_anchor(application, value, create=True)
        return True

    def _transient(self, application: str, exc: HsmError, attempt: int) -> None:
        """SoftHSM2 keeps token objects in files: when another process rewrites the anchor, this one reloads it,
        and meanwhile its handle may be invalid, a read may fail or a search may miss it. Look again, a bounded
        number of times; any other error, or one that lasts, is raised."""
        if exc.ckr not in TRANSIENT_ANCHOR or attempt + 1 >= ANCHOR_TRIES:
            raise exc
        self._anchors.pop(application, None)
        time.sleep(ANCHOR_PAUSE)

    def _anchor_object(self, application: str) -> Any:
        cached = self._anchors.get(application)
        if cached is not None:
            return cached
        with self.lock, mapped("find anchor"):
            found = list(self._session.get_objects({Attribute.CLASS: ObjectClass.DATA,
                                                    Attribute.APPLICATION: application}))
        if found:
            self._anchors[application] = found[0]
            return found[0]
        return None
