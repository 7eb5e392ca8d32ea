"""SCP03, card side (GP Card Spec 2.3.1 Amendment D v1.1.2): KDF (6.2.1), card challenge (6.2.2.1),
cryptograms (6.2.2.2-3), C-MAC (6.2.4), C-DECRYPTION (6.2.6), R-MAC (6.2.5), R-ENCRYPTION (6.2.7),
sensitive data with the static DEK (GPCS 2.3.1 11.8.2.3 / Amd D 7.2.2). S8 mode only.
"""

from __future__ import annotations

import os
from enum import IntEnum, IntFlag, unique
from typing import Final

from cardsim.apdu import Cla, CommandApdu, Response
from cardsim.keys import KeyId, KeySet
from cardsim.primitives import AES_BLOCK, aes_cbc, aes_cmac, aes_ecb, equal, pad80, unpad80
from cardsim.securechannel import SecureChannel, SecurityLevel
from cardsim.sw import SW, ApduError, is_success

MAC_LENGTH: Final = 8
"""S8 mode: 8-byte C-MAC, R-MAC, cryptograms and card challenge."""


@unique
class Scp03Option(IntFlag):
    """Bits of the SCP03 i parameter (Amd D 5.1 Table 5-1)."""

    S16 = 0x01
    """b1: S16 mode (not supported)."""
    PSEUDO_RANDOM_CHALLENGE = 0x10
    """b5: pseudo-random card challenge, sequence counter returned by INITIALIZE UPDATE."""
    RMAC_SUPPORT = 0x20
    """b6: R-MAC support."""
    RENC_SUPPORT = 0x40
    """b7: R-ENCRYPTION support (with R-MAC)."""


SUPPORTED_I: Final = frozenset({0x00, 0x10, 0x20, 0x30, 0x60, 0x70})


@unique
class Scp03Constant(IntEnum):
    """Data derivation constants (Amd D 6.2.1 Table 6-1)."""

    CARD_CRYPTOGRAM = 0x00
    HOST_CRYPTOGRAM = 0x01
    CARD_CHALLENGE = 0x02
    S_ENC = 0x04
    S_MAC = 0x06
    S_RMAC = 0x07


