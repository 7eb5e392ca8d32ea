"""One check per KAT vector type (docs/kat-format.md), run by `keyservice.kat` on a parsed, typed vector.

Every check calls the production functions of `keyservice.gp` and `keyservice.exchange`. Expected key
values are compared inside the HSM: the expected key is imported as a session object and both objects
encrypt the same probe blocks (AES/3DES) or HMAC the same probe (generic secrets). A negative check expects
one error class (`Context.refuses`): any other error is not the refusal the vector asks for, and ends the
vector as an ERROR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateNumbers
from pkcs11.constants import Attribute
from pkcs11.mechanisms import KeyType, Mechanism

from globalplatform.kcv import KcvMethod
from globalplatform.keys import VALID_LENGTHS, KeyAlgorithm, KeyPurpose
from globalplatform.scp import Scp, Scp02Option
from keyservice import kat_schema as schema
from keyservice import kat_schema_sm as sm
from keyservice import sealing, templates
from keyservice.errors import CryptogramMismatch, KeyServiceError, MacMismatch, UnsealFailed, UnwrapFailed
from keyservice.exchange import aeskw, tr31
from keyservice.gp import dm, hsmops, putkey, scp02, storedata
from keyservice.gp.channel import SecureChannel, State
from keyservice.gp.diversify import ALGORITHM, Diversifier, KeySet, diversify_key
from keyservice.gp.kcv import kcv
from keyservice.gp.scp03 import Scp03Session, card_challenge
from keyservice.hsm import Hsm
from keyservice.kat_fields import Fields, shown

V = TypeVar("V")
PROBE: Final = bytes(range(32))
TR31_VERSION_POSITION: Final = 10  # second digit of the header's key version number (bytes 9-10): stays a valid header


class Mismatch(Exception):
    """A computed value differs from the vector's expectation, or a refusal did not happen (a FAIL line)."""


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
        return self.session_key(templates.key_type(algorithm, len(value)), value)

    def session_key(self, key_type: KeyType, value: bytes, *, wrappable: bool = False) -> int:
        """A session object from a clear value (static and expected keys; wrappable: keys a vector wraps)."""
        with self.hsm.lock:
            handle = self.hsm.raw.create(templates.test_session_key(key_type, value, wrappable=wrappable))
        return self.own(handle)

    def rsa_private_key(self, key: RSAPrivateNumbers) -> int:
        """An RSA private key from a vector's components, as a signing-only, non-extractable session object."""
        def big(value: int) -> bytes:
            return value.to_bytes(-(-value.bit_length() // 8), "big")

        public = key.public_numbers
        components = {Attribute.MODULUS: big(public.n), Attribute.PUBLIC_EXPONENT: big(public.e),
                      Attribute.PRIVATE_EXPONENT: big(key.d), Attribute.PRIME_1: big(key.p),
                      Attribute.PRIME_2: big(key.q), Attribute.EXPONENT_1: big(key.dmp1),
                      Attribute.EXPONENT_2: big(key.dmq1), Attribute.COEFFICIENT: big(key.iqmp)}
        with self.hsm.lock:
            handle = self.hsm.raw.create(templates.rsa_test_private_key(components))
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

    def refuses(self, expected: type[KeyServiceError], what: str, attempt: Callable[[], int]) -> None:
        """A negative check: `attempt` must raise `expected`; other errors propagate (an ERROR line)."""
        try:
            handle = attempt()
        except expected:
            return
        self.own(handle)
        raise Mismatch(f"{what} was accepted")

    def cleanup(self) -> None:
        for ch in self._channels:
            ch.close()
        for ks in self._keysets:
            ks.destroy(self.hsm)
        hsmops.destroy(self.hsm, *self._objects)


def equal(name: str, got: bytes, want: bytes) -> None:
    if not hsmops.same(got, want):
        raise Mismatch(f"{name}: got {got.hex().upper()}, expected {want.hex().upper()}")


def check_key(ctx: Context, name: str, handle: int, algorithm: KeyAlgorithm, expect: schema.Expected) -> None:
    if name in expect.full:
        ctx.same_key(handle, templates.key_type(algorithm, len(expect.full[name])), expect.full[name], name)
    if name in expect.kcvs:
        want = expect.kcvs[name]
        equal(f"{name} KCV", kcv(ctx.hsm, handle, algorithm, KcvMethod.GP, len(want)), want)


def import_keyset(ctx: Context, keys: schema.KeyValues) -> KeySet:
    enc, mac = ctx.token_key(keys.algorithm, keys.enc), ctx.token_key(keys.algorithm, keys.mac)
    dek = None if keys.dek is None else ctx.token_key(keys.algorithm, keys.dek)
    return KeySet(keys.algorithm, len(keys.enc), enc, mac, dek)


def diversifier(ctx: Context, master: sm.MasterKey) -> Diversifier:
    return Diversifier(ctx.token_key(ALGORITHM[master.method], master.master), master.method, len(master.master))


# ---- checks ---------------------------------------------------------------------------------------------------

def t_kcv(ctx: Context, v: schema.KcvVector) -> None:
    handle = ctx.token_key(v.algorithm, v.key)
    equal("kcv", kcv(ctx.hsm, handle, v.algorithm, v.method, v.length), v.expect)


def t_diversify(ctx: Context, v: schema.DiversifyVector) -> None:
    mh = ctx.token_key(v.algorithm, v.master)
    for purpose in KeyPurpose:
        name = purpose.name.lower()
        if v.expect.wants(name):
            h = ctx.own(diversify_key(ctx.hsm, mh, v.method, v.kdd, purpose, len(v.master)))
            check_key(ctx, name, h, v.algorithm, v.expect)


def t_scp02_session_keys(ctx: Context, v: schema.Scp02SessionKeysVector) -> None:
    static = import_keyset(ctx, v.static)
    plan = {"s_enc": (static.enc, scp02.Scp02Constant.S_ENC), "s_mac": (static.mac, scp02.Scp02Constant.C_MAC),
            "s_rmac": (static.mac, scp02.Scp02Constant.R_MAC)}
    if static.dek is not None:  # the schema refuses an expected s_dek without a static DEK
        plan["s_dek"] = (static.dek, scp02.Scp02Constant.DEK)
    for name, (base, constant) in plan.items():
        if v.expect.wants(name):
            h = ctx.own(scp02.derive_session_key(ctx.hsm, base, constant, v.sequence_counter))
            check_key(ctx, name, h, KeyAlgorithm.DES3, v.expect)


def t_scp03_session_keys(ctx: Context, v: schema.Scp03SessionKeysVector) -> None:
    static = import_keyset(ctx, v.static)
    session = Scp03Session.open(ctx.hsm, static, v.host_challenge, v.card_challenge)
    try:
        for name in ("s_enc", "s_mac", "s_rmac"):
            check_key(ctx, name, getattr(session, name), KeyAlgorithm.AES, v.expect)
        if "card_cryptogram" in v.expect.full:
            equal("card_cryptogram", session.card_cryptogram(), v.expect.full["card_cryptogram"])
        if "host_cryptogram" in v.expect.full:
            equal("host_cryptogram", session.host_cryptogram(), v.expect.full["host_cryptogram"])
    finally:
        session.close()


def t_scp03_card_challenge(ctx: Context, v: schema.Scp03CardChallengeVector) -> None:
    h = ctx.token_key(KeyAlgorithm.AES, v.enc)
    equal("card challenge", card_challenge(ctx.hsm, h, v.sequence_counter, v.aid, len(v.expect)), v.expect)


def open_channel(ctx: Context, hs: sm.Handshake) -> SecureChannel:
    """INITIALIZE UPDATE, card cryptogram, EXTERNAL AUTHENTICATE as the vector describes."""
    if isinstance(hs.keys, sm.MasterKey):
        ch = SecureChannel(ctx.hsm, hs.scp, diversifier=diversifier(ctx, hs.keys), security_level=hs.security_level,
                           i=hs.i)
    else:
        ch = SecureChannel(ctx.hsm, hs.scp, static=import_keyset(ctx, hs.keys), security_level=hs.security_level,
                           i=hs.i)
    ctx.channel(ch)
    equal("INITIALIZE UPDATE", ch.initialize_update(hs.kvn, hs.host_challenge, with_le=hs.with_le), hs.iu_command)
    try:
        ch.verify_card_response(hs.iu_response)
    except CryptogramMismatch:
        raise Mismatch("card cryptogram mismatch (no EXTERNAL AUTHENTICATE built)") from None
    equal("EXTERNAL AUTHENTICATE", ch.external_authenticate(), hs.external_authenticate)
    return ch


def t_secure_channel(ctx: Context, v: sm.SecureChannelVector) -> None:
    ch = open_channel(ctx, v.handshake)
    for n, cmd in enumerate(v.commands, 1):
        equal(f"command {n} wrapped", ch.wrap(cmd.plain), cmd.wrapped)
        if cmd.response is not None:
            try:
                got = ch.unwrap(cmd.response.raw)
            except MacMismatch as exc:
                raise Mismatch(f"command {n} response refused: {exc}") from None
            equal(f"command {n} response", got, cmd.response.plain)


def t_put_key(ctx: Context, v: sm.PutKeyVector) -> None:
    """After a full handshake, or (SCP02, `sequence_counter` form) with the session DEK of that counter."""
    if isinstance(v.form, sm.CounterDek):
        static = ctx.token_key(KeyAlgorithm.DES3, v.form.dek)
        dek = ctx.own(scp02.derive_session_key(ctx.hsm, static, scp02.Scp02Constant.DEK, v.form.sequence_counter))
    else:
        dek = open_channel(ctx, v.form).session_dek()
    algorithm = schema.SCP_ALGORITHM[v.scp]
    if isinstance(v.new_keys, sm.DiversifiedKeys):
        ks = ctx.keyset(diversifier(ctx, v.new_keys.master).keyset(ctx.hsm, v.new_keys.kdd, wrappable=True))
        handles, length = [ks.enc, ks.mac, ks.dek], ks.length
    else:
        length = len(v.new_keys[0])
        ktype = templates.key_type(algorithm, length)
        handles = [ctx.session_key(ktype, k, wrappable=True) for k in v.new_keys]
    new = [putkey.NewKey(h, algorithm, length) for h in handles if h is not None]
    cmd = putkey.build_put_key(ctx.hsm, v.scp, dek, v.old_kvn, v.new_kvn, new, v.key_id)
    equal("PUT KEY", cmd.apdu, v.expect)


def _flip(text: str, pos: int) -> str:
    return text[:pos] + ("1" if text[pos] == "0" else "0") + text[pos + 1:]


def t_tr31_unwrap(ctx: Context, v: schema.Tr31UnwrapVector) -> None:
    kh = ctx.token_key(schema.TR31_VERSION_ALGORITHM[v.version], v.kbpk)
    imported = tr31.import_key_block(ctx.hsm, kh, len(v.kbpk), v.key_block)
    ctx.own(imported.handle)
    key = v.expect_key + v.expect_key if len(v.expect_key) == tr31.SINGLE_DES_LENGTH else v.expect_key
    key_alg = KeyAlgorithm.DES3 if imported.header.algorithm == "T" else KeyAlgorithm.AES
    ctx.same_key(imported.handle, templates.key_type(key_alg, len(key)), key, "key")
    header = imported.header
    fields = {"version": header.version, "usage": header.usage, "algorithm": header.algorithm,
              "mode": header.mode, "key_version": header.key_version, "exportability": header.exportability,
              "optional_blocks": f"{len(header.optional_blocks):02d}"}
    for name, want in v.expect_header.items():
        if fields[name] != want:
            raise Mismatch(f"header {name}: got {shown(fields[name])}, expected {shown(want)}")

    def import_altered(block: str) -> int:
        return tr31.import_key_block(ctx.hsm, kh, len(v.kbpk), block).handle

    _, key_start = tr31.parse_header(v.key_block)
    for where, pos in (("header", TR31_VERSION_POSITION), ("encrypted key", key_start + 1),
                       ("MAC", len(v.key_block) - 3)):
        altered = partial(import_altered, _flip(v.key_block, pos))
        ctx.refuses(MacMismatch, f"a key block with a changed {where}", altered)


def t_aes_key_wrap(ctx: Context, v: schema.AesKeyWrapVector) -> None:
    kh = ctx.token_key(KeyAlgorithm.AES, v.kek)
    ktype = KeyType.AES if len(v.key) in VALID_LENGTHS[KeyAlgorithm.AES] else KeyType.GENERIC_SECRET
    # Unwrap first (production template: sensitive, not extractable), then the negative checks, then wrap.
    out = ctx.own(aeskw.unwrap_key(ctx.hsm, kh, v.expect, padding=v.padding, key_type=ktype))
    if ktype == KeyType.AES:
        ctx.same_key(out, ktype, v.key, "unwrapped key")
    else:  # generic secrets of any length: compare re-wrapped test copies (HMAC refuses short keys)
        copy = ctx.own(aeskw.unwrap_key(ctx.hsm, kh, v.expect, padding=v.padding, key_type=ktype,
                                        template=templates.wrappable_session_key(ktype)))
        ref = ctx.session_key(ktype, v.key, wrappable=True)
        a, b = (aeskw.wrap_key(ctx.hsm, kh, h, padding=True, native_unaligned=True) for h in (copy, ref))
        if not hsmops.same(a, b):
            raise Mismatch("unwrapped key differs")
    for bit in (0, 8 * len(v.expect) // 2, 8 * len(v.expect) - 1):
        bad = bytearray(v.expect)
        bad[bit // 8] ^= 1 << (bit % 8)
        ctx.refuses(UnwrapFailed, f"a wrapped key with bit {bit} flipped",
                    partial(aeskw.unwrap_key, ctx.hsm, kh, bytes(bad), padding=v.padding, key_type=ktype))
    src = ctx.session_key(ktype, v.key, wrappable=True)
    equal("wrapped", aeskw.wrap_key(ctx.hsm, kh, src, padding=v.padding, key_length=len(v.key)), v.expect)


def t_dek_encrypt(ctx: Context, v: schema.DekEncryptVector) -> None:
    dek = ctx.token_key(schema.SCP_ALGORITHM[v.scp], v.dek)
    if v.sequence_counter is not None:  # SCP02: the session DEK of that counter
        dek = ctx.own(scp02.derive_session_key(ctx.hsm, dek, scp02.Scp02Constant.DEK, v.sequence_counter))
    equal("encrypted", storedata.encrypt_sensitive(ctx.hsm, v.scp, dek, v.data), v.expect)


def t_store_data_keys(ctx: Context, v: schema.StoreDataKeysVector) -> None:
    dek = ctx.token_key(KeyAlgorithm.AES, v.dek)
    entries = [storedata.DgiKey(key_id, ctx.session_key(KeyType.AES, value, wrappable=True), len(value))
               for key_id, value in v.keys]
    equal("DGIs", storedata.key_dgis(ctx.hsm, dek, v.header, entries), v.expect)


def t_sm_wrap(ctx: Context, v: sm.SmWrapVector) -> None:
    """Test hook: a channel seeded with the vector's session keys (never reachable from production)."""
    algorithm = schema.SCP_ALGORITHM[v.scp]
    dummy = KeySet(algorithm, len(v.s_enc), 0, 0)
    ch = ctx.channel(SecureChannel(ctx.hsm, v.scp, static=dummy, security_level=v.security_level, i=v.i))

    def obj(value: bytes) -> int:
        return ctx.session_key(templates.key_type(algorithm, len(value)), value)

    if v.scp is Scp.SCP02:
        ch._s02 = scp02.Scp02Session(ctx.hsm, dummy, b"\0\0", Scp02Option(v.i), s_enc=obj(v.s_enc),
                                     s_mac=obj(v.s_mac), s_mac_single=obj(v.s_mac[:8] * 2), icv=v.initial)
    else:
        ch._s03 = Scp03Session(ctx.hsm, 8, b"", b"", s_enc=obj(v.s_enc), s_mac=obj(v.s_mac),
                               s_rmac=obj(v.s_rmac or v.s_mac), chaining=v.initial)
    ch.state = State.OPEN
    for n, cmd in enumerate(v.commands, 1):
        equal(f"command {n} wrapped", ch.wrap(cmd.plain), cmd.wrapped)


def t_rsa_pkcs1_sign(ctx: Context, v: schema.RsaPkcs1SignVector) -> None:
    """The signature function of DM tokens and RSA DAPs (`dm.rsa_sign`, the hash GP picks for the key size)."""
    key = ctx.rsa_private_key(v.key)
    equal("signature", dm.rsa_sign(ctx.hsm, key, dm.signature_hash(v.bits), v.message), v.expect)


def _unseal_refused(what: str, attempt: Callable[[], bytes]) -> None:
    """A negative AES-GCM check: `attempt` must raise UnsealFailed (other errors propagate: an ERROR line)."""
    try:
        attempt()
    except UnsealFailed:
        return
    raise Mismatch(f"{what} was opened")


def t_aes_gcm(ctx: Context, v: schema.AesGcmVector) -> None:
    """The sealing functions of `KeyService.apps` (`sealing.encrypt` / `decrypt`, C_Encrypt / C_Decrypt with
    CKM_AES_GCM); a changed tag, ciphertext or additional data must not open."""
    kh = ctx.token_key(KeyAlgorithm.AES, v.key)
    sealed = v.ciphertext + v.tag
    if v.plaintext is None:
        _unseal_refused("a ciphertext the vector marks FAIL",
                        partial(sealing.decrypt, ctx.hsm, kh, v.iv, sealed, v.aad))
        return
    equal("ciphertext and tag", sealing.encrypt(ctx.hsm, kh, v.iv, v.plaintext, v.aad), sealed)
    equal("plaintext", sealing.decrypt(ctx.hsm, kh, v.iv, sealed, v.aad), v.plaintext)
    altered = [("tag", sealed[:-1] + bytes([sealed[-1] ^ 1]), v.aad), ("additional data", sealed, v.aad + b"\0")]
    if v.ciphertext:
        altered.append(("ciphertext", bytes([sealed[0] ^ 0x80]) + sealed[1:], v.aad))
    for where, data, aad in altered:
        _unseal_refused(f"a value with a changed {where}", partial(sealing.decrypt, ctx.hsm, kh, v.iv, data, aad))


@dataclass(frozen=True)
class VectorType(Generic[V]):
    """How one `type` is parsed (strictly, before any HSM work) and checked."""

    parse: Callable[[Fields], V]
    check: Callable[[Context, V], None]


HANDLERS: Final[dict[str, VectorType[Any]]] = {
    "kcv": VectorType(schema.parse_kcv, t_kcv),
    "diversify": VectorType(schema.parse_diversify, t_diversify),
    "scp02_session_keys": VectorType(schema.parse_scp02_session_keys, t_scp02_session_keys),
    "scp03_session_keys": VectorType(schema.parse_scp03_session_keys, t_scp03_session_keys),
    "scp03_card_challenge": VectorType(schema.parse_scp03_card_challenge, t_scp03_card_challenge),
    "secure_channel": VectorType(sm.parse_secure_channel, t_secure_channel),
    "put_key": VectorType(sm.parse_put_key, t_put_key),
    "tr31_unwrap": VectorType(schema.parse_tr31_unwrap, t_tr31_unwrap),
    "aes_key_wrap": VectorType(schema.parse_aes_key_wrap, t_aes_key_wrap),
    "dek_encrypt": VectorType(schema.parse_dek_encrypt, t_dek_encrypt),
    "store_data_keys": VectorType(schema.parse_store_data_keys, t_store_data_keys),
    "sm_wrap": VectorType(sm.parse_sm_wrap, t_sm_wrap),
    "rsa_pkcs1_sign": VectorType(schema.parse_rsa_pkcs1_sign, t_rsa_pkcs1_sign),
    "aes_gcm": VectorType(schema.parse_aes_gcm, t_aes_gcm),
}
