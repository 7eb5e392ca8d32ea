"""Card static keys diversified from a master key (KMC) inside the HSM.

Methods (KAT-FORMAT.md `diversify`; KDD = first 10 bytes of the INITIALIZE UPDATE response):
- `emv`: EMV CPG 2.1.2 (GPCS 2.3.1 §E.1.2 mentions it): 3DES-ECB(KMC, KDD[4:10] F0 k || KDD[4:10] 0F k);
- `visa2`: 3DES-ECB(KMC, KDD[0:2] KDD[4:8] F0 k || KDD[0:2] KDD[4:8] 0F k);
- `visa`: 3DES-ECB(KMC, KDD[0:4] KDD[8:10] F0 01 || KDD[0:4] KDD[8:10] 0F 01) as GlobalPlatformPro's
  `fillVisa` ("unknown origin"; its constant is 01 for every key);
- `kdf3`: GlobalPlatformPro's AES template, SP 800-108 counter mode with CMAC:
  CMAC(KMC, i || 00 00 00 k 00 || KDD), i = 1, 2, ... until the KMC's length is reached.
with k = 01 (ENC), 02 (MAC), 03 (DEK).

The derived keys are session objects: 3DES via `DES3_ECB_ENCRYPT_DATA`, AES (all lengths) via the CMAC
emulation with `AES_ECB_ENCRYPT_DATA` (`hsmops.cmac_derive`). The KMC never leaves the HSM and neither does
a derived key (strategy `native_derive` / `cmac_emulation`, see `strategy.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum, unique
from typing import Final

from globalplatform.initupdate import KDD_LENGTH
from globalplatform.keys import KeyAlgorithm, KeyPurpose, check_length
from keyservice.errors import InvalidInput, gp_input
from keyservice.gp import hsmops
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep


@unique
class DivMethod(StrEnum):
    """Diversification method names as the KAT format and GlobalPlatformPro spell them."""

    EMV = "emv"
    VISA2 = "visa2"
    VISA = "visa"
    KDF3 = "kdf3"


@unique
class DivConstant(IntEnum):
    """Fixed bytes of the 3DES diversification blocks (EMV CPG 2.1.2 §9.1)."""

    LEFT = 0xF0
    RIGHT = 0x0F
    VISA_KEY = 0x01


KDF3_COUNTER_PAD: Final = bytes(3)
KDF3_SEPARATOR: Final = bytes(1)

ALGORITHM: Final[dict[DivMethod, KeyAlgorithm]] = {
    DivMethod.EMV: KeyAlgorithm.DES3, DivMethod.VISA2: KeyAlgorithm.DES3,
    DivMethod.VISA: KeyAlgorithm.DES3, DivMethod.KDF3: KeyAlgorithm.AES,
}


def _check_kdd(kdd: bytes) -> None:
    if len(kdd) != KDD_LENGTH:
        raise InvalidInput(f"KDD must be {KDD_LENGTH} bytes, not {len(kdd)}")


def des_block(method: DivMethod, kdd: bytes, purpose: KeyPurpose) -> bytes:
    """The 16-byte block 3DES-encrypted under the KMC for EMV, VISA2 and VISA."""
    _check_kdd(kdd)
    k = int(purpose)
    if method is DivMethod.EMV:
        part = kdd[4:10]
    elif method is DivMethod.VISA2:
        part = kdd[0:2] + kdd[4:8]
    elif method is DivMethod.VISA:
        part, k = kdd[0:4] + kdd[8:10], DivConstant.VISA_KEY
    else:
        raise InvalidInput(f"{method.value} is not a 3DES diversification")
    return part + bytes([DivConstant.LEFT, k]) + part + bytes([DivConstant.RIGHT, k])


def kdf3_messages(kdd: bytes, purpose: KeyPurpose, length: int) -> list[bytes]:
    """The CMAC inputs i || 00 00 00 k 00 || KDD for i = 1 .. ceil(length / 16)."""
    _check_kdd(kdd)
    blocks = -(-length // hsmops.CIPHERS[KeyAlgorithm.AES].block)
    return [bytes([i]) + KDF3_COUNTER_PAD + bytes([purpose]) + KDF3_SEPARATOR + kdd
            for i in range(1, blocks + 1)]


def diversify_key(hsm: Hsm, master: int, method: DivMethod, kdd: bytes, purpose: KeyPurpose,
                  master_length: int, *, wrappable: bool = False) -> int:
    """Derive one card static key as a session object; the caller destroys it.

    `master_length` is the KMC's length in bytes (the card key has the same length for KDF3; 16 bytes for
    the 3DES methods). `wrappable` makes the key wrappable under a DEK (PUT KEY), still sensitive.
    """
    algorithm = ALGORITHM[method]
    hsm.strategy(CryptoStep.DIVERSIFY_KDF3 if algorithm is KeyAlgorithm.AES else CryptoStep.DIVERSIFY_3DES)
    with gp_input():
        check_length(algorithm, master_length)
    if algorithm is KeyAlgorithm.AES:
        template = hsmops.session_template(algorithm, master_length, wrappable=wrappable)
        return hsmops.cmac_derive(hsm, master, algorithm, kdf3_messages(kdd, purpose, master_length), template)
    block = des_block(method, kdd, purpose)
    template = hsmops.session_template(algorithm, len(block), wrappable=wrappable)
    with hsm.lock:
        return hsm.raw.derive_encrypt_data(master, hsmops.CIPHERS[algorithm].ecb_derive, block, None, template)


@dataclass(repr=False)
class KeySet:
    """Handles of a GP key set (static or diversified); never holds key values.

    `owned` handles are session objects this set created and destroys in `destroy()`.
    """

    algorithm: KeyAlgorithm
    length: int
    enc: int
    mac: int
    dek: int | None = None
    owned: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"KeySet({self.algorithm.value}, {self.length} bytes, {len(self.owned)} owned objects)"

    def destroy(self, hsm: Hsm) -> None:
        """Destroy the session objects this set owns (idempotent)."""
        owned, self.owned = self.owned, []
        hsmops.destroy(hsm, *owned)

    @classmethod
    def from_labels(cls, hsm: Hsm, algorithm: KeyAlgorithm, length: int, enc: str, mac: str,
                    dek: str | None = None) -> KeySet:
        """A static key set from token labels (per-process session copies: faster, PLATFORM.md)."""
        with gp_input():
            check_length(algorithm, length)
        return cls(algorithm, length, hsm.hot_handle(enc), hsm.hot_handle(mac),
                   None if dek is None else hsm.hot_handle(dek))


@dataclass(frozen=True, repr=False)
class Diversifier:
    """A KMC handle and the method that turns it into card keys once the KDD is known."""

    master: int
    method: DivMethod
    master_length: int

    def __repr__(self) -> str:
        return f"Diversifier({self.method.value}, {self.master_length} bytes)"

    @property
    def algorithm(self) -> KeyAlgorithm:
        return ALGORITHM[self.method]

    def keyset(self, hsm: Hsm, kdd: bytes, *, with_dek: bool = True, wrappable: bool = False) -> KeySet:
        """ENC, MAC (and DEK) for the card with this KDD, as owned session objects."""
        purposes = [KeyPurpose.ENC, KeyPurpose.MAC] + ([KeyPurpose.DEK] if with_dek else [])
        handles: list[int] = []
        try:
            for purpose in purposes:
                handles.append(diversify_key(hsm, self.master, self.method, kdd, purpose, self.master_length,
                                             wrappable=wrappable))
        except BaseException:
            hsmops.destroy(hsm, *handles)
            raise
        length = self.master_length if self.algorithm is KeyAlgorithm.AES else 16
        dek = handles[2] if with_dek else None
        return KeySet(self.algorithm, length, handles[0], handles[1], dek, owned=list(handles))
