"""Key inventory vocabulary: usage classes, SP 800-57 states, provenance, token capabilities per usage.

Key states follow NIST SP 800-57 Part 1 Rev. 5 §5.3 (pre-activation, active, suspended, deactivated,
compromised, destroyed) with its allowed transitions (Figure 5).
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Final, TypeVar

from globalplatform.keys import KeyAlgorithm
from keyservice.errors import InvalidInput, KeyStateError
from keyservice.templates import Capability


@unique
class KeyUsage(StrEnum):
    """What a key is for in the TSM's hierarchy (docs/keyservice.md)."""

    KMC = "KMC"
    ISD_KEYSET = "ISD_KEYSET"
    SSD_KEYSET = "SSD_KEYSET"
    KEK = "KEK"
    TOKEN_KEY = "TOKEN_KEY"  # noqa: S105 - a usage class name, not a secret
    RECEIPT_KEY = "RECEIPT_KEY"
    DAP_KEY = "DAP_KEY"
    AUDIT_KEY = "AUDIT_KEY"
    APP_KEY = "APP_KEY"
    """A service provider's application master key (owner `sp:NAME`): never sent to a card; each SE gets its own
    key diversified from it in the HSM (`keyservice.gp.appkey`)."""
    DATA_KEY = "DATA_KEY"
    """Seals service data at rest (card numbers) with AES-GCM inside the HSM (`keyservice.sealing`)."""
    VAULT_KEY = "VAULT_KEY"
    """The key service's own AES-GCM key for people's TOTP secrets (`tsm.vault-key`, docs/people.md); no policy
    rule lets a caller use it."""
    APPROVAL_KEY = "APPROVAL_KEY"
    """The key service's own HMAC key that MACs approvals (`tsm.approval-key`, docs/people.md)."""


INTERNAL_USAGES: Final = frozenset({KeyUsage.AUDIT_KEY, KeyUsage.VAULT_KEY, KeyUsage.APPROVAL_KEY})
"""Usage classes of the key service's own keys, made at initialisation; never generated or imported by a caller."""


@unique
class KeyState(StrEnum):
    """SP 800-57 Part 1 §5.3 key states."""

    PRE_ACTIVATION = "pre-activation"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"
    COMPROMISED = "compromised"
    DESTROYED = "destroyed"


@unique
class Provenance(StrEnum):
    """How the key came onto the token."""

    GENERATED = "generated"
    IMPORTED_COMPONENTS = "imported-components"
    IMPORTED_WRAPPED = "imported-wrapped"
    IMPORTED_TEST = "imported-test"


E = TypeVar("E", bound=StrEnum)

# SP 800-57 Part 1 Rev. 5 Figure 5: allowed state transitions.
TRANSITIONS: Final[dict[KeyState, frozenset[KeyState]]] = {
    KeyState.PRE_ACTIVATION: frozenset({KeyState.ACTIVE, KeyState.COMPROMISED, KeyState.DESTROYED}),
    KeyState.ACTIVE: frozenset({KeyState.SUSPENDED, KeyState.DEACTIVATED, KeyState.COMPROMISED}),
    KeyState.SUSPENDED: frozenset({KeyState.ACTIVE, KeyState.DEACTIVATED, KeyState.COMPROMISED}),
    KeyState.DEACTIVATED: frozenset({KeyState.COMPROMISED, KeyState.DESTROYED}),
    KeyState.COMPROMISED: frozenset({KeyState.DESTROYED}),
    KeyState.DESTROYED: frozenset(),
}

