"""PUT KEY payloads for a new key set (GPCS 2.3.1 §11.8; Amd D §7.2.2 for AES).

Command (§11.8.2): CLA 80, INS D8, P1 = old KVN (00: new key set), P2 = 80 | first key id (several keys),
data = new KVN || key data field per key. Key data field (§11.8.2.3, Table 11-70/11-71):
- SCP02 (3DES): '80' || '10' || 3DES-ECB(session DEK, key) || '03' || KCV (3DES over 8 zero bytes); the key
  bytes are encrypted as they are, parity bits included, as the published traces of GlobalPlatformPro and NXP
  JCShell show (tests/vectors/put_key_gpp.json, put_key_parity_jcshell.json);
- SCP03 (AES): '88' || L || key length || AES-CBC(static DEK, ICV 0, key) || '03' || KCV (AES over 16 x 01),
  L = 1 + length of the encrypted key (GlobalPlatformPro's and the Amd D layout).
- RSA public key (§11.8.2.3, Table 11-16; the DM token key, KVN '70', or an RSA DAP key, KVN '73'): 'A1' ‖
  BER length ‖ modulus ‖ '00', then 'A0' ‖ length ‖ public exponent ‖ '00': components in clear, each with an
  empty check value (`build_put_public_key`). A 1024-bit key fits one short command; a longer one does not
  (268 bytes of data for 2048 bits) and is refused: the secure channel speaks short APDUs only.
The response (§11.8.3) is the new KVN followed by the KCVs (none for an RSA key); `check_response` verifies them.

Strategies (strategy.py):
- SCP03: C_WrapKey with AES_CBC under the static DEK (`native_wrap`). The new keys must be wrappable
  (diversified with `wrappable=True`, or created CKA_EXTRACTABLE); the key value never reaches the host.
- SCP02: SoftHSM2 has no 3DES wrap. The new key is wrapped (RFC 3394) under a one-time transport key,
  unwrapped on the host (`hsmops.clear_value`) and re-encrypted under the session DEK with C_Encrypt
  (`host_memory_card_key`): the new *card* key transits host memory; master keys never do (not extractable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, unique
from typing import Final

from pkcs11.mechanisms import Mechanism

from globalplatform import tlv
from globalplatform.apdu import SHORT_NC_MAX, Cla, CommandApdu, Ins
from globalplatform.kcv import DEFAULT_LENGTH, KcvMethod
from globalplatform.keys import GpKeyType, KeyAlgorithm, check_length
from globalplatform.scp import Scp
from keyservice.errors import InvalidInput, KcvMismatch, gp_input
from keyservice.gp import hsmops
from keyservice.gp.channel import SecureChannel
from keyservice.gp.kcv import kcv
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

SCP02_KEY_LENGTH: Final = 16
KVN_MAX: Final = 0x7F


@unique
class PutKeyP2(IntEnum):
    """P2 of PUT KEY (GPCS 2.3.1 Table 11-68)."""

    MULTIPLE_KEYS = 0x80
    KEY_ID_MASK = 0x7F


@dataclass(frozen=True)
class NewKey:
    """A key to put: its handle, algorithm and length in bytes (no value)."""

    handle: int
    algorithm: KeyAlgorithm
    length: int


@dataclass(frozen=True)
class PutKeyCommand:
    """The plain PUT KEY APDU (before secure-channel wrapping) and the KCVs the card must return."""

    apdu: bytes
    new_kvn: int
    kcvs: tuple[bytes, ...]


def key_data_field(hsm: Hsm, scp: Scp, dek: int, key: NewKey) -> tuple[bytes, bytes]:
    """One key data field (§11.8.2.3) and the key's KCV."""
    with gp_input():
        check_length(key.algorithm, key.length)
    check = kcv(hsm, key.handle, key.algorithm, KcvMethod.GP, DEFAULT_LENGTH)
    if scp is Scp.SCP02:
        hsm.strategy(CryptoStep.PUT_KEY_SCP02)
        if key.algorithm is not KeyAlgorithm.DES3 or key.length != SCP02_KEY_LENGTH:
            raise InvalidInput("SCP02 PUT KEY carries 16-byte 3DES keys")
        clear = hsmops.clear_value(hsm, key.handle)[: key.length]
        cgram = hsmops.ecb(hsm, dek, KeyAlgorithm.DES3, clear)
        del clear
        field = bytes([GpKeyType.DES, len(cgram)]) + cgram
    else:
        hsm.strategy(CryptoStep.PUT_KEY_SCP03)
        if key.algorithm is not KeyAlgorithm.AES:
            raise InvalidInput("SCP03 PUT KEY carries AES keys")
        with hsm.lock:
            cgram = hsm.raw.wrap(dek, Mechanism.AES_CBC, key.handle, bytes(hsmops.CIPHERS[key.algorithm].block))
        field = bytes([GpKeyType.AES, len(cgram) + 1, key.length]) + cgram
    return field + bytes([len(check)]) + check, check


