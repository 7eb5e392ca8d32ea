"""Key sets of a Security Domain (GPCS 2.3.1 11.1.8 key version numbers, 11.3.3.1 key information template,
Table 11-16 key types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, unique
from typing import Any, Final

from cardsim.tlv import tlv

MAX_BASIC_LENGTH: Final = 0xFF
"""Key length in one byte: the basic key information format (GPCS 2.3.1 Table 11-28)."""
EXTENDED_FORMAT: Final = 0xFF
"""Key type 'FF': the extended key information format follows (GPCS 2.3.1 Table 11-16, Table 11-29)."""


@unique
class KeyType(IntEnum):
    """Key type coding, GPCS 2.3.1 Table 11-16."""

    DES = 0x80
    """Triple DES (2- or 3-key); 'DES' in GP means 3DES in ECB/CBC."""
    AES = 0x88
    """AES (GP Amd D)."""
    RSA_PUBLIC_EXPONENT = 0xA0
    """RSA public key, public exponent e component (clear)."""
    RSA_MODULUS = 0xA1
    """RSA public key, modulus N component (clear)."""


@unique
class KeyId(IntEnum):
    """Key identifiers within an SCP key set (GPCS 2.3.1 E.1.1, Amd D 4.1.3)."""

    ENC = 0x01
    """Secure channel encryption key (K-ENC)."""
    MAC = 0x02
    """Secure channel MAC key (K-MAC)."""
    DEK = 0x03
    """Data encryption key (K-DEK)."""


SYMMETRIC_LENGTHS: Final = {KeyType.DES: (16, 24), KeyType.AES: (16, 24, 32)}
"""Key lengths in bytes of the symmetric key types (two- or three-key 3DES; AES-128/192/256)."""


@unique
class ReservedKvn(IntEnum):
    """Key version numbers with a fixed meaning (GPCS 2.3.1 11.1.8)."""

    TOKEN = 0x70
    """Token verification key (DM tokens, GPCS C.4): an RSA public key in the ISD."""
    RECEIPT = 0x71
    """Receipt generation key (GPCS C.5): AES or DES, in the ISD."""
    DAP = 0x73
    """DAP verification key (GPCS C.2/C.3): AES or DES, in the SD with DAP Verification."""
    INITIAL = 0xFF
    """Initial (test) key set; removed when the first SCP key set is added by PUT KEY."""


@dataclass
class Key:
    """One key. For RSA public keys `value` is the modulus and `exponent` is e."""

    key_id: int
    key_type: KeyType
    value: bytes
    exponent: bytes = b""

    def __repr__(self) -> str:
        return f"Key(id={self.key_id:02X}, type={self.key_type.name}, length={len(self.value)})"

    def info(self, kvn: int) -> bytes:
        """The key information data object C0 (GPCS 2.3.1 11.3.3.1): the basic format (Table 11-28), or the
        extended one (Table 11-29) when a component is longer than the basic format's one length byte."""
        parts = [(self.key_type, self.value)]
        if self.key_type is KeyType.RSA_MODULUS:
            parts.append((KeyType.RSA_PUBLIC_EXPONENT, self.exponent))
        if all(len(value) <= MAX_BASIC_LENGTH for _, value in parts):
            components = b"".join(bytes([key_type, len(value)]) for key_type, value in parts)
        else:  # each component 'FF' type length(2), then key usage and key access lengths '00' (none given)
            components = b"".join(bytes([EXTENDED_FORMAT, key_type]) + len(value).to_bytes(2, "big")
                                  for key_type, value in parts) + bytes(2)
        return tlv(0xC0, bytes([self.key_id, kvn]) + components)

    def to_json(self) -> dict[str, Any]:
        """State-file form (hex)."""
        out: dict[str, Any] = {"id": self.key_id, "type": self.key_type.name, "value": self.value.hex()}
        if self.exponent:
            out["exponent"] = self.exponent.hex()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Key:
        """Inverse of `to_json`; ValueError for a key whose length its type does not have."""
        key = cls(
            int(data["id"]),
            KeyType[str(data["type"])],
            bytes.fromhex(str(data["value"])),
            bytes.fromhex(str(data.get("exponent", ""))),
        )
        allowed = SYMMETRIC_LENGTHS.get(key.key_type)
        if allowed is not None and len(key.value) not in allowed:
            raise ValueError(f"key {key.key_id:02X} ({key.key_type.name}) is {len(key.value)} bytes long; "
                             f"its type has {', '.join(map(str, allowed))}")
        return key


@dataclass
class KeySet:
    """The keys sharing one key version number."""

    kvn: int
    keys: dict[int, Key] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"KeySet(kvn={self.kvn:02X}, keys={sorted(self.keys)})"

    def get(self, key_id: int) -> Key | None:
        """The key with this identifier, if any."""
        return self.keys.get(key_id)

    def secret(self, key_id: int) -> bytes:
        """Value of a symmetric key; `KeyError` if absent."""
        return self.keys[key_id].value

    def is_scp_set(self) -> bool:
        """True when ENC, MAC and DEK are all present and symmetric."""
        return all((key := self.keys.get(k)) is not None and key.key_type in (KeyType.DES, KeyType.AES) for k in KeyId)

    def to_json(self) -> dict[str, Any]:
        """State-file form."""
        return {"kvn": self.kvn, "keys": [k.to_json() for k in self.keys.values()]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeySet:
        """Inverse of `to_json`."""
        keys = [Key.from_json(k) for k in data["keys"]]
        return cls(int(data["kvn"]), {k.key_id: k for k in keys})


def scp_key_set(kvn: int, enc: bytes, mac: bytes, dek: bytes, key_type: KeyType) -> KeySet:
    """A key set with ENC/MAC/DEK as key identifiers 1/2/3."""
    return KeySet(
        kvn,
        {
            KeyId.ENC: Key(KeyId.ENC, key_type, enc),
            KeyId.MAC: Key(KeyId.MAC, key_type, mac),
            KeyId.DEK: Key(KeyId.DEK, key_type, dek),
        },
    )


def key_information_template(keysets: dict[int, KeySet]) -> bytes:
    """GET DATA E0 (GPCS 2.3.1 11.3.3.1): every key of every key set, ordered by KVN then key id."""
    body = b"".join(keysets[kvn].keys[kid].info(kvn) for kvn in sorted(keysets) for kid in sorted(keysets[kvn].keys))
    return tlv(0xE0, body)