# Token capabilities per usage class: the key can do nothing else on the HSM. ENCRYPT on the MAC-only
# classes serves the GP KCV (ECB over a constant block), on KMC and APP_KEY also the KDF3 CMAC emulation
# (hsmops.cmac_derive); policy.RULES refuses any other encryption. An APP_KEY never signs: it MACs only as a
# per-SE key derived from it.
CAPABILITIES: Final[dict[KeyUsage, frozenset[Capability]]] = {
    KeyUsage.KMC: frozenset({Capability.ENCRYPT, Capability.SIGN, Capability.DERIVE}),
    KeyUsage.ISD_KEYSET: frozenset({Capability.ENCRYPT, Capability.DECRYPT, Capability.SIGN,
                                    Capability.VERIFY, Capability.DERIVE, Capability.WRAP}),
    KeyUsage.SSD_KEYSET: frozenset({Capability.ENCRYPT, Capability.DECRYPT, Capability.SIGN,
                                    Capability.VERIFY, Capability.DERIVE, Capability.WRAP}),
    KeyUsage.KEK: frozenset({Capability.ENCRYPT, Capability.DECRYPT, Capability.SIGN, Capability.VERIFY,
                             Capability.DERIVE, Capability.WRAP, Capability.UNWRAP}),
    KeyUsage.TOKEN_KEY: frozenset({Capability.ENCRYPT, Capability.SIGN, Capability.VERIFY}),
    KeyUsage.RECEIPT_KEY: frozenset({Capability.ENCRYPT, Capability.SIGN, Capability.VERIFY, Capability.DERIVE}),
    KeyUsage.DAP_KEY: frozenset({Capability.ENCRYPT, Capability.SIGN, Capability.VERIFY}),
    KeyUsage.AUDIT_KEY: frozenset({Capability.SIGN, Capability.VERIFY}),
    KeyUsage.APP_KEY: frozenset({Capability.ENCRYPT, Capability.DERIVE}),
    KeyUsage.DATA_KEY: frozenset({Capability.ENCRYPT, Capability.DECRYPT}),
    KeyUsage.VAULT_KEY: frozenset({Capability.ENCRYPT, Capability.DECRYPT}),
    KeyUsage.APPROVAL_KEY: frozenset({Capability.SIGN, Capability.VERIFY}),
}


_CARD_MAC: Final = frozenset({KeyAlgorithm.DES3, KeyAlgorithm.AES})

# Algorithms per usage class. DM tokens are RSA signatures (GPCS 2.3.1 §C.4); receipts are MACs (§C.5); a DAP
# is an RSA signature or a MAC (§C.2, §C.3). RSA serves nothing else: the other classes are secret keys.
ALGORITHMS: Final[dict[KeyUsage, frozenset[KeyAlgorithm]]] = {
    **{usage: frozenset(KeyAlgorithm) - {KeyAlgorithm.RSA} for usage in KeyUsage},
    KeyUsage.TOKEN_KEY: frozenset({KeyAlgorithm.RSA}),
    KeyUsage.RECEIPT_KEY: _CARD_MAC,
    KeyUsage.DAP_KEY: _CARD_MAC | {KeyAlgorithm.RSA},
    KeyUsage.APP_KEY: frozenset({KeyAlgorithm.AES}),
    KeyUsage.DATA_KEY: frozenset({KeyAlgorithm.AES}),
    KeyUsage.VAULT_KEY: frozenset({KeyAlgorithm.AES}),
    KeyUsage.APPROVAL_KEY: frozenset({KeyAlgorithm.HMAC}),
}

# Key lengths (bytes) per usage class, where the class is narrower than its algorithm: a per-SE application key
# has the master's length (KDF3, Amd D §4.1.5), and service data is sealed with AES-256.
LENGTHS: Final[dict[KeyUsage, frozenset[int]]] = {
    KeyUsage.APP_KEY: frozenset({16, 32}),
    KeyUsage.DATA_KEY: frozenset({32}),
}


def check_algorithm(usage: KeyUsage, algorithm: KeyAlgorithm) -> None:
    """Refuse a key whose algorithm its usage class does not use (InvalidInput naming the allowed ones)."""
    allowed = ALGORITHMS[usage]
    if algorithm not in allowed:
        names = " or ".join(sorted(a.value for a in allowed))
        raise InvalidInput(f"a {usage.value} key is {names}, not {algorithm.value}")


def check_key_length(usage: KeyUsage, length: int) -> None:
    """Refuse a key length its usage class does not use (InvalidInput naming the allowed ones)."""
    allowed = LENGTHS.get(usage)
    if allowed is not None and length not in allowed:
        sizes = " or ".join(str(n) for n in sorted(allowed))
        raise InvalidInput(f"a {usage.value} key is {sizes} bytes long, not {length}")


def parse_enum(enum: type[E], value: str, what: str) -> E:
    """`value` as a member of `enum`, or a typed error listing the allowed values."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(f"unknown {what} {value!r} (expected one of: {allowed})") from None


def check_transition(current: KeyState, new: KeyState, label: str = "") -> None:
    """Refuse a transition SP 800-57 does not allow."""
    if new not in TRANSITIONS[current]:
        raise KeyStateError(f"key {label!r} cannot go from {current} to {new}" if label else
                            f"a key cannot go from {current} to {new}")
