"""SCP02, card side (GPCS 2.3.1 Appendix E): session keys (E.4.1), cryptograms (E.4.2), C-MAC with ICV
encryption on the modified APDU (E.4.4), C-DECRYPTION (E.4.6), R-MAC (E.4.5), sensitive data (E.4.7).

Supported i: 05, 15, 45, 55 (3 keys, explicit initiation, C-MAC on the modified APDU; b5 = ICV encryption,
b7 = well-known pseudo-random card challenge).
"""

from __future__ import annotations

import os
from enum import IntEnum, IntFlag, unique
from typing import Final

from cardsim.apdu import Cla, CommandApdu, Response
from cardsim.keys import KeyId, KeySet
from cardsim.primitives import (
    DES_BLOCK,
    des3_cbc,
    des3_ecb,
    des3_mac,
    equal,
    retail_mac,
    unpad80,
)
from cardsim.securechannel import SecureChannel, SecurityLevel
from cardsim.sw import SW, ApduError

SUPPORTED_I: Final = frozenset({0x05, 0x15, 0x45, 0x55})


@unique
class Scp02Option(IntFlag):
    """Bits of the SCP02 i parameter (GPCS 2.3.1 E.1.1)."""

    THREE_KEYS = 0x01
    """b1: three Secure Channel keys."""
    EXPLICIT = 0x04
    """b3: explicit initiation mode."""
    ICV_ENCRYPTION = 0x10
    """b5: ICV encryption for C-MAC."""
    RMAC_SUPPORT = 0x20
    """b6: R-MAC support (not enforced here: R-MAC is accepted for every supported i)."""
    PSEUDO_RANDOM_CHALLENGE = 0x40
    """b7: well-known pseudo-random algorithm for the card challenge."""


@unique
class Scp02Constant(IntEnum):
    """Derivation constants for session keys (GPCS 2.3.1 E.4.1 Table E-1)."""

    C_MAC = 0x0101
    R_MAC = 0x0102
    DEK = 0x0181
    ENC = 0x0182


def session_key(static: bytes, constant: Scp02Constant, counter: int) -> bytes:
    """3DES-CBC(static, constant || sequence counter || 00 x 12), IV zero (GPCS 2.3.1 E.4.1)."""
    data = constant.to_bytes(2, "big") + counter.to_bytes(2, "big") + bytes(12)
    return des3_cbc(static, data)


class Scp02Channel(SecureChannel):
    """One SCP02 session."""

    scp = 0x02

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
        self._host_challenge = host_challenge
        self._s_enc = session_key(keyset.secret(KeyId.ENC), Scp02Constant.ENC, counter)
        self._s_mac = session_key(keyset.secret(KeyId.MAC), Scp02Constant.C_MAC, counter)
        self._s_rmac = session_key(keyset.secret(KeyId.MAC), Scp02Constant.R_MAC, counter)
        self._s_dek = session_key(keyset.secret(KeyId.DEK), Scp02Constant.DEK, counter)
        if card_challenge is None:
            if i & Scp02Option.PSEUDO_RANDOM_CHALLENGE:
                # E.4.2.1: 6 leftmost bytes of a C-MAC (ICV zero) over the selected SD's AID, S-MAC key
                card_challenge = retail_mac(self._s_mac, aid)[:6]
            else:
                card_challenge = os.urandom(6)
        self._card_challenge = card_challenge
        self._icv: bytes | None = None
        self._ricv = bytes(DES_BLOCK)
        self._rmac_input = b""

    def __repr__(self) -> str:
        return f"Scp02Channel(i={self._i:02X}, level={self.level!r}, authenticated={self.authenticated})"

    def initialize_update_response(self) -> bytes:
        """KDD || KVN || 02 || counter || card challenge || card cryptogram (GPCS 2.3.1 E.5.1.3)."""
        counter = self._counter.to_bytes(2, "big")
        cryptogram = des3_mac(self._s_enc, self._host_challenge + counter + self._card_challenge)
        return self._kdd + bytes([self._kvn, self.scp]) + counter + self._card_challenge + cryptogram

    def supports_level(self, level: int) -> bool:
        return not level & SecurityLevel.R_ENCRYPTION

    def verify_host_cryptogram(self, host_cryptogram: bytes) -> bool:
        counter = self._counter.to_bytes(2, "big")
        expected = des3_mac(self._s_enc, counter + self._card_challenge + self._host_challenge)
        return equal(expected, host_cryptogram)

    def _next_icv(self) -> bytes:
        if self._icv is None:
            return bytes(DES_BLOCK)
        if self._i & Scp02Option.ICV_ENCRYPTION:
            return des3_ecb(self._s_mac[:8], self._icv)
        return self._icv

    def unwrap(self, apdu: CommandApdu, *, first: bool = False) -> CommandApdu:
        level = SecurityLevel.C_MAC if first else self.level
        if not level & SecurityLevel.C_MAC:
            self._record_rmac_input(apdu)
            return apdu
        if not apdu.secure_messaging or len(apdu.data) < DES_BLOCK:
            raise ApduError(SW.SECURITY_STATUS, "C-MAC missing")
        body, mac = apdu.data[:-DES_BLOCK], apdu.data[-DES_BLOCK:]
        plain = body
        if level & SecurityLevel.C_DECRYPTION and body:
            if len(body) % DES_BLOCK:
                raise ApduError(SW.SECURITY_STATUS, "encrypted data not a block multiple")
            try:
                plain = unpad80(des3_cbc(self._s_enc, body, encrypt=False))
            except ValueError as exc:
                raise ApduError(SW.SECURITY_STATUS, "bad padding after C-DECRYPTION") from exc
        header = bytes([apdu.cla, apdu.ins, apdu.p1, apdu.p2, len(plain) + DES_BLOCK])
        expected = retail_mac(self._s_mac, header + plain, self._next_icv())
        if not equal(expected, mac):
            raise ApduError(SW.SECURITY_STATUS, "C-MAC mismatch")
        self._icv = expected
        if first:
            self._ricv = expected  # R-MAC chaining starts from the EXTERNAL AUTHENTICATE C-MAC
        result = apdu.with_data(plain, cla=apdu.cla & ~Cla.SECURE_MESSAGING)
        self._record_rmac_input(result)
        return result

    def _record_rmac_input(self, plain: CommandApdu) -> None:
        """E.4.5: R-MAC covers the unwrapped command (CLA with b1-b3 cleared, Lc, data)."""
        cla = plain.cla & ~(Cla.SECURE_MESSAGING | Cla.CHANNEL_MASK)
        self._rmac_input = bytes([cla, plain.ins, plain.p1, plain.p2, len(plain.data)]) + plain.data

    def wrap(self, response: Response) -> Response:
        if not self.level & SecurityLevel.R_MAC:
            return response
        data = self._rmac_input + bytes([len(response.data)]) + response.data + response.sw.to_bytes(2, "big")
        self._ricv = retail_mac(self._s_rmac, data, self._ricv)
        return Response(response.data + self._ricv, response.sw)

    def decrypt_sensitive(self, data: bytes) -> bytes:
        """3DES-ECB with the session DEK (GPCS 2.3.1 E.4.7)."""
        if len(data) % DES_BLOCK:
            raise ApduError(SW.WRONG_DATA, "encrypted data not a block multiple")
        return des3_ecb(self._s_dek, data, encrypt=False)
