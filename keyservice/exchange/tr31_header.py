"""The TR-31 / ANSI X9.143 key block header tables, as data, and the checks both directions run on them.

A header field holds one of the values its table defines. Numeric values are reserved for proprietary use
(X9.143 §6.3; TR-31:2018 §A.5): they mean nothing without a bilateral agreement, so this key service accepts
none. Where the usage table restricts the modes of use and the algorithms of a usage, so do we.

Tables (ANSI X9.143 section and table numbers of the 2021 edition, as openemv/tr31 cites them; the
2022 edition is the one in force; ASC X9 TR 31-2018 Annex A in brackets):
- version ID: §6.2 Table 1 [§A.2 Table 4]; version E comes from ISO 20038:2017, which also defines D;
- key usage: §6.3.1 Table 2 [§A.5.1 Table 6], with its mode-of-use column;
- algorithm: §6.3.2 Table 3 [§A.5.2 Table 7];
- mode of use: §6.3.3 Table 4 [§A.5.3 Table 8]; N is "no special restrictions other than those implied by
  the key usage", so it is allowed with every usage;
- key version number: §6.3.4 Table 5 [§A.5.4 Table 9]: two alphanumerics, "00" unused, "c" + n component;
- exportability: §6.3.5 Table 6 [§A.5.5 Table 10].

Sources read, not copied (the standards are sold, not public): the documentation of psec's `psec/tr31.py`
(PyPI psec; the TR-31:2018 usage table with its modes of use), openemv/tr31 `src/tr31.h` (codes with their
X9.143:2021 table references, B3 and D3 among them), IBM CCA "CSNBT31C usage notes" (B3: X, D3: B/D/E) and
AWS Payment Cryptography "Understanding key attributes" (keys-validattributes: every usage also allows N).
Not accepted for want of a source for their modes: X9.143:2021's E7, K4 (ISO 20038 KBPK), P1 and V5.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final, Protocol

from keyservice.errors import InvalidInput

KEY_VERSION_LENGTH: Final = 2


@unique
class VersionId(StrEnum):
    """Key block version IDs: how the block is protected (X9.143 §6.2 Table 1; ISO 20038:2017 for E)."""

    A = "A"  # TDEA key variant binding, TR-31:2005: deprecated
    B = "B"  # TDEA key derivation binding
    C = "C"  # TDEA key variant binding, TR-31:2010
    D = "D"  # AES key derivation binding (also ISO 20038:2017)
    E = "E"  # ISO 20038:2017 AES key derivation binding


@unique
class Algorithm(StrEnum):
    """Algorithm of the protected key (X9.143 §6.3.2 Table 3)."""

    AES = "A"
    DES = "D"  # single DES, kept for backward compatibility
    EC = "E"  # elliptic curve
    HMAC = "H"  # hash named in optional block HM
    RSA = "R"
    DSA = "S"
    TDES = "T"


@unique
class Mode(StrEnum):
    """Mode of use of the protected key (X9.143 §6.3.3 Table 4)."""

    BOTH = "B"  # encrypt/wrap and decrypt/unwrap
    MAC_BOTH = "C"  # MAC generate and verify
    DECRYPT = "D"  # decrypt/unwrap only
    ENCRYPT = "E"  # encrypt/wrap only
    GENERATE = "G"  # MAC generate only
    NO_RESTRICTION = "N"  # none other than those the key usage implies
    SIGN = "S"  # signature only
    SIGN_DECRYPT = "T"  # sign and decrypt
    VERIFY = "V"  # MAC verify only
    DERIVE = "X"  # derive other keys
    VARIANT = "Y"  # create key variants


@unique
class Exportability(StrEnum):
    """Exportability of the protected key (X9.143 §6.3.5 Table 6)."""

    TRUSTED = "E"  # exportable under a KEK in a form meeting X9.24 (a key block)
    NONE = "N"  # not exportable
    SENSITIVE = "S"  # exportable in forms not meeting X9.24 (e.g. X9.17)


# The algorithm of the KBPK each version binds with (X9.143 §6.2 Table 1; ISO 20038:2017 for E).
KBPK_ALGORITHM: Final[dict[VersionId, Algorithm]] = {
    VersionId.A: Algorithm.TDES, VersionId.B: Algorithm.TDES, VersionId.C: Algorithm.TDES,
    VersionId.D: Algorithm.AES, VersionId.E: Algorithm.AES,
}


@dataclass(frozen=True)
class UsageRule:
    """One row of the key usage table: its meaning, and the modes of use and algorithms it allows."""

    meaning: str
    modes: frozenset[Mode]
    algorithms: frozenset[Algorithm]


def _modes(*modes: Mode) -> frozenset[Mode]:
    return frozenset((*modes, Mode.NO_RESTRICTION))


_SYMMETRIC: Final = frozenset({Algorithm.AES, Algorithm.DES, Algorithm.TDES})
_ASYMMETRIC: Final = frozenset({Algorithm.EC, Algorithm.RSA, Algorithm.DSA})
_CIPHER: Final = _modes(Mode.BOTH, Mode.DECRYPT, Mode.ENCRYPT)
_MAC: Final = _modes(Mode.MAC_BOTH, Mode.GENERATE, Mode.VERIFY)
_DERIVE: Final = _modes(Mode.DERIVE)
_SIGN: Final = _modes(Mode.SIGN, Mode.VERIFY)

# X9.143 §6.3.1 Table 2 [TR-31:2018 Table 6]: mode-of-use column; algorithms as the usage's name implies
# (asymmetric key pairs: E, R, S; M0 "using TDEA"; M7 HMAC: H; the others are symmetric keys).
KEY_USAGES: Final[dict[str, UsageRule]] = {
    "B0": UsageRule("BDK base derivation key", _DERIVE, _SYMMETRIC),
    "B1": UsageRule("initial DUKPT key", _DERIVE, _SYMMETRIC),
    "B2": UsageRule("base key variant key (deprecated)", _DERIVE, _SYMMETRIC),
    "B3": UsageRule("key derivation key (non X9.24)", _DERIVE, _SYMMETRIC),
    "C0": UsageRule("card verification key", _MAC, _SYMMETRIC),
    "D0": UsageRule("symmetric data encryption key", _CIPHER, _SYMMETRIC),
    "D1": UsageRule("asymmetric data encryption key", _CIPHER, _ASYMMETRIC),
    "D2": UsageRule("data encryption key for decimalization tables", _CIPHER, _SYMMETRIC),
    "D3": UsageRule("data encryption key for sensitive data", _CIPHER, _SYMMETRIC),
    "E0": UsageRule("EMV issuer master key: application cryptograms", _DERIVE, _SYMMETRIC),
    "E1": UsageRule("EMV issuer master key: secure messaging for confidentiality", _DERIVE, _SYMMETRIC),
    "E2": UsageRule("EMV issuer master key: secure messaging for integrity", _DERIVE, _SYMMETRIC),
    "E3": UsageRule("EMV issuer master key: data authentication code", _DERIVE, _SYMMETRIC),
    "E4": UsageRule("EMV issuer master key: dynamic numbers", _DERIVE, _SYMMETRIC),
    "E5": UsageRule("EMV issuer master key: card personalisation", _DERIVE, _SYMMETRIC),
    "E6": UsageRule("EMV issuer master key: other", _DERIVE, _SYMMETRIC),
    "I0": UsageRule("initialisation vector", _modes(), _SYMMETRIC),
    "K0": UsageRule("key encryption or wrapping key", _CIPHER, _SYMMETRIC),
    "K1": UsageRule("TR-31 key block protection key", _CIPHER, _SYMMETRIC),
    "K2": UsageRule("TR-34 asymmetric key", _CIPHER, _ASYMMETRIC),
    "K3": UsageRule("asymmetric key for key agreement or wrapping", _modes(*_CIPHER, Mode.DERIVE), _ASYMMETRIC),
    "M0": UsageRule("ISO 16609 MAC algorithm 1 (TDEA)", _MAC, frozenset({Algorithm.TDES})),
    "M1": UsageRule("ISO 9797-1 MAC algorithm 1", _MAC, _SYMMETRIC),
    "M2": UsageRule("ISO 9797-1 MAC algorithm 2", _MAC, _SYMMETRIC),
    "M3": UsageRule("ISO 9797-1 MAC algorithm 3", _MAC, _SYMMETRIC),
    "M4": UsageRule("ISO 9797-1 MAC algorithm 4", _MAC, _SYMMETRIC),
    "M5": UsageRule("ISO 9797-1:1999 MAC algorithm 5", _MAC, _SYMMETRIC),
    "M6": UsageRule("ISO 9797-1:2011 MAC algorithm 5 (CMAC)", _MAC, _SYMMETRIC),
    "M7": UsageRule("HMAC key", _MAC, frozenset({Algorithm.HMAC})),
    "M8": UsageRule("ISO 9797-1:2011 MAC algorithm 6", _MAC, _SYMMETRIC),
    "P0": UsageRule("PIN encryption key", _CIPHER, _SYMMETRIC),
    "S0": UsageRule("asymmetric key pair for digital signature", _SIGN, _ASYMMETRIC),
    "S1": UsageRule("asymmetric key pair, CA key", _SIGN, _ASYMMETRIC),
    "S2": UsageRule("asymmetric key pair, non-X9.24 key", _modes(*_SIGN, Mode.SIGN_DECRYPT, *_CIPHER),
                    _ASYMMETRIC),
    "V0": UsageRule("PIN verification key, other algorithm", _MAC, _SYMMETRIC),
    "V1": UsageRule("PIN verification key, IBM 3624", _MAC, _SYMMETRIC),
    "V2": UsageRule("PIN verification key, VISA PVV", _MAC, _SYMMETRIC),
    "V3": UsageRule("PIN verification key, X9.132 algorithm 1", _MAC, _SYMMETRIC),
    "V4": UsageRule("PIN verification key, X9.132 algorithm 2", _MAC, _SYMMETRIC),
}


class HeaderFields(Protocol):
    """The fixed header fields a block carries (tr31.Header)."""

    @property
    def version(self) -> str: ...
    @property
    def usage(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def key_version(self) -> str: ...
    @property
    def exportability(self) -> str: ...


def _listed(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


def _one_of(name: str, table: str, value: str, allowed: Iterable[str]) -> None:
    """`value` must be one of `allowed`, the defined values of the field's table."""
    allowed = sorted(allowed)
    if value in allowed:
        return
    why = "is reserved for proprietary use and not accepted" if value.isdigit() else "is not defined"
    raise InvalidInput(f"TR-31 {name} {value!r} {why} (X9.143 {table}); allowed: {_listed(allowed)}")


