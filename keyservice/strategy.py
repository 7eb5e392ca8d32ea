"""Strategy table: how each cryptographic step of the GP / key-exchange operations is done on a given HSM.

The HSM profile (hsm_profiles/) names per step one of `STRATEGIES`; the key service loads that table when it
opens the token and every step asks it (`Hsm.strategy`) which implementation to run, so a profile changes
behaviour: a step the profile marks `unsupported` is refused, and where the code implements several strategies
(RFC 5649 wrap of unaligned keys) the profile chooses. This module also says what each strategy needs
(mechanisms) and whether a *session-class* key (session key, diversified card key) or an imported key's clear
value transits host memory. Static/master keys never do, under any strategy, except a key created exportable
that SCP02 PUT KEY sends to a card (`put_key_scp02`). `SOFTHSM2` is the table the KAT proves on SoftHSM2 2.6.1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from pkcs11.mechanisms import Mechanism

from keyservice.errors import ConfigurationError, HsmMechanismUnsupported


@unique
class CryptoStep(StrEnum):
    """Cryptographic steps that need a strategy decision (keys of a profile's `[strategies]` table)."""

    KCV = "kcv"
    DIVERSIFY_3DES = "diversify_3des"            # emv, visa2, visa
    DIVERSIFY_KDF3 = "diversify_kdf3"            # AES-128/192/256
    SCP02_SESSION_KEYS = "scp02_session_keys"
    SCP02_CMAC = "scp02_cmac"                    # retail MAC, ICV encryption, R-MAC
    SCP03_SESSION_KEYS = "scp03_session_keys"    # AES-128/192/256
    SCP03_CRYPTOGRAMS = "scp03_cryptograms"
    PUT_KEY_SCP02 = "put_key_scp02"
    PUT_KEY_SCP03 = "put_key_scp03"
    STORE_DATA_DEK = "store_data_dek"
    TR31_IMPORT = "tr31_import"
    TR31_EXPORT = "tr31_export"
    AES_KW = "aes_kw"
    AES_KWP_UNALIGNED_WRAP = "aes_kwp_unaligned_wrap"
    RSA_SIGN = "rsa_sign"                        # DM tokens, RSA DAPs (GPCS 2.3.1 §C.2, §C.4)
    APP_KEY_DGI_SCP02 = "app_key_dgi_scp02"      # a per-SE application key in an encrypted DGI, 3DES session DEK
    APP_KEY_DGI_SCP03 = "app_key_dgi_scp03"      # the same under the AES static DEK
    AES_GCM = "aes_gcm"                          # service data sealed at rest (SP 800-38D)


@dataclass(frozen=True)
class Strategy:
    """A way to do an operation; `session_key_in_host_memory` is the honest flag the inventory shows."""

    name: str
    description: str
    mechanisms: frozenset[int]
    session_key_in_host_memory: bool
    supported: bool = True


def _m(*mechs: Mechanism) -> frozenset[int]:
    return frozenset(int(m) for m in mechs)


NATIVE_WRAP: Final = "native_wrap"

STRATEGIES: Final[dict[str, Strategy]] = {s.name: s for s in (
    Strategy("native_cipher", "C_Encrypt / C_Sign (ECB, CBC, CMAC) with the key object in the HSM",
             _m(Mechanism.AES_ECB, Mechanism.DES3_ECB, Mechanism.AES_CMAC), False),
    Strategy("native_derive", "a single *_ENCRYPT_DATA derive or C_Encrypt/C_Sign in the HSM",
             _m(Mechanism.DES3_ECB, Mechanism.DES3_ECB_ENCRYPT_DATA, Mechanism.DES3_CBC_ENCRYPT_DATA), False),
    Strategy("cmac_emulation", "CMAC KDF: host computes the last CMAC input blocks from E(K, public data); "
             "AES_ECB_ENCRYPT_DATA over them yields the key object (any length: several blocks)",
             _m(Mechanism.AES_ECB, Mechanism.AES_ECB_ENCRYPT_DATA, Mechanism.AES_CMAC), False),
    Strategy("derive_twice", "SCP02 retail MAC: the session key is derived a second time as K1||K1 "
             "(DES3_ECB_ENCRYPT_DATA over two equal blocks) to get single DES inside the HSM",
             _m(Mechanism.DES3_CBC, Mechanism.DES3_ECB, Mechanism.DES3_ECB_ENCRYPT_DATA,
                Mechanism.DES3_CBC_ENCRYPT_DATA), False),
    Strategy("native_wrap", "C_WrapKey (AES_CBC, AES_KEY_WRAP[_PAD]) / C_UnwrapKey: keys leave only wrapped",
             _m(Mechanism.AES_CBC, Mechanism.AES_KEY_WRAP, Mechanism.AES_KEY_WRAP_PAD), False),
    Strategy("host_memory_card_key", "SCP02 PUT KEY or application-key DGI without 3DES wrap: the new card "
             "key (session-class, wrappable) is wrapped (RFC 3394) under a one-time transport key, unwrapped on "
             "the host, 3DES-encrypted by the HSM under the session DEK",
             _m(Mechanism.AES_KEY_WRAP, Mechanism.DES3_ECB), True),
    Strategy("host_memory_key_transit", "TR-31 without a key-block mechanism: KBEK/KBAK derived and MAC "
             "checked in the HSM, the payload decrypted by C_Decrypt; the clear key transits host memory "
             "before it becomes a non-extractable object (export: the exportable key's value, read once). "
             "RFC 5649 wrap of keys not a multiple of 8 bytes: the value in host memory, the AES by the KEK",
             _m(Mechanism.AES_ECB_ENCRYPT_DATA, Mechanism.DES3_ECB_ENCRYPT_DATA, Mechanism.AES_CBC,
                Mechanism.DES3_CBC, Mechanism.AES_CMAC, Mechanism.DES3_CMAC), True),
    Strategy("native_sign", "C_Sign with CKM_SHA1_RSA_PKCS / CKM_SHA256_RSA_PKCS: the private key of a pair "
             "generated by C_GenerateKeyPair (CKM_RSA_PKCS_KEY_PAIR_GEN) signs inside the HSM",
             _m(Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.SHA1_RSA_PKCS, Mechanism.SHA256_RSA_PKCS), False),
    Strategy("native_aead", "C_Encrypt / C_Decrypt with CKM_AES_GCM (SP 800-38D): the data key seals and "
             "opens inside the HSM, which checks the tag", _m(Mechanism.AES_GCM), False),
    Strategy("vendor_mechanism", "a vendor mechanism named by the profile (SP 800-108 KDF, retail MAC, "
             "3DES wrap, TR-31 import/export)", frozenset(), False),
    Strategy("unsupported", "refused with HsmMechanismUnsupported", frozenset(), False, supported=False),
)}

# What this code does on SoftHSM2 2.6.1 (the embedded default); profiles may override per operation.
SOFTHSM2: Final[dict[CryptoStep, str]] = {
    CryptoStep.KCV: "native_cipher",
    CryptoStep.DIVERSIFY_3DES: "native_derive",
    CryptoStep.DIVERSIFY_KDF3: "cmac_emulation",
    CryptoStep.SCP02_SESSION_KEYS: "native_derive",
    CryptoStep.SCP02_CMAC: "derive_twice",
    CryptoStep.SCP03_SESSION_KEYS: "cmac_emulation",
    CryptoStep.SCP03_CRYPTOGRAMS: "native_cipher",
    CryptoStep.PUT_KEY_SCP02: "host_memory_card_key",
    CryptoStep.PUT_KEY_SCP03: "native_wrap",
    CryptoStep.STORE_DATA_DEK: "native_cipher",
    CryptoStep.TR31_IMPORT: "host_memory_key_transit",
    CryptoStep.TR31_EXPORT: "host_memory_key_transit",
    CryptoStep.AES_KW: "native_wrap",
    CryptoStep.AES_KWP_UNALIGNED_WRAP: "host_memory_key_transit",
    CryptoStep.RSA_SIGN: "native_sign",
    CryptoStep.APP_KEY_DGI_SCP02: "host_memory_card_key",
    CryptoStep.APP_KEY_DGI_SCP03: "native_wrap",
    CryptoStep.AES_GCM: "native_aead",
}

# Strategies the code implements per operation (first = preferred). An HSM whose RFC 5649 wrap is right
# for key lengths that are not a multiple of 8 takes `native_wrap` there (aeskw `native_unaligned`); SoftHSM2
# 2.6.1 encodes the padded length, so there the key value transits host memory and the KEK does the AES.
IMPLEMENTED: Final[dict[CryptoStep, tuple[str, ...]]] = {
    **{op: (name, "unsupported") if name != "unsupported" else ("unsupported",) for op, name in SOFTHSM2.items()},
    CryptoStep.AES_KWP_UNALIGNED_WRAP: ("native_wrap", "host_memory_key_transit", "unsupported"),
}


def profile_table(strategies: dict[str, str], profile: str) -> dict[CryptoStep, str]:
    """Validate an HSM profile's `[strategies]` table: every operation named once, with a strategy the code
    implements for it (ConfigurationError otherwise)."""
    names = {op.value for op in CryptoStep}
    missing, unknown = names - strategies.keys(), strategies.keys() - names
    if missing or unknown:
        raise ConfigurationError(f"profile {profile}: strategies missing for {sorted(missing)}, "
                                 f"unknown operations {sorted(unknown)}")
    table = {CryptoStep(op): name for op, name in strategies.items()}
    for op, name in table.items():
        if name not in IMPLEMENTED[op]:
            raise ConfigurationError(f"profile {profile}: {op} cannot use {name!r} "
                                     f"(implemented: {', '.join(IMPLEMENTED[op])})")
    return table


def select(table: dict[CryptoStep, str], step: CryptoStep, profile: str) -> str:
    """The strategy `table` names for `step`; HsmMechanismUnsupported when it is `unsupported`."""
    name = table[step]
    if not STRATEGIES[name].supported:
        raise HsmMechanismUnsupported(f"the HSM profile {profile} does not support {step.value} "
                                      "(its [strategies] table says unsupported)")
    return name


def possible(operation: CryptoStep, mechanisms: Iterable[int]) -> list[Strategy]:
    """Implemented strategies for `operation` whose mechanisms the token reports (CKM_* values)."""
    have = frozenset(int(m) for m in mechanisms)
    return [STRATEGIES[name] for name in IMPLEMENTED[operation] if STRATEGIES[name].mechanisms <= have]


def host_memory_operations(table: dict[CryptoStep, str] | None = None) -> list[CryptoStep]:
    """CryptoSteps where a session-class or imported key transits host memory under `table`."""
    tbl = table or SOFTHSM2
    return [op for op, name in tbl.items() if STRATEGIES[name].session_key_in_host_memory]
