"""TR-31 / ANSI X9.143 key blocks, versions B (TDES) and D (AES), under a KBPK held in the HSM.

- Header (TR-31:2018 §A.4): 16 ASCII bytes: version, 4-digit block length, usage (2), algorithm, mode of
  use, key version (2), exportability, number of optional blocks (2), 2 reserved; then the optional blocks
  (id 2, hex length 2 counting the 4-byte header, data).
- KBEK / KBAK (TR-31:2018 §A.2.2 B, §A.2.3 D): CMAC(KBPK, counter || usage 0000 enc / 0001 MAC || 00 ||
  algorithm || key length in bits), blocks concatenated. Derived inside the HSM by CMAC emulation
  (`hsmops.cmac_derive`, *_ECB_ENCRYPT_DATA over the last CMAC blocks): the KBPK never leaves the HSM.
- MAC (§A.3.1 B: TDES-CMAC, 8 bytes; §A.3.2 D: AES-CMAC, 16 bytes) over header || clear payload; the MAC
  is the IV of the CBC encryption of the payload (2-byte key length in bits || key || padding).

Header codes are checked against the X9.143 tables (`tr31_header`) on import, before the MAC, and on export:
a code no table defines, or one the key usage does not allow, is InvalidInput naming field and allowed values.

SoftHSM2 gap: no TR-31 mechanism and no CBC *unwrap*, so the payload is decrypted with C_Decrypt and the
clear key transits host memory before it is created as a non-extractable token object (strategy
`host_memory_key_transit` in strategy.py; a profile may forbid it). For the same reason export takes the key
value from its caller: `vendor.export_key_block` reads an exportable key's value once, through a one-time
transport key (non-extractable keys cannot be read at all).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum, unique
from typing import Final

from pkcs11.constants import Attribute

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice import templates
from keyservice.errors import InvalidInput, MacMismatch, UnwrapFailed
from keyservice.exchange import tr31_header
from keyservice.gp import hsmops
from keyservice.gp.kcv import check_kcv
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

HEADER_LENGTH: Final = 16
OPT_HEADER_LENGTH: Final = 4
LENGTH_PREFIX: Final = 2
MAX_BLOCK_LENGTH: Final = 9999
SINGLE_DES_LENGTH: Final = 8


@unique
class Version(StrEnum):
    """Key block version ids supported (TR-31:2018 §A.4.1)."""

    B = "B"
    D = "D"


@unique
class KeyUsageDerivation(StrEnum):
    """Key usage indicator of the KBEK/KBAK derivation data (TR-31:2018 Table 1)."""

    ENCRYPTION = "0000"
    MAC = "0001"


# Algorithm indicator and length of the derivation data, by KBPK length (TR-31:2018 §A.2.2, §A.2.3).
_DERIVATION: Final[dict[tuple[Version, int], tuple[str, str]]] = {
    (Version.B, 16): ("0000", "0080"), (Version.B, 24): ("0001", "00C0"),
    (Version.D, 16): ("0002", "0080"), (Version.D, 24): ("0003", "00C0"), (Version.D, 32): ("0004", "0100"),
}

_ALGORITHM: Final[dict[Version, KeyAlgorithm]] = {Version.B: KeyAlgorithm.DES3, Version.D: KeyAlgorithm.AES}

# TR-31 key usage -> usage string the inventory stores (TR-31:2018 Table 6; unknown codes keep the code).
USAGES: Final[dict[str, str]] = {
    "B0": "bdk", "B1": "ikek", "C0": "cvk", "D0": "data_encryption", "E0": "emv_mk_ac", "E1": "emv_mk_smc",
    "E2": "emv_mk_smi", "E3": "emv_mk_dac", "E4": "emv_mk_dn", "E5": "emv_mk_card_perso", "E6": "emv_mk_other",
    "I0": "iv", "K0": "kek", "K1": "kbpk", "M0": "mac_16609", "M1": "mac_9797_1", "M3": "mac_x919",
    "M6": "cmac", "P0": "pin_encryption", "V0": "pin_verification", "V2": "pin_verification_visa",
}

# TR-31 algorithm letter -> (PKCS#11 key type, KCV algorithm) (TR-31:2018 Table 7).
_KEY_TYPES: Final[dict[str, KeyAlgorithm]] = {"T": KeyAlgorithm.DES3, "A": KeyAlgorithm.AES}


@dataclass(frozen=True)
class Header:
    """The fixed header fields and the optional blocks (id, data) of a key block."""

    version: str
    usage: str
    algorithm: str
    mode: str
    key_version: str = "00"
    exportability: str = "E"
    reserved: str = "00"
    optional_blocks: tuple[tuple[str, str], ...] = field(default=())

    @property
    def inventory_usage(self) -> str:
        """The usage string for the key inventory."""
        return USAGES.get(self.usage, f"tr31:{self.usage}")

    def encode(self, total_length: int) -> str:
        """The ASCII header with the given total block length (§A.4)."""
        opt = "".join(f"{bid}{len(data) + OPT_HEADER_LENGTH:02X}{data}" for bid, data in self.optional_blocks)
        return (f"{self.version}{total_length:04d}{self.usage}{self.algorithm}{self.mode}{self.key_version}"
                f"{self.exportability}{len(self.optional_blocks):02d}{self.reserved}{opt}")


def parse_header(block: str) -> tuple[Header, int]:
    """Parse the header and check it against the tables; returns it and where the encrypted key begins."""
    if len(block) < HEADER_LENGTH or not block.isascii() or not block[1:5].isdigit():
        raise UnwrapFailed("the key block header is malformed")
    if int(block[1:5]) != len(block):
        raise UnwrapFailed("the key block length field does not match the block")
    count_field = block[12:14]
    if not count_field.isdigit():
        raise UnwrapFailed("the key block header is malformed")
    pos, blocks = HEADER_LENGTH, []
    for _ in range(int(count_field)):
        try:
            length = int(block[pos + 2: pos + 4], 16)
        except ValueError:
            raise UnwrapFailed("an optional block is malformed") from None
        if length < OPT_HEADER_LENGTH or pos + length > len(block):
            raise UnwrapFailed("an optional block is malformed")
        blocks.append((block[pos: pos + 2], block[pos + OPT_HEADER_LENGTH: pos + length]))
        pos += length
    header = Header(block[0], block[5:7], block[7], block[8], block[9:11], block[11], block[14:16], tuple(blocks))
    tr31_header.check_header(header)
    return header, pos


def _version(letter: str) -> Version:
    try:
        return Version(letter)
    except ValueError:
        raise UnwrapFailed(f"key block version {letter!r} is not supported (B, D)") from None


def derive_block_keys(hsm: Hsm, kbpk: int, version: Version, kbpk_length: int) -> tuple[int, int]:
    """KBEK and KBAK as session objects (TR-31:2018 §A.2.2 / §A.2.3); the caller destroys them."""
    algorithm = _ALGORITHM[version]
    try:
        alg_id, bits = _DERIVATION[(version, kbpk_length)]
    except KeyError:
        raise InvalidInput(f"a version {version.value} KBPK cannot be {kbpk_length} bytes") from None
    block = hsmops.CIPHERS[algorithm].block
    count = -(-kbpk_length // block)
    template = hsmops.session_template(algorithm, kbpk_length)
    keys: list[int] = []
    try:
        for usage in (KeyUsageDerivation.ENCRYPTION, KeyUsageDerivation.MAC):
            msgs = [bytes([i]) + bytes.fromhex(usage.value + "00" + alg_id + bits) for i in range(1, count + 1)]
            keys.append(hsmops.cmac_derive(hsm, kbpk, algorithm, msgs, template))
    except BaseException:
        hsmops.destroy(hsm, *keys)
        raise
    return keys[0], keys[1]


@dataclass(frozen=True, repr=False)
class ImportedKey:
    """A key imported from a key block: its handle, header and inventory usage (never its value)."""

    handle: int
    header: Header
    usage: str
    length: int

    def __repr__(self) -> str:
        return f"ImportedKey({self.header.version}, usage={self.usage}, {self.length} bytes)"


def import_key_block(hsm: Hsm, kbpk: int, kbpk_length: int, block: str, *, label: str | None = None,
                     cka_id: bytes = b"", expected_kcv: bytes | None = None,
                     caps: frozenset[templates.Capability] = templates.ALL_CAPABILITIES) -> ImportedKey:
    """Verify and decrypt a version B/D key block; the key becomes a non-extractable object.

    A token object when `label` is given (recorded with `hsm.adopt`), else a session object. MacMismatch when
    the MAC does not verify, UnwrapFailed for a malformed block, KcvMismatch against `expected_kcv`.
    """
    hsm.strategy(CryptoStep.TR31_IMPORT)
    header, pos = parse_header(block)
    version = _version(header.version)
    algorithm = _ALGORITHM[version]
    bsz = hsmops.CIPHERS[algorithm].block
    mac_hex = 2 * bsz
    body = block[pos:]
    try:
        encrypted, mac = bytes.fromhex(body[:-mac_hex]), bytes.fromhex(body[-mac_hex:])
    except ValueError:
        raise UnwrapFailed("the key block is not hexadecimal where it must be") from None
    if len(body) <= mac_hex or not encrypted or len(encrypted) % bsz:
        raise UnwrapFailed("the encrypted key field is malformed")
    kbek, kbak = derive_block_keys(hsm, kbpk, version, kbpk_length)
    try:
        payload = hsmops.cbc_decrypt(hsm, kbek, algorithm, encrypted, mac)
        expect = hsmops.cmac(hsm, kbak, algorithm, block[:pos].encode() + payload)[:bsz]
        if not hsmops.same(expect, mac):
            raise MacMismatch("the key block MAC does not verify")
    finally:
        hsmops.destroy(hsm, kbek, kbak)
    bits = int.from_bytes(payload[:LENGTH_PREFIX], "big")
    if bits % 8 or bits // 8 > len(payload) - LENGTH_PREFIX:
        raise UnwrapFailed("the key length field is inconsistent")
    value = payload[LENGTH_PREFIX: LENGTH_PREFIX + bits // 8]
    key_alg = _KEY_TYPES.get(header.algorithm)
    if key_alg is None:
        raise UnwrapFailed(f"key algorithm {header.algorithm!r} is not supported (T, A)")
    if key_alg is KeyAlgorithm.DES3 and len(value) == SINGLE_DES_LENGTH:
        value = value + value  # single DES stored as 2-key 3DES K || K (same results; SoftHSM2 has no DES)
    ktype = templates.key_type(key_alg, len(value))
    with hsm.lock:
        if label is None:
            handle = hsm.raw.create({**templates.session_key(ktype), Attribute.VALUE: value})
        else:
            handle = hsm.create(label, cka_id, ktype, value, caps)
    if expected_kcv is not None:
        try:
            check_kcv(hsm, handle, key_alg, expected_kcv, KcvMethod.GP)
        except BaseException:
            if label is None:
                hsmops.destroy(hsm, handle)
            else:
                hsm.destroy(label)
            raise
    return ImportedKey(handle, header, header.inventory_usage, len(value))


def export_key_block(hsm: Hsm, kbpk: int, kbpk_length: int, header: Header, key_value: bytes, *,
                     padding: bytes | None = None) -> str:
    """Build a version B/D key block for `key_value` (supplied by the caller: strategy host memory)."""
    hsm.strategy(CryptoStep.TR31_EXPORT)
    tr31_header.check_header(header)
    version = _version(header.version)
    algorithm = _ALGORITHM[version]
    bsz = hsmops.CIPHERS[algorithm].block
    clear = (8 * len(key_value)).to_bytes(LENGTH_PREFIX, "big") + key_value
    fill = -len(clear) % bsz
    pad = secrets.token_bytes(fill) if padding is None else padding
    if len(pad) != fill:
        raise InvalidInput(f"the padding must be {fill} bytes")
    payload = clear + pad
    total = len(header.encode(0)) + 2 * len(payload) + 2 * bsz
    if total > MAX_BLOCK_LENGTH:
        raise InvalidInput("the key block would exceed 9999 characters")
    text = header.encode(total)
    kbek, kbak = derive_block_keys(hsm, kbpk, version, kbpk_length)
    try:
        mac = hsmops.cmac(hsm, kbak, algorithm, text.encode() + payload)[:bsz]
        encrypted = hsmops.cbc(hsm, kbek, algorithm, payload, mac)
    finally:
        hsmops.destroy(hsm, kbek, kbak)
    return text + encrypted.hex().upper() + mac.hex().upper()