def check_choices(usage: str, mode: str, key_version: str, exportability: str) -> None:
    """The fields a sender chooses: each in its table, and the mode one the usage allows (Table 2)."""
    _one_of("key usage", "Table 2", usage, KEY_USAGES)
    _one_of("mode of use", "Table 4", mode, Mode)
    if len(key_version) != KEY_VERSION_LENGTH or not key_version.isascii() or not key_version.isalnum():
        raise InvalidInput(f"TR-31 key version {key_version!r} is not two alphanumerics (X9.143 Table 5); "
                           "allowed: two of 0-9 A-Z a-z (00: no version, c and one more: a component)")
    _one_of("exportability", "Table 6", exportability, Exportability)
    rule = KEY_USAGES[usage]
    if mode not in rule.modes:
        raise InvalidInput(f"TR-31 mode of use {mode!r} is not allowed for key usage {usage}, {rule.meaning} "
                           f"(X9.143 Table 2); allowed: {_listed(rule.modes)}")


def check_header(header: HeaderFields) -> None:
    """Every fixed field of a header against the tables, on import and on export."""
    _one_of("key block version ID", "Table 1", header.version, VersionId)
    _one_of("algorithm", "Table 3", header.algorithm, Algorithm)
    check_choices(header.usage, header.mode, header.key_version, header.exportability)
    rule = KEY_USAGES[header.usage]
    if header.algorithm not in rule.algorithms:
        raise InvalidInput(f"TR-31 algorithm {header.algorithm!r} is not allowed for key usage {header.usage}, "
                           f"{rule.meaning} (X9.143 Table 2); allowed: {_listed(rule.algorithms)}")
