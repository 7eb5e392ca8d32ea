"""DAP verification on LOAD and Delegated Management tokens and receipts (GPCS 2.3.1 9.2, C.2, C.4, C.5)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY
from tests.cardsim.host import C_MAC, Host, cmac

PKG = bytes.fromhex("D27600012301")
MOD = PKG + b"\x01"
APP = PKG + b"\x01\x01"
SSD = bytes.fromhex("D2760001239900")
SSD_ELF = bytes.fromhex("F0000000010101")  # any ROM load file and module serve as the SSD's code
SSD_MOD = bytes.fromhex("F000000001010101")
DAP_KEY = bytes(range(0x60, 0x70))
RECEIPT_KEY = bytes(range(0x70, 0x80))


@pytest.fixture(scope="module")
def token_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - GP token keys of 1024 bits


def _install_ssd(card, privileges: bytes) -> Host:
    isd = Host(card, TEST_KEY).open()
    data = gp.install_data(
        SSD_ELF, SSD_MOD, SSD, privileges, gp.tlv(0xC9, b"") + gp.system_params(nv=8000, volatile=500)
    )
    assert isd.send(gp.install(0x0C, data))[1] == 0x9000
    card.transmit(gp.select(SSD))
    return Host(card, TEST_KEY).open()


def _put_aes_key(host: Host, kvn: int, key: bytes) -> None:
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x01, bytes([kvn]) + host.key_component(key)))[1] == 0x9000


def _dap_block(sd: bytes, lfdb: bytes, key: bytes = DAP_KEY) -> bytes:
    return gp.tlv(0xE2, gp.tlv(0x4F, sd) + gp.tlv(0xC3, cmac(key, hashlib.sha256(lfdb).digest())))


def _load(host: Host, sd: bytes, dap: bytes, lfdb: bytes, token: bytes = b"") -> int:
    _, sw = host.send(gp.install(0x02, gp.install_for_load_data(PKG, sd), token))
    if sw != 0x9000:
        return sw
    for block in gp.load_blocks(lfdb, dap):
        _, sw = host.send(block)
    return sw


@pytest.mark.parametrize("mandated", [False, True])
def test_dap_verification(card, mandated):
    privileges = b"\xc1\x40\x00" if mandated else b"\xc0\x40\x00"  # SD + DAP (+ mandated) + AM
    ssd = _install_ssd(card, privileges)
    _put_aes_key(ssd, 0x73, DAP_KEY)
    lfdb = gp.cap_file(PKG, [MOD])
    assert _load(ssd, SSD, b"", lfdb) == 0x6982  # DAP block missing
    assert _load(ssd, SSD, _dap_block(SSD, lfdb, TEST_KEY), lfdb) == 0x6982  # wrong DAP
    if mandated:  # a load through the ISD to the ISD needs the mandated DAP too
        card.transmit(gp.select(card.registry.isd_aid))
        isd = Host(card, TEST_KEY).open()
        assert _load(isd, b"", b"", lfdb) == 0x6982
        assert _load(isd, b"", _dap_block(SSD, lfdb), lfdb) == 0x9000
    else:
        assert _load(ssd, SSD, _dap_block(SSD, lfdb), lfdb) == 0x9000
        assert card.registry.load_files[PKG].sd_aid == SSD


def _sign(key, p1: int, p2: int, data: bytes) -> bytes:
    return key.sign(bytes([p1, p2, len(data)]) + data, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303


def _setup_dm(card, token_key) -> Host:
    isd = Host(card, TEST_KEY).open()
    numbers = token_key.public_key().public_numbers()
    modulus, exponent = numbers.n.to_bytes(128, "big"), numbers.e.to_bytes(3, "big")
    rsa_key = b"\x70\xa1\x81\x80" + modulus + b"\x00\xa0\x03" + exponent + b"\x00"
    assert isd.send(gp.apdu(0x80, 0xD8, 0x00, 0x01, rsa_key))[1] == 0x9000
    _put_aes_key(isd, 0x71, RECEIPT_KEY)
    keys, _ = isd.send(gp.apdu(0x80, 0xCA, 0x00, 0xE0, le=0))
    assert bytes.fromhex("c00601 70 a180 a003".replace(" ", "")) in keys
    return _install_ssd(card, b"\xa0\x00\x00")  # SD + Delegated Management


def _check_receipt(card, data: bytes, receipt_data: bytes) -> None:
    assert data[0] == len(data) - 1
    receipt = data[2 : 2 + data[1]]
    confirmation = data[2 + data[1] :]
    assert confirmation[0] == 2
    assert confirmation[4 : 4 + confirmation[3]] == card.identity.kdd  # CIN defaults to the KDD
    assert cmac(RECEIPT_KEY, confirmation + receipt_data) == receipt


def test_delegated_management(card, token_key):
    ssd = _setup_dm(card, token_key)
    lfdb = gp.cap_file(PKG, [MOD])
    load_data = gp.install_for_load_data(PKG, SSD)
    assert ssd.send(gp.install(0x02, load_data))[1] == 0x6982  # no token
    assert ssd.send(gp.install(0x02, load_data, b"\x01" * 128))[1] == 0x6982  # bad token
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - GP token keys of 1024 bits
    assert ssd.send(gp.install(0x02, load_data, _sign(other, 0x02, 0x00, load_data)))[1] == 0x6982
    data, sw = ssd.send(gp.install(0x02, load_data, _sign(token_key, 0x02, 0x00, load_data)))
    assert (data, sw) == (b"\x00", 0x9000)
    for block in gp.load_blocks(lfdb):
        data, sw = ssd.send(block)
    assert sw == 0x9000
    _check_receipt(card, data, gp.lv(PKG) + gp.lv(SSD))

    install_data = gp.install_data(PKG, MOD, APP)
    data, sw = ssd.send(gp.install(0x0C, install_data, _sign(token_key, 0x0C, 0x00, install_data)))
    assert sw == 0x9000
    _check_receipt(card, data, gp.lv(PKG) + gp.lv(APP))
    counter = int.from_bytes(data[2 + data[1] + 1 : 2 + data[1] + 3], "big")

    delete_data = gp.tlv(0x4F, APP)
    assert ssd.send(gp.delete(APP))[1] == 0x6982
    data, sw = ssd.send(gp.delete(APP, token=_sign(token_key, 0x00, 0x00, delete_data)))
    assert sw == 0x9000
    _check_receipt(card, data, gp.lv(APP))
    assert int.from_bytes(data[2 + data[1] + 1 : 2 + data[1] + 3], "big") == counter + 1
    assert APP not in card.registry.apps


def test_isd_operations_need_no_token_and_give_no_receipt(card, token_key):
    _setup_dm(card, token_key)
    card.transmit(gp.select(card.registry.isd_aid))
    isd = Host(card, TEST_KEY).open(C_MAC)
    data, sw = isd.send(gp.install(0x02, gp.install_for_load_data(PKG)))
    assert (data, sw) == (b"\x00", 0x9000)
    for block in gp.load_blocks(gp.cap_file(PKG, [MOD])):
        data, sw = isd.send(block)
    assert (data, sw) == (b"\x00", 0x9000)
