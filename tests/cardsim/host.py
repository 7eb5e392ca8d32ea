"""A compact host side of SCP02/SCP03 for the card simulator's tests, written independently of cardsim
with `cryptography` (GPCS 2.3.1 Appendix E; Amd D). Tests only."""

from __future__ import annotations

import os

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

C_MAC, C_DEC, R_MAC, R_ENC = 0x01, 0x02, 0x10, 0x20


def _k3(key: bytes) -> bytes:
    return key * 3 if len(key) == 8 else key + key[:8] if len(key) == 16 else key


def tdes(key: bytes, data: bytes, iv: bytes | None = None, decrypt: bool = False) -> bytes:
    cipher = Cipher(TripleDES(_k3(key)), modes.ECB() if iv is None else modes.CBC(iv))  # noqa: S305 - GP mandates ECB
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def aes(key: bytes, data: bytes, iv: bytes | None = None, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB() if iv is None else modes.CBC(iv))  # noqa: S305 - GP mandates ECB
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def pad(data: bytes, block: int) -> bytes:
    data += b"\x80"
    return data + bytes(-len(data) % block)


def mac3(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    return tdes(key, pad(data, 8), iv)[-8:]


def retail(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    data = pad(data, 8)
    chain = iv
    for i in range(0, len(data) - 8, 8):
        chain = tdes(key[:8], bytes(a ^ b for a, b in zip(chain, data[i : i + 8], strict=True)))
    return tdes(key, bytes(a ^ b for a, b in zip(chain, data[-8:], strict=True)))


def kcv(key: bytes, is_aes: bool) -> bytes:
    return aes(key, b"\x01" * 16)[:3] if is_aes else tdes(key, bytes(8))[:3]


def kdf(key: bytes, const: int, context: bytes, bits: int) -> bytes:
    out = b""
    for i in range(1, (bits + 127) // 128 + 1):
        out += cmac(key, bytes(11) + bytes([const, 0]) + bits.to_bytes(2, "big") + bytes([i]) + context)
    return out[: bits // 8]


class AuthError(Exception):
    pass


class Host:
    """Opens a secure channel to whatever SD is selected on `card` and wraps/unwraps APDUs."""

    def __init__(
        self, card, enc: bytes, mac: bytes | None = None, dek: bytes | None = None, scp: int = 3, i: int = 0x55
    ):
        self.card, self.scp, self.i02 = card, scp, i
        self.enc, self.mac, self.dek = enc, mac or enc, dek or enc
        self.level = 0
        self.icv = bytes(8 if scp == 2 else 16)

    # -- session opening ----------------------------------------------------------------------------------
    def initialize_update(self, kvn: int = 0, host_challenge: bytes | None = None) -> tuple[bytes, bytes]:
        self.hc = host_challenge or os.urandom(8)
        rapdu = self.card.transmit(bytes([0x80, 0x50, kvn, 0, 8]) + self.hc)
        return rapdu[:-2], rapdu[-2:]

    def open(self, level: int = C_MAC, kvn: int = 0, tamper: bool = False) -> Host:
        data, sw = self.initialize_update(kvn)
        if sw != b"\x90\x00":
            raise AuthError(sw.hex())
        self.kdd, self.kvn = data[:10], data[10]
        if self.scp == 2:
            self._scp02_keys(data)
        else:
            self._scp03_keys(data)
        if tamper:
            self.host_cryptogram = bytes([self.host_cryptogram[0] ^ 1]) + self.host_cryptogram[1:]
        header = bytes([0x84, 0x82, level, 0, 16])
        if self.scp == 2:
            mac = retail(self.s_mac, header + self.host_cryptogram)
            self.icv, self.ricv = mac, mac
        else:
            self.chain = cmac(self.s_mac, bytes(16) + header + self.host_cryptogram)
            mac = self.chain[:8]
        sw = self.card.transmit(header + self.host_cryptogram + mac)[-2:]
        if sw != b"\x90\x00":
            raise AuthError(sw.hex())
        self.level, self.counter = level, 0
        return self

    def _scp02_keys(self, data: bytes) -> None:
        seq, cc, crypt = data[12:14], data[14:20], data[20:28]

        def sk(key: bytes, const: bytes) -> bytes:
            return tdes(key, const + seq + bytes(12), bytes(8))

        self.s_enc, self.s_mac = sk(self.enc, b"\x01\x82"), sk(self.mac, b"\x01\x01")
        self.s_rmac, self.s_dek = sk(self.mac, b"\x01\x02"), sk(self.dek, b"\x01\x81")
        if mac3(self.s_enc, self.hc + seq + cc) != crypt:
            raise AuthError("card cryptogram")
        self.host_cryptogram = mac3(self.s_enc, seq + cc + self.hc)

    def _scp03_keys(self, data: bytes) -> None:
        cc, crypt = data[13:21], data[21:29]
        ctx, bits = self.hc + cc, len(self.enc) * 8
        self.s_enc, self.s_mac = kdf(self.enc, 4, ctx, bits), kdf(self.mac, 6, ctx, bits)
        self.s_rmac = kdf(self.mac, 7, ctx, bits)
        if kdf(self.s_mac, 0, ctx, 64) != crypt:
            raise AuthError("card cryptogram")
        self.host_cryptogram = kdf(self.s_mac, 1, ctx, 64)

    # -- commands -----------------------------------------------------------------------------------------
    def wrap(self, apdu: bytes) -> bytes:
        cla, ins, p1, p2 = apdu[:4]
        data, le = (apdu[5 : 5 + apdu[4]], apdu[5 + apdu[4] :]) if len(apdu) > 5 else (b"", apdu[4:])
        self.plain = (cla, ins, p1, p2, data)
        if self.scp == 3:
            self.counter += 1
        if not self.level & C_MAC:
            return apdu
        cla |= 0x04
        if self.scp == 2:
            icv = tdes(self.s_mac[:8], self.icv) if self.i02 & 0x10 else self.icv
            self.icv = retail(self.s_mac, bytes([cla, ins, p1, p2, len(data) + 8]) + data, icv)
            if self.level & C_DEC and data:
                data = tdes(self.s_enc, pad(data, 8), bytes(8))
            mac = self.icv
        else:
            if self.level & C_DEC and data:
                iv = aes(self.s_enc, self.counter.to_bytes(16, "big"))
                data = aes(self.s_enc, pad(data, 16), iv)
            self.chain = cmac(self.s_mac, self.chain + bytes([cla, ins, p1, p2, len(data) + 8]) + data)
            mac = self.chain[:8]
        return bytes([cla, ins, p1, p2, len(data) + 8]) + data + mac + le

    def unwrap(self, rapdu: bytes) -> tuple[bytes, int]:
        data, sw = rapdu[:-2], int.from_bytes(rapdu[-2:], "big")
        if not self.level & R_MAC:
            return data, sw
        if self.scp == 3 and not (sw == 0x9000 or sw >> 8 in (0x62, 0x63)):
            return data, sw
        body, mac = data[:-8], data[-8:]
        if self.scp == 2:
            cla, ins, p1, p2, cdata = self.plain
            msg = bytes([cla & ~0x07, ins, p1, p2, len(cdata)]) + cdata + bytes([len(body)]) + body
            self.ricv = retail(self.s_rmac, msg + rapdu[-2:], self.ricv)
            expected = self.ricv
        else:
            expected = cmac(self.s_rmac, self.chain + body + rapdu[-2:])[:8]
        if expected != mac:
            raise AuthError("R-MAC")
        if self.scp == 3 and self.level & R_ENC and body:
            iv = aes(self.s_enc, b"\x80" + self.counter.to_bytes(16, "big")[1:])
            plain = aes(self.s_enc, body, iv, decrypt=True).rstrip(b"\x00")
            body = plain[:-1]
        return body, sw

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        return self.unwrap(self.card.transmit(self.wrap(apdu)))

    # -- sensitive data -----------------------------------------------------------------------------------
    def encrypt(self, data: bytes) -> bytes:
        """Key or sensitive data under the DEK (SCP02: session DEK, 3DES-ECB; SCP03: static DEK, AES-CBC)."""
        if self.scp == 2:
            return tdes(self.s_dek, data)
        return aes(self.dek, data, bytes(16))

    def key_component(self, key: bytes, with_kcv: bool = True) -> bytes:
        is_aes = self.scp == 3
        if is_aes:
            body = bytes([len(key)]) + self.encrypt(key + bytes(-len(key) % 16))
            ktype = 0x88
        else:
            body, ktype = self.encrypt(key), 0x80
        check = kcv(key, is_aes) if with_kcv else b""
        return bytes([ktype, len(body)]) + body + bytes([len(check)]) + check
