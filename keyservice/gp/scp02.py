"""SCP02 host-side cryptography inside the HSM (GPCS 2.3.1 Annex E).

- Session keys (§E.4.1): 3DES-CBC(static key, ICV 0, constant || sequence counter || 00 x 12), derived with
  `DES3_CBC_ENCRYPT_DATA` as session objects. Constants 0182 S-ENC, 0101 C-MAC, 0102 R-MAC, 0181 DEK.
- Cryptograms (§E.4.2): full 3DES MAC (ISO 9797-1 alg. 1, ICV 0, method-2 padding) under S-ENC.
- C-MAC / R-MAC (§E.4.4, §E.4.5): ISO 9797-1 MAC alg. 3 with DES (the "retail MAC": single-DES CBC, 3DES
  on the last block). SoftHSM2 has neither single DES nor a retail MAC; this module derives the key a
  second time as K1 || K1 (`DES3_ECB_ENCRYPT_DATA` over the first derivation block twice: ECB of two equal
  blocks gives the first half of the session key twice; 2-key 3DES with equal halves is single DES).
  Strategy `derive_twice`: no session key is ever present in host memory.
- ICV encryption (i = 15, 55; §E.4.4): the next ICV is DES(K1 of S-MAC, previous C-MAC).
- C-DEC (§E.4.6): 3DES-CBC under S-ENC, ICV 0, method-2 padding always added.
- DEK (§E.4.7): 3DES-ECB under the session DEK (see putkey.py / storedata.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, unique
from typing import Final

from globalplatform.keys import KeyAlgorithm
from globalplatform.scp import Scp02Option
from keyservice.errors import InvalidInput
from keyservice.gp import hsmops
from keyservice.gp.diversify import KeySet
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

DES: Final = KeyAlgorithm.DES3
BLOCK: Final = 8
ZERO_ICV: Final = bytes(BLOCK)
COUNTER_LENGTH: Final = 2
CARD_CHALLENGE_LENGTH: Final = 6
CRYPTOGRAM_LENGTH: Final = 8
SESSION_KEY_LENGTH: Final = 16


@unique
class Scp02Constant(IntEnum):
    """Session key derivation constants (GPCS 2.3.1 Table E-2)."""

    C_MAC = 0x0101
    R_MAC = 0x0102
    DEK = 0x0181
    S_ENC = 0x0182


def derivation_data(constant: Scp02Constant, counter: bytes) -> bytes:
    """constant (2) || sequence counter (2) || 12 zero bytes (§E.4.1)."""
    if len(counter) != COUNTER_LENGTH:
        raise InvalidInput(f"the SCP02 sequence counter is {COUNTER_LENGTH} bytes, not {len(counter)}")
    return constant.to_bytes(2, "big") + counter + bytes(12)


def derive_session_key(hsm: Hsm, static: int, constant: Scp02Constant, counter: bytes) -> int:
    """One session key (16-byte 3DES) as a session object."""
    hsm.strategy(CryptoStep.SCP02_SESSION_KEYS)
    template = hsmops.session_template(DES, SESSION_KEY_LENGTH)
    with hsm.lock:
        return hsm.raw.derive_encrypt_data(static, hsmops.CIPHERS[DES].cbc_derive,
                                           derivation_data(constant, counter), ZERO_ICV, template)


def derive_single_des_half(hsm: Hsm, static: int, constant: Scp02Constant, counter: bytes) -> int:
    """K1 || K1 of the session key (a 2-key 3DES object that computes single DES under K1)."""
    first = derivation_data(constant, counter)[:BLOCK]
    template = hsmops.session_template(DES, SESSION_KEY_LENGTH)
    with hsm.lock:
        return hsm.raw.derive_encrypt_data(static, hsmops.CIPHERS[DES].ecb_derive, first + first, None, template)


def full_mac(hsm: Hsm, key: int, data: bytes, icv: bytes = ZERO_ICV) -> bytes:
    """ISO 9797-1 MAC algorithm 1 with 3DES (§B.1.2.1): the last block of 3DES-CBC over pad80(data)."""
    return hsmops.cbc(hsm, key, DES, hsmops.pad80(data, BLOCK), icv)[-BLOCK:]


def retail_mac(hsm: Hsm, key: int, single: int, data: bytes, icv: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3 (§B.1.2.2): single-DES CBC under K1, then 3DES on the last block.

    `single` is the K1 || K1 object of `key`; both stay in the HSM.
    """
    padded = hsmops.pad80(data, BLOCK)
    head, last = padded[:-BLOCK], padded[-BLOCK:]
    with hsm.lock:
        chain = hsm.raw.encrypt(single, hsmops.CIPHERS[DES].cbc, head, icv)[-BLOCK:] if head else icv
        return hsm.raw.encrypt(key, hsmops.CIPHERS[DES].cbc, last, chain)


