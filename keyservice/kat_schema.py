"""One frozen dataclass per KAT vector type (docs/kat-format.md), parsed strictly before any HSM work.

Each `parse_*` reads its fields through `kat_fields.Fields` (the runner refuses the fields left unread), so a
vector that reaches a check has the right JSON types, hex, lengths and enum values; what remains to go wrong
is the cryptography. The secure-messaging types (`secure_channel`, `put_key`, `sm_wrap`) are in kat_schema_sm.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from globalplatform.initupdate import KDD_LENGTH
from globalplatform.kcv import KCV_LENGTHS, KcvMethod
from globalplatform.keys import VALID_LENGTHS, KeyAlgorithm
from globalplatform.scp import Scp
from keyservice import sealing
from keyservice.exchange import aeskw, tr31
from keyservice.gp import dm, scp02, scp03
from keyservice.gp.diversify import ALGORITHM, DivMethod
from keyservice.gp.storedata import KeyDgiHeader
from keyservice.kat_fields import Fields, VectorError, one_of

KEYSET: Final = ("enc", "mac", "dek")
KEY_LENGTHS: Final = {a: VALID_LENGTHS[a] for a in (KeyAlgorithm.AES, KeyAlgorithm.DES3)}
SCP_ALGORITHM: Final = {Scp.SCP02: KeyAlgorithm.DES3, Scp.SCP03: KeyAlgorithm.AES}
GP_KCV_LENGTH: Final = 3  # `expect_kcv`: GPCS 2.3.1 §B.6 / Amd D §7.2.2 check values
MAX_DGI_KEYS: Final = 23  # DGI 00B9 with a one-byte length: 18-byte control reference + 10 bytes per key
AID_LENGTHS: Final = range(5, 17)  # ISO/IEC 7816-5
TR31_VERSION_ALGORITHM: Final = {tr31.Version.B: KeyAlgorithm.DES3, tr31.Version.D: KeyAlgorithm.AES}
TR31_KEY_LENGTHS: Final = (8, 16, 24, 32)
TR31_HEADER_FIELDS: Final = ("version", "usage", "algorithm", "mode", "key_version", "exportability",
                             "optional_blocks")
SCP02_SESSION_KEYS: Final = ("s_enc", "s_mac", "s_rmac", "s_dek")
SCP03_SESSION_KEYS: Final = ("s_enc", "s_mac", "s_rmac")
SCP03_CRYPTOGRAMS: Final = ("card_cryptogram", "host_cryptogram")
BLOCK: Final = {Scp.SCP02: scp02.BLOCK, Scp.SCP03: scp03.BLOCK}


def key(f: Fields, name: str, algorithm: KeyAlgorithm) -> bytes:
    return f.hex(name, KEY_LENGTHS[algorithm])


@dataclass(frozen=True)
class KeyValues:
    """Clear values of a key set `{"enc", "mac", "dek"}` (`dek` optional)."""

    algorithm: KeyAlgorithm
    enc: bytes
    mac: bytes
    dek: bytes | None


def key_values(f: Fields, name: str, algorithm: KeyAlgorithm, required: Collection[str],
               allowed: Collection[str] = KEYSET, lengths: Collection[int] | None = None) -> dict[str, bytes]:
    """The keys of a key set object: `required` ones, and those of `allowed` that are given."""
    ks = f.obj(name, "a key set" if allowed == KEYSET else f"this key set ({one_of(allowed)})")
    values = {k: ks.hex(k, lengths or KEY_LENGTHS[algorithm]) for k in KEYSET
              if k in required or (k in allowed and ks.has(k))}
    ks.close()
    for k, value in values.items():  # one length per key set
        first = next(iter(values))
        if len(value) != len(values[first]):
            raise VectorError(f"is {len(value)} bytes, but {first!r} is {len(values[first])}", ks.path(k))
    return values


def key_set(f: Fields, name: str, algorithm: KeyAlgorithm, lengths: Collection[int] | None = None) -> KeyValues:
    """A key set with `enc` and `mac`, `dek` optional."""
    values = key_values(f, name, algorithm, ("enc", "mac"), lengths=lengths)
    return KeyValues(algorithm, values["enc"], values["mac"], values.get("dek"))


@dataclass(frozen=True)
class Expected:
    """`expect` (full values) and `expect_kcv` (3-byte GP KCVs), each any subset of the type's names."""

    full: Mapping[str, bytes]
    kcvs: Mapping[str, bytes]

    def wants(self, name: str) -> bool:
        return name in self.full or name in self.kcvs


