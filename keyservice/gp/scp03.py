"""SCP03 host-side cryptography inside the HSM (GPCS 2.3.1 Amendment D v1.2).

- KDF (Amd D §6.2.2; NIST SP 800-108 counter mode, PRF = AES-CMAC): for i = 1, 2, ...
  CMAC(K, 00 x 11 || derivation constant || 00 || L (2 bytes, bits) || i || context).
- Session keys (§6.2.1): S-ENC (04) from K-ENC, S-MAC (06) and S-RMAC (07) from K-MAC, context = host
  challenge || card challenge, L = key length; derived as session objects by CMAC emulation
  (`hsmops.cmac_derive`: `AES_ECB_ENCRYPT_DATA` over the last CMAC blocks, several blocks for AES-192/256).
- Cryptograms (§6.2.2.2, §6.2.2.3): KDF(S-MAC, 00 card / 01 host, context, L = 64 or 128), via C_Sign.
- Pseudo-random card challenge (§6.2.2.1): KDF(K-ENC, 02, sequence counter || AID, L = 64).
- C-MAC (§6.2.4): CMAC(S-MAC, MAC chaining value || command), chaining value = full 16 bytes; the first
  chaining value is 16 zero bytes; S8 sends the first 8 bytes (S16: 16).
- C-ENC (§6.2.6): ICV = AES(S-ENC, counter as 16 bytes), AES-CBC over pad80(data); the counter starts at 1
  and is incremented for every command after EXTERNAL AUTHENTICATE.
- R-MAC (§6.2.5): CMAC(S-RMAC, MAC chaining value || response data || SW1 SW2).
- R-ENC (§6.2.7): ICV = AES(S-ENC, 80 || counter as 15 bytes), AES-CBC decryption, then unpad.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, unique
from typing import Final

from globalplatform.keys import KeyAlgorithm
from keyservice.errors import InvalidInput
from keyservice.gp import hsmops
from keyservice.gp.diversify import KeySet
from keyservice.hsm import Hsm
from keyservice.strategy import CryptoStep

AES: Final = KeyAlgorithm.AES
BLOCK: Final = 16
LABEL_ZEROS: Final = bytes(11)
SEPARATOR: Final = bytes(1)
CHALLENGE_LENGTHS: Final = frozenset({8, 16})
SEQUENCE_COUNTER_LENGTH: Final = 3
RENC_MARKER: Final = 0x80


@unique
class Scp03Constant(IntEnum):
    """Derivation constants (Amd D Table 6-1)."""

    CARD_CRYPTOGRAM = 0x00
    HOST_CRYPTOGRAM = 0x01
    CARD_CHALLENGE = 0x02
    S_ENC = 0x04
    S_MAC = 0x06
    S_RMAC = 0x07


def kdf_messages(constant: Scp03Constant, context: bytes, bits: int) -> list[bytes]:
    """The CMAC inputs for i = 1 .. ceil(bits / 128) (Amd D §6.2.2, data layout of §4.1.5)."""
    count = -(-bits // (8 * BLOCK))
    head = LABEL_ZEROS + bytes([constant]) + SEPARATOR + bits.to_bytes(2, "big")
    return [head + bytes([i]) + context for i in range(1, count + 1)]


def kdf_value(hsm: Hsm, key: int, constant: Scp03Constant, context: bytes, bits: int) -> bytes:
    """A KDF output that leaves the HSM (cryptograms, card challenge): C_Sign AES_CMAC per block."""
    out = b"".join(hsmops.cmac(hsm, key, AES, m) for m in kdf_messages(constant, context, bits))
    return out[: bits // 8]


def derive_key(hsm: Hsm, key: int, constant: Scp03Constant, context: bytes, length: int) -> int:
    """A KDF output that stays in the HSM as an AES session object of `length` bytes."""
    template = hsmops.session_template(AES, length)
    return hsmops.cmac_derive(hsm, key, AES, kdf_messages(constant, context, 8 * length), template)


def check_challenge(challenge: bytes, what: str) -> None:
    """Challenges are 8 bytes (S8) or 16 bytes (S16)."""
    if len(challenge) not in CHALLENGE_LENGTHS:
        raise InvalidInput(f"the {what} is 8 or 16 bytes, not {len(challenge)}")


def card_challenge(hsm: Hsm, k_enc: int, counter: bytes, aid: bytes, length: int = 8) -> bytes:
    """The pseudo-random card challenge (Amd D §6.2.2.1)."""
    if len(counter) != SEQUENCE_COUNTER_LENGTH:
        raise InvalidInput(f"the SCP03 sequence counter is {SEQUENCE_COUNTER_LENGTH} bytes, not {len(counter)}")
    return kdf_value(hsm, k_enc, Scp03Constant.CARD_CHALLENGE, counter + aid, 8 * length)


@dataclass(repr=False)
class Scp03Session:
    """S-ENC, S-MAC, S-RMAC (handles), the MAC chaining value and the encryption counter."""

    hsm: Hsm
    s_mode: int
    host_challenge: bytes
    card_challenge: bytes
    s_enc: int = 0
    s_mac: int = 0
    s_rmac: int = 0
    chaining: bytes = bytes(BLOCK)
    counter: int = 0
    _objects: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Scp03Session(S{self.s_mode}, counter={self.counter}, {len(self._objects)} session objects)"

    @classmethod
    def open(cls, hsm: Hsm, static: KeySet, host_challenge: bytes, card_challenge: bytes) -> Scp03Session:
        """Derive the three session keys (Amd D §6.2.1) with 2 ECB calls and 3 derives."""
        if static.algorithm is not KeyAlgorithm.AES:
            raise InvalidInput("SCP03 needs AES static keys")
        hsm.strategy(CryptoStep.SCP03_SESSION_KEYS)
        hsm.strategy(CryptoStep.SCP03_CRYPTOGRAMS)
        check_challenge(host_challenge, "host challenge")
        check_challenge(card_challenge, "card challenge")
        if len(host_challenge) != len(card_challenge):
            raise InvalidInput("host and card challenge differ in length")
        session = cls(hsm, len(card_challenge), host_challenge, card_challenge)
        context, bits, length = host_challenge + card_challenge, 8 * static.length, static.length
        template = hsmops.session_template(AES, length)
        enc_msgs = kdf_messages(Scp03Constant.S_ENC, context, bits)
        mac_msgs = kdf_messages(Scp03Constant.S_MAC, context, bits)
        rmac_msgs = kdf_messages(Scp03Constant.S_RMAC, context, bits)
        enc_in = hsmops.cmac_inputs(hsm, static.enc, AES, enc_msgs)
        mac_in = hsmops.cmac_inputs(hsm, static.mac, AES, mac_msgs + rmac_msgs)
        derive = hsmops.CIPHERS[AES].ecb_derive
        try:
            with hsm.lock:
                raw = hsm.raw
                session.s_enc = session._keep(raw.derive_encrypt_data(static.enc, derive, b"".join(enc_in),
                                                                      None, template))
                n = len(mac_msgs)
                session.s_mac = session._keep(raw.derive_encrypt_data(static.mac, derive, b"".join(mac_in[:n]),
                                                                      None, template))
                session.s_rmac = session._keep(raw.derive_encrypt_data(static.mac, derive,
                                                                       b"".join(mac_in[n:]), None, template))
        except BaseException:
            session.close()
            raise
        return session

    def _keep(self, handle: int) -> int:
        self._objects.append(handle)
        return handle

    @property
    def _context(self) -> bytes:
        return self.host_challenge + self.card_challenge

    def card_cryptogram(self) -> bytes:
        """KDF(S-MAC, 00, host || card challenge, L = 8 * s_mode) (Amd D §6.2.2.2)."""
        return kdf_value(self.hsm, self.s_mac, Scp03Constant.CARD_CRYPTOGRAM, self._context, 8 * self.s_mode)

    def host_cryptogram(self) -> bytes:
        """KDF(S-MAC, 01, host || card challenge, L = 8 * s_mode) (Amd D §6.2.2.3)."""
        return kdf_value(self.hsm, self.s_mac, Scp03Constant.HOST_CRYPTOGRAM, self._context, 8 * self.s_mode)

    def c_mac(self, data: bytes) -> bytes:
        """C-MAC over chaining value || modified command; updates the chaining value (§6.2.4)."""
        self.chaining = hsmops.cmac(self.hsm, self.s_mac, AES, self.chaining + data)
        return self.chaining[: self.s_mode]

    def r_mac(self, data_and_sw: bytes) -> bytes:
        """R-MAC over chaining value || response data || SW (§6.2.5); the chaining value is unchanged."""
        return hsmops.cmac(self.hsm, self.s_rmac, AES, self.chaining + data_and_sw)[: self.s_mode]

    def next_counter(self) -> None:
        """Increment the encryption counter (every command after EXTERNAL AUTHENTICATE, §6.2.6)."""
        self.counter += 1

    def encrypt_data(self, data: bytes) -> bytes:
        """C-ENC of the current command (call `next_counter` first): one CBC call over ctr || pad80(data).

        CBC with ICV 0 over the counter block and the data gives E(S-ENC, ctr) = the ICV as the first
        output block, then exactly AES-CBC(ICV, data) (§6.2.6).
        """
        block = self.counter.to_bytes(BLOCK, "big")
        return hsmops.cbc(self.hsm, self.s_enc, AES, block + hsmops.pad80(data, BLOCK), bytes(BLOCK))[BLOCK:]

    def decrypt_response(self, data: bytes) -> bytes | None:
        """R-ENC decryption with ICV = E(S-ENC, 80 || counter) (§6.2.7); None if the padding is bad."""
        if not data or len(data) % BLOCK:
            return None
        block = bytes([RENC_MARKER]) + self.counter.to_bytes(BLOCK - 1, "big")
        icv = hsmops.ecb(self.hsm, self.s_enc, AES, block)
        return hsmops.unpad80(hsmops.cbc_decrypt(self.hsm, self.s_enc, AES, data, icv))

    def close(self) -> None:
        """Destroy the session keys (idempotent)."""
        objects, self._objects = self._objects, []
        hsmops.destroy(self.hsm, *objects)
