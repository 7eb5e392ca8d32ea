"""PUT KEY (GPCS 2.3.1 11.8): add or replace a key set, or keys in one, with several keys per command.

Key data field (11.8.2.3): type (1) || length (BER) || key data || KCV length (1) || KCV.
Symmetric components are encrypted with the DEK (SCP02: session DEK, 3DES-ECB; SCP03: static DEK, AES-CBC
IV zero); AES key data starts with the length of the clear key (11.8.2.3, Amd D 7.2.2.2). RSA public
keys are given as A1 (modulus) then A0 (exponent), in clear. Response: new KVN || KCV of each symmetric key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cardsim.apdu import CommandApdu, Response
from cardsim.keys import Key, KeySet, KeyType, ReservedKvn
from cardsim.primitives import equal, kcv
from cardsim.securechannel import SecureChannel, SecurityLevel
from cardsim.sw import SW, ApduError
from cardsim.tlv import read_length

if TYPE_CHECKING:
    from cardsim.card import Card

MULTIPLE_KEYS: Final = 0x80
KEY_ID_MASK: Final = 0x7F
KVN_MASK: Final = 0x7F
AES_LENGTHS: Final = frozenset({16, 24, 32})
DES_LENGTHS: Final = frozenset({16, 24})
SCP02: Final = 0x02


@dataclass(frozen=True)
class _Component:
    key_type: int
    value: bytes
    check: bytes


def _components(data: bytes) -> list[_Component]:
    out: list[_Component] = []
    pos = 0
    while pos < len(data):
        key_type = data[pos]
        length, start = read_length(data, pos + 1)
        end = start + length
        if end > len(data):
            raise ApduError(SW.WRONG_DATA, "key data overruns the command")
        if end == len(data):
            raise ApduError(SW.WRONG_DATA, "KCV length missing")
        kcv_length = data[end]
        check = data[end + 1 : end + 1 + kcv_length]
        if len(check) != kcv_length:
            raise ApduError(SW.WRONG_DATA, "KCV truncated")
        out.append(_Component(key_type, data[start:end], check))
        pos = end + 1 + kcv_length
    return out


def _symmetric(channel: SecureChannel, component: _Component, key_id: int) -> Key:
    key_type = KeyType(component.key_type)
    if key_type is KeyType.AES:
        if not component.value or component.value[0] not in AES_LENGTHS:
            raise ApduError(SW.WRONG_DATA, "AES key length")
        length = component.value[0]
        clear = channel.decrypt_sensitive(component.value[1:])[:length]
        if len(clear) != length:
            raise ApduError(SW.WRONG_DATA, "AES key data too short")
    else:
        clear = channel.decrypt_sensitive(component.value)
        if len(clear) not in DES_LENGTHS:
            raise ApduError(SW.WRONG_DATA, "DES key length")
    if component.check and not equal(kcv(clear, aes=key_type is KeyType.AES), component.check):
        raise ApduError(SW.WRONG_DATA, "key check value mismatch")
    return Key(key_id, key_type, clear)


def _keys(channel: SecureChannel, components: list[_Component], first_id: int) -> list[Key]:
    keys: list[Key] = []
    index = 0
    while index < len(components):
        component = components[index]
        key_id = first_id + len(keys)
        if component.key_type in (KeyType.AES, KeyType.DES):
            keys.append(_symmetric(channel, component, key_id))
            index += 1
        elif component.key_type == KeyType.RSA_MODULUS:
            if index + 1 >= len(components) or components[index + 1].key_type != KeyType.RSA_PUBLIC_EXPONENT:
                raise ApduError(SW.WRONG_DATA, "RSA modulus without exponent")
            exponent = components[index + 1].value
            keys.append(Key(key_id, KeyType.RSA_MODULUS, component.value, exponent))
            index += 2
        else:
            raise ApduError(SW.WRONG_DATA, f"unsupported key type {component.key_type:02X}")
    return keys


def handle(card: Card, apdu: CommandApdu) -> Response:
    """Add or replace keys in the selected SD."""
    channel = card.require_channel(SecurityLevel.C_MAC)
    sd = card.selected.sd
    if sd is None:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED)
    old_kvn = apdu.p1 & KVN_MASK
    first_id = apdu.p2 & KEY_ID_MASK
    if not first_id or not apdu.data:
        raise ApduError(SW.WRONG_P1P2 if not first_id else SW.WRONG_DATA)
    new_kvn = apdu.data[0]
    if not 0x01 <= new_kvn <= 0x7F:
        raise ApduError(SW.WRONG_DATA, "key version number out of range")
    keys = _keys(channel, _components(apdu.data[1:]), first_id)
    if len(keys) > 1 and not apdu.p2 & MULTIPLE_KEYS:
        raise ApduError(SW.WRONG_DATA, "several keys without P2 b8")
    scp_set = not ReservedKvn.TOKEN <= new_kvn <= 0x7F
    expected_type = KeyType.DES if sd.scp == SCP02 else KeyType.AES
    if scp_set and any(k.key_type is not expected_type for k in keys):
        raise ApduError(SW.WRONG_DATA, "key type does not match the secure channel protocol")
    if old_kvn == 0:
        if new_kvn in sd.keysets:
            raise ApduError(SW.WRONG_DATA, "key version number already present")
        target = KeySet(new_kvn)
    else:
        existing = sd.keysets.get(old_kvn)
        if existing is None:
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no key set with that version")
        if new_kvn != old_kvn and new_kvn in sd.keysets:
            raise ApduError(SW.WRONG_DATA, "key version number already present")
        target = KeySet(new_kvn, dict(existing.keys))
        del sd.keysets[old_kvn]
    for key in keys:
        target.keys[key.key_id] = key
    sd.keysets[new_kvn] = target
    if old_kvn == 0 and target.is_scp_set() and set(sd.keysets) - {new_kvn} <= {ReservedKvn.INITIAL}:
        sd.keysets.pop(ReservedKvn.INITIAL, None)  # the initial key set gives way to the first real one
    symmetric = (k for k in keys if k.key_type is not KeyType.RSA_MODULUS)
    checks = b"".join(kcv(k.value, aes=k.key_type is KeyType.AES) for k in symmetric)
    return Response(bytes([new_kvn]) + checks)