def card_cryptogram(hsm: Hsm, s_enc: int, host_challenge: bytes, counter: bytes, card_challenge: bytes) -> bytes:
    """MAC over host challenge || sequence counter || card challenge (§E.4.2.1)."""
    return full_mac(hsm, s_enc, host_challenge + counter + card_challenge)


def host_cryptogram(hsm: Hsm, s_enc: int, host_challenge: bytes, counter: bytes, card_challenge: bytes) -> bytes:
    """MAC over sequence counter || card challenge || host challenge (§E.4.2.2)."""
    return full_mac(hsm, s_enc, counter + card_challenge + host_challenge)


@dataclass(repr=False)
class Scp02Session:
    """Session keys (handles) and the MAC chaining state of one SCP02 session."""

    hsm: Hsm
    static: KeySet
    counter: bytes
    options: Scp02Option
    s_enc: int = 0
    s_mac: int = 0
    s_mac_single: int = 0
    s_rmac: int | None = None
    s_rmac_single: int | None = None
    s_dek: int | None = None
    icv: bytes = ZERO_ICV
    r_icv: bytes = ZERO_ICV
    _objects: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Scp02Session(i={int(self.options):02X}, {len(self._objects)} session objects)"

    @classmethod
    def open(cls, hsm: Hsm, static: KeySet, counter: bytes, options: Scp02Option) -> Scp02Session:
        """Derive S-ENC, C-MAC and its single-DES half (R-MAC and DEK on first use)."""
        if static.algorithm is not KeyAlgorithm.DES3:
            raise InvalidInput("SCP02 needs 3DES static keys")
        if not options & Scp02Option.THREE_KEYS or options & Scp02Option.ICV_MAC_OVER_AID:
            raise InvalidInput(f"SCP02 i = {int(options):02X} (one base key / implicit ICV) is not supported")
        hsm.strategy(CryptoStep.SCP02_CMAC)
        session = cls(hsm, static, counter, options)
        try:
            session.s_enc = session._keep(derive_session_key(hsm, static.enc, Scp02Constant.S_ENC, counter))
            session.s_mac = session._keep(derive_session_key(hsm, static.mac, Scp02Constant.C_MAC, counter))
            session.s_mac_single = session._keep(
                derive_single_des_half(hsm, static.mac, Scp02Constant.C_MAC, counter))
        except BaseException:
            session.close()
            raise
        return session

    def _keep(self, handle: int) -> int:
        self._objects.append(handle)
        return handle

    def dek(self) -> int:
        """The session DEK (§E.4.1, constant 0181), derived on first use."""
        if self.s_dek is None:
            if self.static.dek is None:
                raise InvalidInput("the key set has no DEK")
            self.s_dek = self._keep(derive_session_key(self.hsm, self.static.dek, Scp02Constant.DEK, self.counter))
        return self.s_dek

    def _rmac_keys(self) -> tuple[int, int]:
        if self.s_rmac is None or self.s_rmac_single is None:
            mac = self.static.mac
            self.s_rmac = self._keep(derive_session_key(self.hsm, mac, Scp02Constant.R_MAC, self.counter))
            self.s_rmac_single = self._keep(derive_single_des_half(self.hsm, mac, Scp02Constant.R_MAC,
                                                                   self.counter))
        return self.s_rmac, self.s_rmac_single

    def c_mac(self, data: bytes, *, reset: bool = False) -> bytes:
        """C-MAC over `data` with the chained (optionally encrypted) ICV (§E.4.4); updates the ICV."""
        mac = retail_mac(self.hsm, self.s_mac, self.s_mac_single, data, ZERO_ICV if reset else self.icv)
        if self.options & Scp02Option.ICV_ENCRYPTION:
            self.icv = hsmops.ecb(self.hsm, self.s_mac_single, DES, mac)
        else:
            self.icv = mac
        return mac

    def r_mac(self, data: bytes) -> bytes:
        """R-MAC over the R-MAC data (§E.4.5); the next R-MAC ICV is this R-MAC."""
        key, single = self._rmac_keys()
        self.r_icv = retail_mac(self.hsm, key, single, data, self.r_icv)
        return self.r_icv

    def encrypt_data(self, data: bytes) -> bytes:
        """C-DEC: 3DES-CBC under S-ENC, ICV 0, over pad80(data) (§E.4.6)."""
        return hsmops.cbc(self.hsm, self.s_enc, DES, hsmops.pad80(data, BLOCK), ZERO_ICV)

    def close(self) -> None:
        """Destroy every session object of this session (idempotent)."""
        objects, self._objects = self._objects, []
        hsmops.destroy(self.hsm, *objects)
        self.s_rmac = self.s_rmac_single = self.s_dek = None