def _check_kvns(old_kvn: int, new_kvn: int, key_id: int) -> None:
    for name, value in (("old KVN", old_kvn), ("new KVN", new_kvn)):
        if not 0 <= value <= KVN_MAX:
            raise InvalidInput(f"{name} {value} is outside 00..7F")
    if not 1 <= key_id <= PutKeyP2.KEY_ID_MASK:
        raise InvalidInput(f"key id {key_id} is outside 01..7F")


def build_put_key(hsm: Hsm, scp: Scp, dek: int, old_kvn: int, new_kvn: int, keys: Sequence[NewKey],
                  key_id: int = 1) -> PutKeyCommand:
    """The plain PUT KEY command for `keys` (ENC, MAC, DEK order) under `dek`.

    `dek` is the SCP02 session DEK or the SCP03 static DEK (`SecureChannel.session_dek()`).
    """
    _check_kvns(old_kvn, new_kvn, key_id)
    if not keys:
        raise InvalidInput("PUT KEY needs at least one key")
    fields, kcvs = [], []
    for key in keys:
        field, check = key_data_field(hsm, scp, dek, key)
        fields.append(field)
        kcvs.append(check)
    p2 = (PutKeyP2.MULTIPLE_KEYS if len(keys) > 1 else 0) | key_id
    data = bytes([new_kvn]) + b"".join(fields)
    if len(data) > SHORT_NC_MAX:
        raise InvalidInput(f"PUT KEY data of {len(data)} bytes does not fit a short APDU")
    return PutKeyCommand(CommandApdu(Cla.GP, Ins.PUT_KEY, old_kvn, p2, data).to_bytes(), new_kvn, tuple(kcvs))


def build_put_public_key(old_kvn: int, new_kvn: int, modulus: bytes, exponent: bytes,
                         key_id: int = 1) -> PutKeyCommand:
    """The plain PUT KEY command for an RSA public key (modulus and exponent in clear, no check values)."""
    _check_kvns(old_kvn, new_kvn, key_id)
    fields = b"".join(bytes([key_type]) + tlv.encode_length(len(value)) + value + bytes([0])
                      for key_type, value in ((GpKeyType.RSA_MODULUS, modulus),
                                              (GpKeyType.RSA_PUBLIC_EXPONENT, exponent)))
    data = bytes([new_kvn]) + fields
    if len(data) > SHORT_NC_MAX:
        raise InvalidInput(f"a {8 * len(modulus)}-bit RSA public key does not fit one short PUT KEY command "
                           f"({len(data)} bytes of data, at most {SHORT_NC_MAX}); the secure channel speaks short "
                           "APDUs only: use a 1024-bit key for a card that takes the key in one command")
    return PutKeyCommand(CommandApdu(Cla.GP, Ins.PUT_KEY, old_kvn, key_id, data).to_bytes(), new_kvn, ())


def put_key(channel: SecureChannel, hsm: Hsm, old_kvn: int, new_kvn: int, keys: Sequence[NewKey],
            key_id: int = 1) -> PutKeyCommand:
    """`build_put_key` with the channel's DEK (session DEK for SCP02, static DEK for SCP03)."""
    return build_put_key(hsm, channel.scp, channel.session_dek(), old_kvn, new_kvn, keys, key_id)


def check_response(command: PutKeyCommand, response_data: bytes) -> None:
    """Verify the PUT KEY response: new KVN || KCVs (§11.8.3.1); KcvMismatch otherwise."""
    expect = bytes([command.new_kvn]) + b"".join(command.kcvs)
    if not hsmops.same(expect, response_data):
        raise KcvMismatch("the card's PUT KEY response does not confirm the new keys")