def expected(f: Fields, lengths: Mapping[str, Collection[int]], kcv_names: Collection[str]) -> Expected:
    def read(name: str, allowed: Mapping[str, Collection[int]]) -> dict[str, bytes]:
        if not f.has(name):
            return {}
        obj = f.obj(name, f"'{name}' ({one_of(allowed)})")
        values = {k: obj.hex(k, allowed[k]) for k in allowed if obj.has(k)}
        obj.close()
        if not values:
            raise VectorError("is empty", f.path(name))
        return values

    full, kcvs = read("expect", lengths), read("expect_kcv", dict.fromkeys(kcv_names, (GP_KCV_LENGTH,)))
    if not full and not kcvs:
        raise VectorError("is missing (give 'expect' or 'expect_kcv')", f.path("expect"))
    return Expected(full, kcvs)


@dataclass(frozen=True)
class KcvVector:
    key: bytes
    algorithm: KeyAlgorithm
    method: KcvMethod
    length: int
    expect: bytes


def parse_kcv(f: Fields) -> KcvVector:
    algorithm = f.choice("algorithm", KeyAlgorithm, (KeyAlgorithm.DES3, KeyAlgorithm.AES))
    method = f.choice("method", KcvMethod, (KcvMethod.GP, KcvMethod.AES_ZERO, KcvMethod.AES_CMAC))
    length = f.integer("length", KCV_LENGTHS)
    if method is not KcvMethod.GP and algorithm is not KeyAlgorithm.AES:
        raise VectorError(f"is {method.value}, which applies to AES keys only", f.path("method"))
    return KcvVector(key(f, "key", algorithm), algorithm, method, length, f.hex("expect", (length,)))


@dataclass(frozen=True)
class DiversifyVector:
    method: DivMethod
    master: bytes
    kdd: bytes
    expect: Expected

    @property
    def algorithm(self) -> KeyAlgorithm:
        return ALGORITHM[self.method]


def parse_diversify(f: Fields) -> DiversifyVector:
    method = f.choice("method", DivMethod)
    lengths = dict.fromkeys(KEYSET, KEY_LENGTHS[ALGORITHM[method]])
    return DiversifyVector(method, key(f, "master", ALGORITHM[method]), f.hex("kdd", (KDD_LENGTH,)),
                           expected(f, lengths, KEYSET))


@dataclass(frozen=True)
class Scp02SessionKeysVector:
    static: KeyValues
    sequence_counter: bytes
    expect: Expected


def parse_scp02_session_keys(f: Fields) -> Scp02SessionKeysVector:
    static = key_set(f, "static", KeyAlgorithm.DES3)
    counter = f.hex("sequence_counter", (scp02.COUNTER_LENGTH,))
    expect = expected(f, dict.fromkeys(SCP02_SESSION_KEYS, (scp02.SESSION_KEY_LENGTH,)), SCP02_SESSION_KEYS)
    if expect.wants("s_dek") and static.dek is None:
        raise VectorError("is missing (the vector expects s_dek)", f.path("static.dek"))
    return Scp02SessionKeysVector(static, counter, expect)


@dataclass(frozen=True)
class Scp03SessionKeysVector:
    static: KeyValues
    host_challenge: bytes
    card_challenge: bytes
    expect: Expected


def parse_scp03_session_keys(f: Fields) -> Scp03SessionKeysVector:
    static = key_set(f, "static", KeyAlgorithm.AES)
    host = f.hex("host_challenge", scp03.CHALLENGE_LENGTHS)
    card = f.hex("card_challenge", (len(host),))
    lengths: dict[str, Collection[int]] = {**dict.fromkeys(SCP03_SESSION_KEYS, VALID_LENGTHS[KeyAlgorithm.AES]),
                                           **dict.fromkeys(SCP03_CRYPTOGRAMS, (len(host),))}
    return Scp03SessionKeysVector(static, host, card, expected(f, lengths, SCP03_SESSION_KEYS))


