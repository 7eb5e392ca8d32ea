"""Encryption of sensitive STORE DATA payloads (encrypted DGIs) under the DEK, inside the HSM.

- SCP02 (GPCS 2.3.1 §E.4.7, §11.11.2.2): 3DES-ECB under the *session* DEK (constant 0181).
- SCP03 (Amd D §7.2.2, §6.2.7 "sensitive data encryption"): AES-CBC with ICV zero under the *static* DEK.
The data must be a block multiple; `pad=True` appends method-2 padding 80 00.. first (EMV CPS §4.3 DGI
encryption). The data is perso data supplied by the caller; the DEK never leaves the HSM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from pkcs11.mechanisms import Mechanism

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from globalplatform.scp import Scp
from keyservice.errors import InvalidInput
from keyservice.gp import hsmops
from keyservice.gp.channel import SecureChannel
from keyservice.gp.kcv import kcv
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

DGI_SHORT_MAX: Final = 0xFE


def encrypt_sensitive(hsm: Hsm, scp: Scp, dek: int, data: bytes, *, pad: bool = False) -> bytes:
    """Encrypt one DGI value under the DEK handle appropriate for `scp`."""
    hsm.strategy(CryptoStep.STORE_DATA_DEK)
    algorithm = KeyAlgorithm.DES3 if scp is Scp.SCP02 else KeyAlgorithm.AES
    block = hsmops.CIPHERS[algorithm].block
    plain = hsmops.pad80(data, block) if pad else data
    if not plain or len(plain) % block:
        raise InvalidInput(f"sensitive data must be a non-empty multiple of {block} bytes (or pad=True)")
    if scp is Scp.SCP02:
        return hsmops.ecb(hsm, dek, algorithm, plain)
    return hsmops.cbc(hsm, dek, algorithm, plain, bytes(block))


def _check_tag(dgi: int) -> None:
    if not 0 <= dgi <= 0xFFFF:
        raise InvalidInput(f"DGI {dgi} is not a 2-byte tag")


def _framed(dgi: int, encrypted: bytes) -> bytes:
    """DGI tag (2) || length (1) || encrypted value (EMV CPS §A.1)."""
    if len(encrypted) > DGI_SHORT_MAX:
        raise InvalidInput("encrypted DGI longer than 254 bytes needs the 3-byte length form")
    return dgi.to_bytes(2, "big") + bytes([len(encrypted)]) + encrypted


def encrypt_dgi(channel: SecureChannel, hsm: Hsm, dgi: int, value: bytes, *, pad: bool = True) -> bytes:
    """DGI tag (2) || length || encrypted value, with the channel's DEK (EMV CPS §4.2)."""
    _check_tag(dgi)
    return _framed(dgi, encrypt_sensitive(hsm, channel.scp, channel.session_dek(), value, pad=pad))


def encrypt_key_dgi(hsm: Hsm, scp: Scp, dek: int, dgi: int, key: int, length: int) -> bytes:
    """A DGI whose value is the AES key object `key` (`length` bytes, wrappable), padded 80 00.. and encrypted
    under the DEK exactly as `encrypt_sensitive(..., pad=True)` encrypts a value.

    - SCP03 (`app_key_dgi_scp03`, `native_wrap`): C_WrapKey AES_CBC with ICV 0 gives the key's CBC blocks; the
      padding block 80 00.. is then encrypted by C_Encrypt AES_CBC with the last of them as IV, which continues
      the same CBC chain. The key value never reaches the host.
    - SCP02 (`app_key_dgi_scp02`, `host_memory_card_key`): SoftHSM2 has no 3DES wrap; the key's value is read
      through a one-time transport key (`hsmops.clear_value`) and 3DES-ECB-encrypted under the session DEK by
      the HSM. The key transits host memory for that call.
    """
    _check_tag(dgi)
    if scp is Scp.SCP03:
        hsm.strategy(CryptoStep.APP_KEY_DGI_SCP03)
        block = hsmops.CIPHERS[KeyAlgorithm.AES].block
        with hsm.lock:
            head = hsm.raw.wrap(dek, Mechanism.AES_CBC, key, bytes(block))
        return _framed(dgi, head + hsmops.cbc(hsm, dek, KeyAlgorithm.AES, hsmops.pad80(b"", block), head[-block:]))
    hsm.strategy(CryptoStep.APP_KEY_DGI_SCP02)
    clear = hsmops.clear_value(hsm, key)[:length]
    try:
        return _framed(dgi, encrypt_sensitive(hsm, scp, dek, clear, pad=True))
    finally:
        del clear


@dataclass(frozen=True)
class KeyDgiHeader:
    """Key information of DGI 00B9 (GPCS 2.3.1 §11.11.2.3; Amd D §7.3.2, kaoh/globalplatform layout)."""

    key_type: int
    key_length: int
    key_version: int
    key_access: int
    key_purpose: int


@dataclass(frozen=True)
class DgiKey:
    """One key to store: id, handle (wrappable), length in bytes."""

    key_id: int
    handle: int
    length: int


@unique
class KeyDgi(IntEnum):
    """DGIs of symmetric-key STORE DATA (GPCS 2.3.1 §11.11.2.3)."""

    KEY_INFO = 0x00B9
    AES_KEY = 0x8113


@unique
class KeyDgiTag(IntEnum):
    """Tags inside DGI 00B9 (GPCS 2.3.1 Table 11-93, Amd D Table 7-6)."""

    CONTROL_REFERENCE = 0xB7
    KEY_ENTRY = 0xB9
    KEY_TYPE = 0x80
    KEY_LENGTH = 0x81
    KEY_ID = 0x82
    KEY_VERSION = 0x83
    KCV = 0x84
    KEY_ACCESS = 0x96
    KEY_PURPOSE = 0x97


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) > 0x7F:
        raise InvalidInput("TLV value too long for a one-byte length")
    return bytes([tag, len(value)]) + value


def key_dgis(hsm: Hsm, static_dek: int, header: KeyDgiHeader, keys: Sequence[DgiKey]) -> bytes:
    """DGI 00B9 (key information with KCVs) then one DGI 8113 per key (AES-CBC under the static DEK, ICV 0).

    The keys are wrapped by the HSM (C_WrapKey AES_CBC): their values never reach host memory.
    """
    crt = b"".join((_tlv(KeyDgiTag.KEY_TYPE, bytes([header.key_type])),
                    _tlv(KeyDgiTag.KEY_LENGTH, bytes([header.key_length])),
                    _tlv(KeyDgiTag.KEY_VERSION, bytes([header.key_version])),
                    _tlv(KeyDgiTag.KEY_ACCESS, bytes([header.key_access])),
                    _tlv(KeyDgiTag.KEY_PURPOSE, header.key_purpose.to_bytes(2, "big"))))
    entries, blocks = [], []
    for key in keys:
        check = kcv(hsm, key.handle, KeyAlgorithm.AES, KcvMethod.GP)
        entries.append(_tlv(KeyDgiTag.KEY_ENTRY, _tlv(KeyDgiTag.KEY_ID, bytes([key.key_id]))
                            + _tlv(KeyDgiTag.KCV, check)))
        with hsm.lock:
            wrapped = hsm.raw.wrap(static_dek, Mechanism.AES_CBC, key.handle, bytes(16))
        blocks.append(KeyDgi.AES_KEY.to_bytes(2, "big") + bytes([len(wrapped)]) + wrapped)
    info = _tlv(KeyDgiTag.CONTROL_REFERENCE, crt) + b"".join(entries)
    return KeyDgi.KEY_INFO.to_bytes(2, "big") + bytes([len(info)]) + info + b"".join(blocks)
