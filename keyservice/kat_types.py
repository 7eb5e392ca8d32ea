"""One loader/checker per KAT vector type (docs/kat-format.md), run by `keyservice.kat`.

Every check calls the production functions of `keyservice.gp` and `keyservice.exchange`. Expected key
values are compared inside the HSM: the expected key is imported as a session object and both objects
encrypt the same probe blocks (AES/3DES) or HMAC the same probe (generic secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pkcs11.mechanisms import KeyType, Mechanism

from globalplatform.kcv import KcvMethod
from globalplatform.keys import VALID_LENGTHS, KeyAlgorithm, KeyPurpose
from globalplatform.scp import Scp02Option
from keyservice import templates
from keyservice.errors import CryptogramMismatch, KeyServiceError
from keyservice.exchange import aeskw, tr31
from keyservice.gp import hsmops, putkey, scp02, storedata
from keyservice.gp.channel import Scp, SecureChannel, State
from keyservice.gp.diversify import Diversifier, DivMethod, KeySet, diversify_key
from keyservice.gp.kcv import kcv
from keyservice.gp.scp03 import Scp03Session, card_challenge
from keyservice.hsm import Hsm

PROBE: Final = bytes(range(32))


class VectorError(Exception):
    """A vector (or file) cannot be parsed: missing field, bad hex, wrong type of value."""


class Mismatch(Exception):
    """A computed value differs from the vector's expectation (a FAIL line)."""
KEYSET_FIELDS: Final = ("enc", "mac", "dek")


class Context:
    """Keys imported for one vector, destroyed afterwards."""

    def __init__(self, hsm: Hsm) -> None:
        self.hsm = hsm
        self._objects: list[int] = []
        self._keysets: list[KeySet] = []
        self._channels: list[SecureChannel] = []

    def token_key(self, algorithm: KeyAlgorithm, value: bytes) -> int:
        """A static key from a clear value, as a non-extractable session object.

        Session objects vanish with the session, so the same runner serves `tsm kat` on a scratch token and
        the start-up self-test on the production token without ever leaving a test key behind.
        """
        key_type = templates.key_type(algorithm, len(value))
        with self.hsm.lock:
            handle = self.hsm.raw.create(templates.test_session_key(key_type, value, wrappable=False))
        return self.own(handle)

    def session_key(self, key_type: KeyType, value: bytes, *, wrappable: bool = False) -> int:
        """A session object from a clear value (expected keys; keys a vector wraps)."""
        with self.hsm.lock:
            handle = self.hsm.raw.create(templates.test_session_key(key_type, value, wrappable=wrappable))
        return self.own(handle)

    def own(self, handle: int) -> int:
        self._objects.append(handle)
        return handle

    def keyset(self, ks: KeySet) -> KeySet:
        self._keysets.append(ks)
        return ks

    def channel(self, ch: SecureChannel) -> SecureChannel:
        self._channels.append(ch)
        return ch

    def same_key(self, handle: int, key_type: KeyType, expected: bytes, what: str) -> None:
        """Mismatch unless the object `handle` holds `expected` (compared inside the HSM)."""
        other = self.session_key(key_type, expected)
        with self.hsm.lock:
            if key_type == KeyType.GENERIC_SECRET:
                a, b = (self.hsm.raw.sign(h, Mechanism.SHA256_HMAC, PROBE) for h in (handle, other))
            else:
                mech = Mechanism.AES_ECB if key_type == KeyType.AES else Mechanism.DES3_ECB
                a, b = (self.hsm.raw.encrypt(h, mech, PROBE) for h in (handle, other))
        if not hsmops.same(a, b):
            raise Mismatch(f"{what} differs")

    def cleanup(self) -> None:
        for ch in self._channels:
            ch.close()
        for ks in self._keysets:
            ks.destroy(self.hsm)
        hsmops.destroy(self.hsm, *self._objects)


# ---- field access -------------------------------------------------------------------------------------------

def field(v: dict[str, Any], name: str, kind: type = str) -> Any:
    if name not in v:
        raise VectorError(f"missing field {name!r}")
    if not isinstance(v[name], kind):
        raise VectorError(f"field {name!r} must be of type {kind.__name__}")
    return v[name]


def hexfield(v: dict[str, Any], name: str) -> bytes:
    value = field(v, name)
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise VectorError(f"field {name!r} is not hex") from None


def hexmap(v: dict[str, Any], name: str) -> dict[str, bytes]:
    obj = field(v, name, dict)
    return {k: hexfield(obj, k) for k in obj}