@dataclass(frozen=True)
class Scp03CardChallengeVector:
    enc: bytes
    sequence_counter: bytes
    aid: bytes
    expect: bytes


def parse_scp03_card_challenge(f: Fields) -> Scp03CardChallengeVector:
    enc = key_values(f, "static", KeyAlgorithm.AES, ("enc",), ("enc",))["enc"]
    return Scp03CardChallengeVector(enc, f.hex("sequence_counter", (scp03.SEQUENCE_COUNTER_LENGTH,)),
                                    f.hex("aid", AID_LENGTHS), f.hex("expect", scp03.CHALLENGE_LENGTHS))


@dataclass(frozen=True)
class Tr31UnwrapVector:
    kbpk: bytes
    key_block: str
    version: tr31.Version
    expect_key: bytes
    expect_header: Mapping[str, str]


def parse_tr31_unwrap(f: Fields) -> Tr31UnwrapVector:
    block = f.text("key_block")
    if not (block.isascii() and block.isprintable()) or len(block) <= tr31.HEADER_LENGTH:
        raise VectorError(f"must be printable ASCII longer than the {tr31.HEADER_LENGTH}-character header",
                          f.path("key_block"))
    try:
        version = tr31.Version(block[0])
    except ValueError:
        raise VectorError(f"has version {block[0]!r}, expected one of {', '.join(tr31.Version)}",
                          f.path("key_block")) from None
    kbpk = key(f, "kbpk", TR31_VERSION_ALGORITHM[version])
    header: dict[str, str] = {}
    if f.has("expect_header"):
        obj = f.obj("expect_header", "a TR-31 header")
        header = {name: obj.text(name) for name in TR31_HEADER_FIELDS if obj.has(name)}
        obj.close()
    return Tr31UnwrapVector(kbpk, block, version, f.hex("expect_key", TR31_KEY_LENGTHS), header)


@dataclass(frozen=True)
class AesKeyWrapVector:
    kek: bytes
    key: bytes
    padding: bool
    expect: bytes


