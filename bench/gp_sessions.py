"""Secure-channel set-up and command wrapping: key-service code vs. raw PKCS#11 vs. pure software, one run.

    .venv/bin/python bench/gp_sessions.py [seconds-per-measurement]

SCP03 set-up = diversify ENC+MAC from a KMC with KDF3, derive S-ENC/S-MAC/S-RMAC, check the card cryptogram,
compute the host cryptogram and the EXTERNAL AUTHENTICATE C-MAC, destroy every session object. (a) is the
minimal raw PKCS#11 call sequence for the same work (bench/raw_scp03.py), (b) pure `cryptography` with
keys in memory, (c) the same set-up through the audited facade (`service.channels.open`).
Targets: >= 1,500 SCP03 set-ups/s, >= 20,000 wrapped commands/s (C-MAC + C-ENC).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from raw_scp03 import setup_loop
from scratch import hsm_of, scratch_service
from timing import rate

from globalplatform.keys import KeyAlgorithm, KeyPurpose
from keyservice.channels import ChannelSpec
from keyservice.gp import hsmops
from keyservice.gp.channel import Scp, SecureChannel
from keyservice.gp.diversify import Diversifier, DivMethod, kdf3_messages
from keyservice.gp.scp03 import Scp03Constant, kdf_messages
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.views import NewKey

OFFICER = Request(Caller("bench", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "bench")
CHANNEL_CALLER = Request(Caller("bench", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "bench")
KMC = bytes(range(0x40, 0x50))
KMC_DES = KMC
KDD = bytes.fromhex("00010203040506070809")
HOST = bytes.fromhex("0102030405060708")
CARD = bytes.fromhex("1112131415161718")
COMMAND = bytes.fromhex("80E2900008DF1F0501020304AA00")



def cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def sw_scp03_setup() -> bytes:
    enc = cmac(KMC, kdf3_messages(KDD, KeyPurpose.ENC, 16)[0])
    mac = cmac(KMC, kdf3_messages(KDD, KeyPurpose.MAC, 16)[0])
    ctx = HOST + CARD
    s_enc = cmac(enc, kdf_messages(Scp03Constant.S_ENC, ctx, 128)[0])
    s_mac = cmac(mac, kdf_messages(Scp03Constant.S_MAC, ctx, 128)[0])
    cmac(mac, kdf_messages(Scp03Constant.S_RMAC, ctx, 128)[0])
    card = cmac(s_mac, kdf_messages(Scp03Constant.CARD_CRYPTOGRAM, ctx, 64)[0])[:8]
    host = cmac(s_mac, kdf_messages(Scp03Constant.HOST_CRYPTOGRAM, ctx, 64)[0])[:8]
    cmac(s_mac, bytes(16) + bytes([0x84, 0x82, 0x03, 0x00, 0x10]) + host)
    del s_enc
    return card


def card_response() -> bytes:
    """What the card answers to INITIALIZE UPDATE (computed in software: the card's side)."""
    return KDD + bytes([0x30, 0x03, 0x00]) + CARD + sw_scp03_setup()


def sw_wrap(s_enc: bytes, s_mac: bytes) -> Callable[[], bytes]:
    counter = [0]

    def wrap() -> bytes:
        counter[0] += 1
        ecb = Cipher(algorithms.AES(s_enc), modes.ECB())  # noqa: S305 - the SCP03 ICV is one AES block
        icv = ecb.encryptor().update(counter[0].to_bytes(16, "big"))
        enc = Cipher(algorithms.AES(s_enc), modes.CBC(icv)).encryptor().update(hsmops.pad80(COMMAND[5:-1], 16))
        return cmac(s_mac, bytes(16) + COMMAND[:4] + bytes([len(enc) + 8]) + enc)

    return wrap


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    service = scratch_service()
    hsm = hsm_of(service)
    response = card_response()
    for label, algorithm, value in (("kmc-aes", KeyAlgorithm.AES, KMC), ("kmc-des", KeyAlgorithm.DES3, KMC_DES)):
        service.keys.import_test(OFFICER, NewKey(label, algorithm, 16, KeyUsage.KMC, "bench"), value)
    kmc, kmc_des = hsm.hot_handle("kmc-aes"), hsm.hot_handle("kmc-des")
    div = Diversifier(kmc, DivMethod.KDF3, 16)
    spec = ChannelSpec(("kmc-aes",), DivMethod.KDF3, security_level=0x03, kvn=0x30)

    def facade() -> None:
        with service.channels.open(CHANNEL_CALLER, spec) as session:
            session.initialize_update(HOST)
            session.authenticate(response)

    def ours() -> None:
        with SecureChannel(hsm, Scp.SCP03, diversifier=div, security_level=0x03) as ch:
            ch.initialize_update(0x30, HOST)
            ch.verify_card_response(response)
            ch.external_authenticate()

    minimal = setup_loop(hsm.module, hsm._token.slot.slot_id, kmc, KMC, KDD, HOST, CARD)

    r_ours, r_min, r_sw = rate(ours, seconds), rate(minimal, seconds), rate(sw_scp03_setup, seconds)
    r_facade = rate(facade, seconds)
    print("SCP03 set-up (KDF3 + session keys + cryptograms), per second, one process:")
    print(f"  key service      {r_ours:10,.0f}   target >= 1,500")
    print(f"  raw PKCS#11 (a)  {r_min:10,.0f}   key service / raw = {r_ours / r_min:.2f}")
    print(f"  software (b)     {r_sw:10,.0f}   key service / software = {r_ours / r_sw:.3f}")
    print(f"  facade (c)       {r_facade:10,.0f}   + policy, key record read and one audit record "
          f"(SQLite, HSM anchor); facade / raw = {r_facade / r_min:.2f}")

    ch = SecureChannel(hsm, Scp.SCP03, diversifier=div, security_level=0x03)
    ch.initialize_update(0x30, HOST)
    ch.verify_card_response(response)
    ch.external_authenticate()
    w_ours = rate(lambda: ch.wrap(COMMAND), seconds)
    w_sw = rate(sw_wrap(bytes(16), bytes(16)), seconds)
    ch.close()
    print(f"SCP03 wrap (C-MAC + C-ENC) per second: key service {w_ours:,.0f} (target >= 20,000), "
          f"software {w_sw:,.0f}, ratio {w_ours / w_sw:.3f}")

    scp02_card = _scp02_response(hsm, kmc_des)
    div02 = Diversifier(kmc_des, DivMethod.EMV, 16)

    def ours02() -> None:
        with SecureChannel(hsm, Scp.SCP02, diversifier=div02, security_level=0x03, i=0x55) as ch2:
            ch2.initialize_update(0x20, HOST)
            ch2.verify_card_response(scp02_card)
            ch2.external_authenticate()

    s02 = rate(ours02, seconds)
    ch2 = SecureChannel(hsm, Scp.SCP02, diversifier=div02, security_level=0x03, i=0x55)
    ch2.initialize_update(0x20, HOST)
    ch2.verify_card_response(scp02_card)
    ch2.external_authenticate()
    w02 = rate(lambda: ch2.wrap(COMMAND), seconds)
    ch2.close()
    print(f"SCP02 (EMV diversify, i=55): set-up {s02:,.0f}/s, wrap (retail C-MAC, ICV enc, C-DEC) {w02:,.0f}/s")


def _scp02_response(hsm: object, kmc_des: int) -> bytes:
    """A valid SCP02 INITIALIZE UPDATE response computed with the key service's own card-cryptogram function."""
    from keyservice.gp import scp02
    from keyservice.hsm import Hsm

    assert isinstance(hsm, Hsm)
    counter, challenge = b"\x00\x2a", CARD[:6]
    keys = Diversifier(kmc_des, DivMethod.EMV, 16).keyset(hsm, KDD, with_dek=False)
    s_enc = scp02.derive_session_key(hsm, keys.enc, scp02.Scp02Constant.S_ENC, counter)
    crypt = scp02.card_cryptogram(hsm, s_enc, HOST, counter, challenge)
    hsmops.destroy(hsm, s_enc)
    keys.destroy(hsm)
    return KDD + bytes([0x20, 0x02]) + counter + challenge + crypt


if __name__ == "__main__":
    main()
