"""PUT KEY: add and replace key sets under the DEK, KCVs, refusals (GPCS 2.3.1 11.8)."""

from __future__ import annotations

import pytest

from tests.cardsim import gp
from tests.cardsim.conftest import TEST_KEY
from tests.cardsim.host import C_DEC, C_MAC, AuthError, Host, kcv

NEW = [bytes([0x10 + k]) * 16 for k in range(3)]


def put_key_set(host: Host, old_kvn: int, new_kvn: int, keys: list[bytes], with_kcv: bool = True) -> tuple:
    data = bytes([new_kvn]) + b"".join(host.key_component(k, with_kcv) for k in keys)
    return host.send(gp.apdu(0x80, 0xD8, old_kvn, 0x81, data, 0))


@pytest.mark.parametrize("scp", [2, 3])
def test_replace_initial_key_set(card, scp02_card, scp):
    target = scp02_card if scp == 2 else card
    host = Host(target, TEST_KEY, scp=scp).open(C_MAC | C_DEC)
    data, sw = put_key_set(host, 0x00, 0x30, NEW)
    assert sw == 0x9000
    assert data == b"\x30" + b"".join(kcv(k, scp == 3) for k in NEW)
    assert sorted(target.registry.isd.sd.keysets) == [0x30]  # initial FF set gave way
    with pytest.raises(AuthError):
        Host(target, TEST_KEY, scp=scp).open()
    host = Host(target, *NEW, scp=scp).open(kvn=0x30)
    newer = [bytes([0x20 + k]) * 16 for k in range(3)]
    assert put_key_set(host, 0x30, 0x31, newer)[1] == 0x9000
    assert sorted(target.registry.isd.sd.keysets) == [0x31]
    Host(target, *newer, scp=scp).open()


@pytest.mark.parametrize("length", [16, 24, 32])
def test_aes_key_lengths(card, host, length):
    keys = [bytes([k]) * length for k in (1, 2, 3)]
    data, sw = put_key_set(host, 0x00, 0x32, keys)
    assert sw == 0x9000 and data[0] == 0x32
    Host(card, *keys).open(kvn=0x32)


def test_single_key_replacement_and_add_second_set(card, host):
    assert put_key_set(host, 0x00, 0x30, NEW)[1] == 0x9000
    host = Host(card, *NEW).open(kvn=0x30)
    assert put_key_set(host, 0x00, 0x31, NEW)[1] == 0x9000
    assert sorted(card.registry.isd.sd.keysets) == [0x30, 0x31]  # FF went with the first set
    mac = bytes([0x77]) * 16
    data, sw = host.send(gp.apdu(0x80, 0xD8, 0x31, 0x02, b"\x31" + host.key_component(mac), 0))
    assert (data, sw) == (b"\x31" + kcv(mac, True), 0x9000)
    Host(card, NEW[0], mac, NEW[2]).open(kvn=0x31)


def test_refusals(card, host):
    assert put_key_set(host, 0x00, 0x30, NEW)[1] == 0x9000
    host = Host(card, *NEW).open(kvn=0x30)
    assert put_key_set(host, 0x00, 0x30, NEW)[1] == 0x6A80  # KVN exists
    assert put_key_set(host, 0x44, 0x45, NEW)[1] == 0x6A88  # no such set
    bad = bytearray(bytes([0x35]) + b"".join(host.key_component(k) for k in NEW))
    bad[-1] ^= 0x01
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x81, bytes(bad)))[1] == 0x6A80  # KCV mismatch
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x00, b"\x35"))[1] == 0x6A86
    one = b"\x35" + b"".join(host.key_component(k) for k in NEW)
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x01, one))[1] == 0x6A80  # several keys without P2 b8
    des = b"\x35\x80\x10" + bytes(16) + b"\x00"
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x01, des))[1] == 0x6A80  # 3DES key in an SCP03 set
    assert host.send(gp.apdu(0x80, 0xD8, 0x00, 0x81, b"\x35\x88\x40" + bytes(4)))[1] == 0x6A80
    assert put_key_set(host, 0x00, 0x36, NEW, with_kcv=False)[1] == 0x9000


def test_put_key_needs_cmac(card):
    host = Host(card, TEST_KEY).open(0x00)
    assert put_key_set(host, 0x00, 0x30, NEW)[1] == 0x6982
    assert card.transmit(bytes.fromhex("80D80081023000")).hex() == "6982"