def expectations(v: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(expect, expect_kcv): full values and/or 3-byte GP KCVs."""
    full = hexmap(v, "expect") if "expect" in v else {}
    kcvs = hexmap(v, "expect_kcv") if "expect_kcv" in v else {}
    if not full and not kcvs:
        raise VectorError("neither 'expect' nor 'expect_kcv' given")
    return full, kcvs


def equal(name: str, got: bytes, want: bytes) -> None:
    if not hsmops.same(got, want):
        raise Mismatch(f"{name}: got {got.hex().upper()}, expected {want.hex().upper()}")


def check_key(ctx: Context, name: str, handle: int, algorithm: KeyAlgorithm, length: int,
              full: dict[str, bytes], kcvs: dict[str, bytes]) -> None:
    if name in full:
        ctx.same_key(handle, templates.key_type(algorithm, len(full[name])), full[name], name)
    if name in kcvs:
        equal(f"{name} KCV", kcv(ctx.hsm, handle, algorithm, KcvMethod.GP, len(kcvs[name])), kcvs[name])


def import_keyset(ctx: Context, v: dict[str, Any], algorithm: KeyAlgorithm, name: str = "static") -> KeySet:
    keys = hexmap(v, name)
    missing = [k for k in KEYSET_FIELDS[:2] if k not in keys]
    if missing:
        raise VectorError(f"{name} lacks {', '.join(missing)}")
    handles = {k: ctx.token_key(algorithm, keys[k]) for k in KEYSET_FIELDS if k in keys}
    return KeySet(algorithm, len(keys["enc"]), handles["enc"], handles["mac"], handles.get("dek"))


def method_of(v: dict[str, Any]) -> DivMethod:
    try:
        return DivMethod(field(v, "method"))
    except ValueError:
        raise VectorError(f"unknown method {v['method']!r}") from None


# ---- types ----------------------------------------------------------------------------------------------------

def t_kcv(ctx: Context, v: dict[str, Any]) -> None:
    try:
        algorithm, method = KeyAlgorithm(field(v, "algorithm")), KcvMethod(field(v, "method"))
    except ValueError as exc:
        raise VectorError(str(exc)) from None
    handle = ctx.token_key(algorithm, hexfield(v, "key"))
    equal("kcv", kcv(ctx.hsm, handle, algorithm, method, field(v, "length", int)), hexfield(v, "expect"))


def t_diversify(ctx: Context, v: dict[str, Any]) -> None:
    method = method_of(v)
    algorithm = KeyAlgorithm.AES if method is DivMethod.KDF3 else KeyAlgorithm.DES3
    master = hexfield(v, "master")
    mh = ctx.token_key(algorithm, master)
    full, kcvs = expectations(v)
    for purpose in KeyPurpose:
        name = purpose.name.lower()
        if name in full or name in kcvs:
            h = ctx.own(diversify_key(ctx.hsm, mh, method, hexfield(v, "kdd"), purpose, len(master)))
            check_key(ctx, name, h, algorithm, len(master), full, kcvs)


def t_scp02_session_keys(ctx: Context, v: dict[str, Any]) -> None:
    static = import_keyset(ctx, v, KeyAlgorithm.DES3)
    counter = hexfield(v, "sequence_counter")
    full, kcvs = expectations(v)
    plan = {"s_enc": (static.enc, scp02.Scp02Constant.S_ENC), "s_mac": (static.mac, scp02.Scp02Constant.C_MAC),
            "s_rmac": (static.mac, scp02.Scp02Constant.R_MAC), "s_dek": (static.dek, scp02.Scp02Constant.DEK)}
    for name, (base, constant) in plan.items():
        if name in full or name in kcvs:
            if base is None:
                raise VectorError("static lacks dek")
            h = ctx.own(scp02.derive_session_key(ctx.hsm, base, constant, counter))
            check_key(ctx, name, h, KeyAlgorithm.DES3, 16, full, kcvs)


def t_scp03_session_keys(ctx: Context, v: dict[str, Any]) -> None:
    static = import_keyset(ctx, v, KeyAlgorithm.AES)
    session = Scp03Session.open(ctx.hsm, static, hexfield(v, "host_challenge"), hexfield(v, "card_challenge"))
    try:
        full, kcvs = expectations(v)
        for name in ("s_enc", "s_mac", "s_rmac"):
            check_key(ctx, name, getattr(session, name), KeyAlgorithm.AES, static.length, full, kcvs)
        if "card_cryptogram" in full:
            equal("card_cryptogram", session.card_cryptogram(), full["card_cryptogram"])
        if "host_cryptogram" in full:
            equal("host_cryptogram", session.host_cryptogram(), full["host_cryptogram"])
    finally:
        session.close()


def t_scp03_card_challenge(ctx: Context, v: dict[str, Any]) -> None:
    enc = hexmap(v, "static").get("enc")
    if enc is None:
        raise VectorError("static lacks enc")
    h = ctx.token_key(KeyAlgorithm.AES, enc)
    expect = hexfield(v, "expect")
    got = card_challenge(ctx.hsm, h, hexfield(v, "sequence_counter"), hexfield(v, "aid"), len(expect))
    equal("card challenge", got, expect)


def open_channel(ctx: Context, v: dict[str, Any]) -> SecureChannel:
    """INITIALIZE UPDATE, card cryptogram, EXTERNAL AUTHENTICATE as the vector describes."""
    try:
        scp = Scp(field(v, "scp"))
    except ValueError:
        raise VectorError(f"unknown scp {v['scp']!r}") from None
    algorithm = KeyAlgorithm.DES3 if scp is Scp.SCP02 else KeyAlgorithm.AES
    level = int(field(v, "security_level"), 16)
    i = int(field(v, "i"), 16) if "i" in v else None
    if "diversify" in v:
        div = field(v, "diversify", dict)
        master = hexfield(div, "master")
        dv = Diversifier(ctx.token_key(algorithm, master), method_of(div), len(master))
        ch = ctx.channel(SecureChannel(ctx.hsm, scp, diversifier=dv, security_level=level, i=i))
    else:
        static = import_keyset(ctx, v, algorithm)
        ch = ctx.channel(SecureChannel(ctx.hsm, scp, static=static, security_level=level, i=i))
    iu = field(v, "initialize_update", dict)
    want = hexfield(iu, "command")
    if len(want) < 5:
        raise VectorError("initialize_update.command is too short")
    got = ch.initialize_update(want[2], hexfield(v, "host_challenge"), with_le=len(want) == 14)
    equal("INITIALIZE UPDATE", got, want)
    try:
        ch.verify_card_response(hexfield(iu, "response"))
    except CryptogramMismatch:
        raise Mismatch("card cryptogram mismatch (no EXTERNAL AUTHENTICATE built)") from None
    equal("EXTERNAL AUTHENTICATE", ch.external_authenticate(), hexfield(v, "external_authenticate"))
    return ch


def t_secure_channel(ctx: Context, v: dict[str, Any]) -> None:
    ch = open_channel(ctx, v)
    for n, cmd in enumerate(field(v, "commands", list), 1):
        if not isinstance(cmd, dict):
            raise VectorError(f"command {n} is not an object")
        equal(f"command {n} wrapped", ch.wrap(hexfield(cmd, "plain")), hexfield(cmd, "wrapped"))
        if "response" in cmd:
            try:
                got = ch.unwrap(hexfield(cmd, "response"))
            except KeyServiceError as exc:
                raise Mismatch(f"command {n} response refused: {exc.__class__.__name__}") from None
            equal(f"command {n} response", got, hexfield(cmd, "response_plain"))


def t_put_key(ctx: Context, v: dict[str, Any]) -> None:
    """After a full handshake, or (SCP02, `sequence_counter` form) with the session DEK of that counter."""
    scp: Scp
    if "sequence_counter" in v:
        scp = Scp(field(v, "scp"))
        if scp is not Scp.SCP02:
            raise VectorError("the sequence_counter form is for SCP02 (SCP03 PUT KEY uses the static DEK)")
        static = ctx.token_key(KeyAlgorithm.DES3, hexmap(v, "static")["dek"])
        dek = ctx.own(scp02.derive_session_key(ctx.hsm, static, scp02.Scp02Constant.DEK,
                                               hexfield(v, "sequence_counter")))
    else:
        ch = open_channel(ctx, v)
        scp, dek = ch.scp, ch.session_dek()
    algorithm = KeyAlgorithm.DES3 if scp is Scp.SCP02 else KeyAlgorithm.AES
    if "new_keys_diversify" in v:
        div = field(v, "new_keys_diversify", dict)
        master = hexfield(div, "master")
        dv = Diversifier(ctx.token_key(algorithm, master), method_of(div), len(master))
        ks = ctx.keyset(dv.keyset(ctx.hsm, hexfield(div, "kdd"), wrappable=True))
        handles, length = [ks.enc, ks.mac, ks.dek], ks.length
    else:
        keys = hexmap(v, "new_keys")
        length = len(keys["enc"]) if "enc" in keys else 16
        ktype = templates.key_type(algorithm, length)
        handles = [ctx.session_key(ktype, keys[k], wrappable=True) for k in KEYSET_FIELDS if k in keys]
    new = [putkey.NewKey(h, algorithm, length) for h in handles if h is not None]
    key_id = int(v.get("key_id", "01"), 16)
    cmd = putkey.build_put_key(ctx.hsm, scp, dek, int(field(v, "old_kvn"), 16), int(field(v, "new_kvn"), 16), new,
                               key_id)
    equal("PUT KEY", cmd.apdu, hexfield(v, "expect"))


def _flip(text: str, pos: int) -> str:
    c = text[pos]
    return text[:pos] + ("1" if c == "0" else "0") + text[pos + 1:]


def t_tr31_unwrap(ctx: Context, v: dict[str, Any]) -> None:
    kbpk = hexfield(v, "kbpk")
    block = field(v, "key_block")
    version = block[:1]
    algorithm = KeyAlgorithm.DES3 if version == tr31.Version.B else KeyAlgorithm.AES
    kh = ctx.token_key(algorithm, kbpk)
    imported = tr31.import_key_block(ctx.hsm, kh, len(kbpk), block)
    ctx.own(imported.handle)
    key = hexfield(v, "expect_key")
    key = key + key if len(key) == tr31.SINGLE_DES_LENGTH else key
    key_alg = KeyAlgorithm.DES3 if imported.header.algorithm == "T" else KeyAlgorithm.AES
    ctx.same_key(imported.handle, templates.key_type(key_alg, len(key)), key, "key")
    header = imported.header
    fields = {"version": header.version, "usage": header.usage, "algorithm": header.algorithm,
              "mode": header.mode, "key_version": header.key_version, "exportability": header.exportability,
              "optional_blocks": f"{len(header.optional_blocks):02d}"}
    for name, want in field(v, "expect_header", dict).items() if "expect_header" in v else []:
        if fields.get(name) != want:
            raise Mismatch(f"header {name}: got {fields.get(name)!r}, expected {want!r}")
    for where, pos in (("header", 6), ("encrypted key", 20), ("MAC", len(block) - 3)):
        try:
            h = tr31.import_key_block(ctx.hsm, kh, len(kbpk), _flip(block, pos)).handle
        except KeyServiceError:
            continue
        ctx.own(h)
        raise Mismatch(f"a key block with a changed {where} was accepted")


def t_aes_key_wrap(ctx: Context, v: dict[str, Any]) -> None:
    kek, key, expect = hexfield(v, "kek"), hexfield(v, "key"), hexfield(v, "expect")
    padding = field(v, "padding", bool)
    kh = ctx.token_key(KeyAlgorithm.AES, kek)
    ktype = KeyType.AES if len(key) in VALID_LENGTHS[KeyAlgorithm.AES] else KeyType.GENERIC_SECRET
    if not padding and len(key) % aeskw.SEMIBLOCK:
        raise VectorError("RFC 3394 needs a multiple of 8 bytes")
    # Unwrap first (production template: sensitive, not extractable), then the negative checks, then wrap.
    out = ctx.own(aeskw.unwrap_key(ctx.hsm, kh, expect, padding=padding, key_type=ktype))
    if ktype == KeyType.AES:
        ctx.same_key(out, ktype, key, "unwrapped key")
    else:  # generic secrets of any length: compare re-wrapped test copies (HMAC refuses short keys)
        copy = ctx.own(aeskw.unwrap_key(ctx.hsm, kh, expect, padding=padding, key_type=ktype,
                                        template=templates.wrappable_session_key(ktype)))
        ref = ctx.session_key(ktype, key, wrappable=True)
        a, b = (aeskw.wrap_key(ctx.hsm, kh, h, padding=True, native_unaligned=True) for h in (copy, ref))
        if not hsmops.same(a, b):
            raise Mismatch("unwrapped key differs")
    for bit in (0, 8 * len(expect) // 2, 8 * len(expect) - 1):
        bad = bytearray(expect)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            ctx.own(aeskw.unwrap_key(ctx.hsm, kh, bytes(bad), padding=padding, key_type=ktype))
        except KeyServiceError:
            continue
        raise Mismatch(f"a wrapped key with bit {bit} flipped was accepted")
    src = ctx.session_key(ktype, key, wrappable=True)
    equal("wrapped", aeskw.wrap_key(ctx.hsm, kh, src, padding=padding, key_length=len(key)), expect)


def t_dek_encrypt(ctx: Context, v: dict[str, Any]) -> None:
    scp = Scp(field(v, "scp"))
    dek_value = hexmap(v, "static").get("dek")
    if dek_value is None:
        raise VectorError("static lacks dek")
    algorithm = KeyAlgorithm.DES3 if scp is Scp.SCP02 else KeyAlgorithm.AES
    dek = ctx.token_key(algorithm, dek_value)
    if scp is Scp.SCP02:
        counter = hexfield(v, "sequence_counter")
        dek = ctx.own(scp02.derive_session_key(ctx.hsm, dek, scp02.Scp02Constant.DEK, counter))
    equal("encrypted", storedata.encrypt_sensitive(ctx.hsm, scp, dek, hexfield(v, "data")), hexfield(v, "expect"))


def t_store_data_keys(ctx: Context, v: dict[str, Any]) -> None:
    dek = ctx.token_key(KeyAlgorithm.AES, hexfield(v, "dek"))
    entries = []
    for n, k in enumerate(field(v, "keys", list), 1):
        if not isinstance(k, dict):
            raise VectorError(f"key {n} is not an object")
        value = hexfield(k, "key")
        handle = ctx.session_key(templates.key_type(KeyAlgorithm.AES, len(value)), value, wrappable=True)
        entries.append(storedata.DgiKey(int(field(k, "key_id"), 16), handle, len(value)))
    header = storedata.KeyDgiHeader(int(field(v, "key_type"), 16), field(v, "key_length", int),
                                    int(field(v, "key_version"), 16), int(field(v, "key_access"), 16),
                                    int(field(v, "key_purpose"), 16))
    equal("DGIs", storedata.key_dgis(ctx.hsm, dek, header, entries), hexfield(v, "expect"))


def t_sm_wrap(ctx: Context, v: dict[str, Any]) -> None:
    """Test hook: a channel seeded with the vector's session keys (never reachable from production)."""
    scp = Scp(field(v, "scp"))
    keys = hexmap(v, "session")
    level = int(field(v, "security_level"), 16)
    i = int(field(v, "i"), 16)
    algorithm = KeyAlgorithm.DES3 if scp is Scp.SCP02 else KeyAlgorithm.AES
    dummy = KeySet(algorithm, len(keys["s_enc"]), 0, 0)
    ch = ctx.channel(SecureChannel(ctx.hsm, scp, static=dummy, security_level=level, i=i))

    def obj(value: bytes) -> int:
        return ctx.session_key(templates.key_type(algorithm, len(value)), value)

    if scp is Scp.SCP02:
        s02 = scp02.Scp02Session(ctx.hsm, dummy, b"\0\0", Scp02Option(i), s_enc=obj(keys["s_enc"]),
                                 s_mac=obj(keys["s_mac"]), s_mac_single=obj(keys["s_mac"][:8] * 2),
                                 icv=hexfield(v, "initial_icv"))
        ch._s02 = s02
    else:
        s03 = Scp03Session(ctx.hsm, 8, b"", b"", s_enc=obj(keys["s_enc"]), s_mac=obj(keys["s_mac"]),
                           s_rmac=obj(keys.get("s_rmac", keys["s_mac"])), chaining=hexfield(v, "initial_chaining"))
        ch._s03 = s03
    ch.state = State.OPEN
    for n, cmd in enumerate(field(v, "commands", list), 1):
        equal(f"command {n} wrapped", ch.wrap(hexfield(cmd, "plain")), hexfield(cmd, "wrapped"))


HANDLERS: Final[dict[str, Callable[[Context, dict[str, Any]], None]]] = {
    "kcv": t_kcv, "diversify": t_diversify, "scp02_session_keys": t_scp02_session_keys,
    "scp03_session_keys": t_scp03_session_keys, "scp03_card_challenge": t_scp03_card_challenge,
    "secure_channel": t_secure_channel, "put_key": t_put_key, "tr31_unwrap": t_tr31_unwrap,
    "aes_key_wrap": t_aes_key_wrap, "dek_encrypt": t_dek_encrypt, "store_data_keys": t_store_data_keys,
    "sm_wrap": t_sm_wrap,
}