def parse_aes_key_wrap(f: Fields) -> AesKeyWrapVector:
    kek, padding = key(f, "kek", KeyAlgorithm.AES), f.boolean("padding")
    if padding:
        value = f.hex("key", minimum=1)
        wrapped = -(-len(value) // aeskw.SEMIBLOCK) * aeskw.SEMIBLOCK + aeskw.SEMIBLOCK  # RFC 5649 §4.1
    else:
        value = f.hex("key", minimum=aeskw.MIN_KW_INPUT)
        if len(value) % aeskw.SEMIBLOCK:
            raise VectorError(f"is {len(value)} bytes; RFC 3394 wraps a multiple of 8", f.path("key"))
        wrapped = len(value) + aeskw.SEMIBLOCK  # RFC 3394 §2.2.1
    return AesKeyWrapVector(kek, value, padding, f.hex("expect", (wrapped,)))


@dataclass(frozen=True)
class DekEncryptVector:
    scp: Scp
    dek: bytes
    sequence_counter: bytes | None
    data: bytes
    expect: bytes


def parse_dek_encrypt(f: Fields) -> DekEncryptVector:
    scp = f.choice("scp", Scp)
    dek = key_values(f, "static", SCP_ALGORITHM[scp], ("dek",), ("dek",))["dek"]
    counter = f.hex("sequence_counter", (scp02.COUNTER_LENGTH,)) if scp is Scp.SCP02 else None
    data = f.hex("data", minimum=1)
    if len(data) % BLOCK[scp]:
        raise VectorError(f"is {len(data)} bytes, not a multiple of {BLOCK[scp]}", f.path("data"))
    return DekEncryptVector(scp, dek, counter, data, f.hex("expect", (len(data),)))


@dataclass(frozen=True)
class StoreDataKeysVector:
    dek: bytes
    header: KeyDgiHeader
    keys: tuple[tuple[int, bytes], ...]
    expect: bytes


def parse_store_data_keys(f: Fields) -> StoreDataKeysVector:
    dek = key(f, "dek", KeyAlgorithm.AES)
    length = f.integer("key_length", VALID_LENGTHS[KeyAlgorithm.AES])
    header = KeyDgiHeader(f.byte("key_type"), length, f.byte("key_version"), f.byte("key_access"),
                          int.from_bytes(f.hex("key_purpose", (1, 2)), "big"))
    keys = []
    for k in f.objects("keys", "a key ('key_id', 'key')"):
        keys.append((k.byte("key_id"), k.hex("key", (length,))))
        k.close()
    if not 0 < len(keys) <= MAX_DGI_KEYS:
        raise VectorError(f"has {len(keys)} keys, expected 1 to {MAX_DGI_KEYS}", f.path("keys"))
    return StoreDataKeysVector(dek, header, tuple(keys), f.hex("expect", minimum=1))


@unique
class RsaHash(StrEnum):
    """The hashes of GP RSA signatures (GPCS 2.3.1 §C.4.1): SHA-1 for 1024-bit keys, SHA-256 above."""

    SHA1 = "sha1"
    SHA256 = "sha256"


RSA_HASHES: Final = {RsaHash.SHA1: dm.SignatureHash.SHA1, RsaHash.SHA256: dm.SignatureHash.SHA256}


@dataclass(frozen=True)
class RsaPkcs1SignVector:
    key: rsa.RSAPrivateNumbers
    bits: int
    hash: dm.SignatureHash
    message: bytes
    expect: bytes


def parse_rsa_pkcs1_sign(f: Fields) -> RsaPkcs1SignVector:
    der = f.hex("private_key_pkcs8", minimum=1)
    try:
        key = load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise VectorError("is not a PKCS#8 private key (DER)", f.path("private_key_pkcs8")) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size not in VALID_LENGTHS[KeyAlgorithm.RSA]:
        raise VectorError(f"is not an RSA key of {one_of(VALID_LENGTHS[KeyAlgorithm.RSA])} bits",
                          f.path("private_key_pkcs8"))
    hash_ = RSA_HASHES[f.choice("hash", RsaHash)]
    if hash_ is not dm.signature_hash(key.key_size):
        raise VectorError(f"is not the hash GP signs with at {key.key_size} bits (SHA-1 up to 1024 bits, SHA-256 "
                          "above)", f.path("hash"))
    size = -(-key.key_size // 8)
    return RsaPkcs1SignVector(key.private_numbers(), key.key_size, hash_, f.hex("message"),
                              f.hex("expect", (size,)))


@dataclass(frozen=True)
class AesGcmVector:
    """NIST SP 800-38D AES-GCM with a 96-bit IV and a 128-bit tag (the parameters `keyservice.sealing` uses);
    `plaintext` is None for a vector whose decryption must be refused."""

    key: bytes
    iv: bytes
    aad: bytes
    plaintext: bytes | None
    ciphertext: bytes
    tag: bytes


def parse_aes_gcm(f: Fields) -> AesGcmVector:
    key_value, iv = key(f, "key", KeyAlgorithm.AES), f.hex("iv", (sealing.NONCE_LENGTH,))
    aad = f.hex("aad")
    plaintext: bytes | None = None
    if f.has("fail"):
        if not f.boolean("fail"):
            raise VectorError("must be true when given (the ciphertext must be refused)", f.path("fail"))
        if f.has("plaintext"):
            raise VectorError("is not given in a vector that must be refused", f.path("plaintext"))
    else:
        plaintext = f.hex("plaintext")
    ciphertext = f.hex("ciphertext") if plaintext is None else f.hex("ciphertext", (len(plaintext),))
    for name, value in (("aad", aad), ("ciphertext", ciphertext)):
        if len(value) > sealing.DATA_MAX:
            raise VectorError(f"is {len(value)} bytes, expected at most {sealing.DATA_MAX}", f.path(name))
    return AesGcmVector(key_value, iv, aad, plaintext, ciphertext, f.hex("tag", (sealing.TAG_LENGTH,)))