def kdf(key: bytes, constant: Scp03Constant, context: bytes, bits: int) -> bytes:
    """NIST SP 800-108 counter-mode KDF with AES-CMAC in the GP layout (Amd D 6.2.1):
    label = 00 x 11 || constant, separator 00, L (2 bytes, bits), counter i (1 byte), context."""
    out = b""
    for counter in range(1, (bits + 127) // 128 + 1):
        block = bytes(11) + bytes([constant, 0]) + bits.to_bytes(2, "big") + bytes([counter]) + context
        out += aes_cmac(key, block)
    return out[: bits // 8]


def pseudo_random_challenge(k_enc: bytes, counter: int, aid: bytes) -> bytes:
    """Card challenge = KDF(K-ENC, 02, sequence counter (3) || AID, 64) (Amd D 6.2.2.1)."""
    return kdf(k_enc, Scp03Constant.CARD_CHALLENGE, counter.to_bytes(3, "big") + aid, 64)


class Scp03Channel(SecureChannel):
    """One SCP03 session."""

    scp = 0x03

    def __init__(
        self,
        keyset: KeySet,
        i: int,
        counter: int,
        aid: bytes,
        kdd: bytes,
        host_challenge: bytes,
        card_challenge: bytes | None = None,
    ) -> None:
        super().__init__()
        self._i = i
        self._kvn = keyset.kvn
        self._kdd = kdd
        self._counter = counter
        k_enc, k_mac = keyset.secret(KeyId.ENC), keyset.secret(KeyId.MAC)
        self._k_dek = keyset.secret(KeyId.DEK)
        if card_challenge is None:
            if i & Scp03Option.PSEUDO_RANDOM_CHALLENGE:
                card_challenge = pseudo_random_challenge(k_enc, counter, aid)
            else:
                card_challenge = os.urandom(MAC_LENGTH)
        self._card_challenge = card_challenge
        self._context = host_challenge + card_challenge
        bits = len(k_enc) * 8
        self._s_enc = kdf(k_enc, Scp03Constant.S_ENC, self._context, bits)
        self._s_mac = kdf(k_mac, Scp03Constant.S_MAC, self._context, bits)
        self._s_rmac = kdf(k_mac, Scp03Constant.S_RMAC, self._context, bits)
        self._chaining = bytes(AES_BLOCK)
        self._enc_counter = 0

    def __repr__(self) -> str:
        return f"Scp03Channel(i={self._i:02X}, level={self.level!r}, authenticated={self.authenticated})"

    def initialize_update_response(self) -> bytes:
        """KDD || KVN 03 i || card challenge || card cryptogram [|| counter] (Amd D 7.1.1.6)."""
        cryptogram = kdf(self._s_mac, Scp03Constant.CARD_CRYPTOGRAM, self._context, 64)
        out = self._kdd + bytes([self._kvn, self.scp, self._i]) + self._card_challenge + cryptogram
        if self._i & Scp03Option.PSEUDO_RANDOM_CHALLENGE:
            out += self._counter.to_bytes(3, "big")
        return out

    def supports_level(self, level: int) -> bool:
        if level & SecurityLevel.R_MAC and not self._i & Scp03Option.RMAC_SUPPORT:
            return False
        return not (level & SecurityLevel.R_ENCRYPTION and not self._i & Scp03Option.RENC_SUPPORT)

    def verify_host_cryptogram(self, host_cryptogram: bytes) -> bool:
        expected = kdf(self._s_mac, Scp03Constant.HOST_CRYPTOGRAM, self._context, 64)
        return equal(expected, host_cryptogram)

    def unwrap(self, apdu: CommandApdu, *, first: bool = False) -> CommandApdu:
        level = SecurityLevel.C_MAC if first else self.level
        if not first:
            self._enc_counter += 1  # incremented for every command after EXTERNAL AUTHENTICATE
        if not level & SecurityLevel.C_MAC:
            return apdu
        if not apdu.secure_messaging or len(apdu.data) < MAC_LENGTH:
            raise ApduError(SW.SECURITY_STATUS, "C-MAC missing")
        body, mac = apdu.data[:-MAC_LENGTH], apdu.data[-MAC_LENGTH:]
        chaining = aes_cmac(self._s_mac, self._chaining + apdu.header() + bytes([len(apdu.data)]) + body)
        if not equal(chaining[:MAC_LENGTH], mac):
            raise ApduError(SW.SECURITY_STATUS, "C-MAC mismatch")
        self._chaining = chaining
        plain = body
        if level & SecurityLevel.C_DECRYPTION and body:
            if len(body) % AES_BLOCK:
                raise ApduError(SW.SECURITY_STATUS, "encrypted data not a block multiple")
            icv = aes_ecb(self._s_enc, self._enc_counter.to_bytes(AES_BLOCK, "big"))
            try:
                plain = unpad80(aes_cbc(self._s_enc, body, icv, encrypt=False))
            except ValueError as exc:
                raise ApduError(SW.SECURITY_STATUS, "bad padding after C-DECRYPTION") from exc
        return apdu.with_data(plain, cla=apdu.cla & ~Cla.SECURE_MESSAGING)

    def wrap(self, response: Response) -> Response:
        if not self.level & SecurityLevel.R_MAC or not is_success(response.sw):
            return response
        data = response.data
        if self.level & SecurityLevel.R_ENCRYPTION and data:
            block = self._enc_counter.to_bytes(AES_BLOCK, "big")
            icv = aes_ecb(self._s_enc, b"\x80" + block[1:])
            data = aes_cbc(self._s_enc, pad80(data, AES_BLOCK), icv)
        rmac = aes_cmac(self._s_rmac, self._chaining + data + response.sw.to_bytes(2, "big"))
        return Response(data + rmac[:MAC_LENGTH], response.sw)

    def decrypt_sensitive(self, data: bytes) -> bytes:
        """AES-CBC with the static DEK, IV zero (GPCS 2.3.1 11.8.2.3, Amd D 7.2.2.2)."""
        if len(data) % AES_BLOCK:
            raise ApduError(SW.WRONG_DATA, "encrypted data not a block multiple")
        return aes_cbc(self._k_dek, data, encrypt=False)
