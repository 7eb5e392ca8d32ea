"""The leanest provisioning dialog a host can drive: the baseline every ratio of bench/provisioning.py is measured
against.

Independent of the product's secure-channel code: a minimal SCP03 host in pure `cryptography` (no HSM, no
database, no audit, no probes), in S8 mode at security level C-MAC (01) as the job engine opens its channels
(GPCS 2.3.1 Amd D v1.1.2: KDF §6.2.1, cryptograms §6.2.2.2-3, C-MAC §6.2.4; sensitive data under the static DEK,
AES-CBC with a zero IV, GPCS 2.3.1 §11.8.2.3 and §11.11.2.3). It computes only what this dialog needs: S-MAC (no
C-DECRYPTION, no R-MAC), the card cryptogram checked with `hmac.compare_digest`. The plain commands (INSTALL,
LOAD, STORE DATA) are the ones the engine sends, built once by the caller; per card it derives the session keys,
MACs every command, diversifies the SP's keys for PUT KEY (KDF3, GlobalPlatformPro's AES template) and encrypts
the sensitive DGI.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

MAC_LENGTH: Final = 8
BLOCK: Final = 16
ZERO_IV: Final = bytes(BLOCK)
SECURE_MESSAGING: Final = 0x04
C_MAC: Final = 0x01
SUCCESS: Final = b"\x90\x00"
CARD_CRYPTOGRAM, HOST_CRYPTOGRAM, S_MAC = 0x00, 0x01, 0x06
"""Data derivation constants (Amd D §6.2.1 Table 6-1)."""
AES_KEY: Final = 0x88
KCV_INPUT: Final = b"\x01" * BLOCK
"""AES key check value: the first 3 bytes of AES-ECB(key, 01..01) (GPCS 2.3.1 §11.8.2.3 Amd D §7.2.2)."""


class Card(Protocol):
    """The in-process card (`cardsim.card.Card`)."""

    def power_on(self) -> bytes: ...

    def transmit(self, capdu: bytes) -> bytes: ...


@dataclass(frozen=True)
class Command:
    """A plain command: CLA INS P1 P2, data, and whether Le ('00') follows."""

    header: bytes
    data: bytes
    le: bool = True


@dataclass(frozen=True)
class Dialog:
    """What is the same for every card: AIDs, keys, and the plain commands in the order the engine sends them."""

    isd_aid: bytes
    isd_kvn: int
    isd_key: bytes
    """ENC = MAC = DEK of the ISD (the vendor's key, not diversified: the wearable profile)."""
    ssd_aid: bytes
    initial_ssd_key: bytes
    sp_master: bytes
    """The SP's SSD master key; the SSD's keys are KDF3-diversified from it with the card's KDD."""
    sp_kvn: int
    install_ssd: Command
    install_load: Command
    load: tuple[Command, ...]
    install_app: Command
    extradite: Command
    install_perso: Command
    store_data_header: bytes
    plain_dgis: bytes
    sensitive_dgi: int


def cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _cbc(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(ZERO_IV)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def _kdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """One block of the SP 800-108 counter-mode KDF in the GP layout (Amd D §6.2.1)."""
    return cmac(key, bytes(11) + bytes([constant, 0]) + bits.to_bytes(2, "big") + b"\x01" + context)[:bits // 8]


def kdf3(master: bytes, kdd: bytes, purpose: int) -> bytes:
    """A card key from a master key: CMAC(master, 01 00 00 00 k 00 || KDD), k = 1 ENC, 2 MAC, 3 DEK."""
    return cmac(master, b"\x01\x00\x00\x00" + bytes([purpose, 0]) + kdd)


def _kcv(key: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - the GP KCV is one ECB block
    return encryptor.update(KCV_INPUT)[:3]


class Refused(RuntimeError):
    """The card answered something else than the dialog expects."""


class Host:
    """One SCP03 channel at a time to one card, C-MAC only."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.s_mac = b""
        self.chain = bytes(BLOCK)

    def plain(self, apdu: bytes) -> bytes:
        response = self.card.transmit(apdu)
        if response[-2:] != SUCCESS:
            raise Refused(f"{apdu[:4].hex().upper()} answered {response[-2:].hex().upper()}")
        return response[:-2]

    def open(self, aid: bytes, kvn: int, mac_key: bytes) -> bytes:
        """SELECT, INITIALIZE UPDATE, card cryptogram, EXTERNAL AUTHENTICATE with the static MAC key (S-ENC is
        not needed at level C-MAC); the card's KDD."""
        self.plain(b"\x00\xa4\x04\x00" + bytes([len(aid)]) + aid + b"\x00")
        host_challenge = os.urandom(MAC_LENGTH)
        answer = self.plain(bytes([0x80, 0x50, kvn, 0x00, MAC_LENGTH]) + host_challenge + b"\x00")
        kdd, card_challenge, cryptogram = answer[:10], answer[13:21], answer[21:29]
        context = host_challenge + card_challenge
        self.s_mac = _kdf(mac_key, S_MAC, context, 128)
        if not hmac.compare_digest(_kdf(self.s_mac, CARD_CRYPTOGRAM, context, 64), cryptogram):
            raise Refused("the card cryptogram does not verify")
        self.chain = bytes(BLOCK)
        self.send(Command(bytes([0x80, 0x82, C_MAC, 0x00]), _kdf(self.s_mac, HOST_CRYPTOGRAM, context, 64), False))
        return kdd

    def send(self, command: Command) -> bytes:
        """One command with its C-MAC (MAC chaining, Amd D §6.2.4); the response data."""
        header = bytes([command.header[0] | SECURE_MESSAGING]) + command.header[1:]
        lc = bytes([len(command.data) + MAC_LENGTH])
        self.chain = cmac(self.s_mac, self.chain + header + lc + command.data)
        return self.plain(header + lc + command.data + self.chain[:MAC_LENGTH] + (b"\x00" if command.le else b""))


def _pad80(data: bytes) -> bytes:
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def provision(card: Card, dialog: Dialog, sensitive_value: bytes) -> None:
    """SSD, its keys, LOAD, INSTALL, extradition and personalization of one factory-fresh card."""
    d = dialog
    card.power_on()
    host = Host(card)
    host.open(d.isd_aid, d.isd_kvn, d.isd_key)
    host.send(d.install_ssd)
    kdd = host.open(d.ssd_aid, 0x00, d.initial_ssd_key)
    sp_keys = [kdf3(d.sp_master, kdd, k) for k in (1, 2, 3)]
    key_data = bytes([d.sp_kvn]) + b"".join(bytes([AES_KEY, 1 + BLOCK, BLOCK]) + _cbc(d.initial_ssd_key, key)
                                             + b"\x03" + _kcv(key) for key in sp_keys)
    answer = host.send(Command(b"\x80\xd8\x00\x81", key_data, False))  # no Le, as the key service builds it
    if not hmac.compare_digest(answer, bytes([d.sp_kvn]) + b"".join(_kcv(k) for k in sp_keys)):
        raise Refused("PUT KEY answered other key check values")
    host.open(d.isd_aid, d.isd_kvn, d.isd_key)
    for command in (d.install_load, *d.load, d.install_app, d.extradite):
        host.send(command)
    host.open(d.ssd_aid, d.sp_kvn, sp_keys[1])
    host.send(d.install_perso)
    encrypted = _cbc(sp_keys[2], _pad80(sensitive_value))
    dgi = d.sensitive_dgi.to_bytes(2, "big") + bytes([len(encrypted)]) + encrypted
    host.send(Command(d.store_data_header, d.plain_dgis + dgi, False))
