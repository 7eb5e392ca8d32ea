"""Key-service facade against the bare python-pkcs11 call, per operation, measured in one process.

    .venv/bin/python bench/keyservice_overhead.py [--seconds 2]

Creates a scratch SoftHSM2 token under a temporary directory (SQLite database), so it never touches var/.
CMAC goes through a purpose-scoped MacContext (audited at open/close); KCV and generate are management
operations with one synchronous audit record each (SQLite commit + HSM HMAC + anchor update).
"""

from __future__ import annotations

import argparse
from typing import Any

from scratch import hsm_of, scratch_service
from timing import rate

from globalplatform.keys import KeyAlgorithm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    import pkcs11
    from pkcs11.constants import Attribute
    from pkcs11.mechanisms import KeyType, Mechanism

    from keyservice.identity import Caller, CallerKind
    from keyservice.inventory import KeyState, KeyUsage
    from keyservice.policy import Purpose, Request
    from keyservice.views import NewKey

    ks = scratch_service()
    officer = Request(Caller("bench", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "bench")
    ks.keys.import_test(officer, NewKey("mac-key", KeyAlgorithm.AES, 16, KeyUsage.RECEIPT_KEY, "bench"),
                       bytes.fromhex("404142434445464748494A4B4C4D4E4F"))
    data = bytes(range(32))

    # Baseline: the bare python-pkcs11 calls on the same token and key, in this process.
    token = pkcs11.lib(hsm_of(ks).module).get_token(token_label=hsm_of(ks).token_label)
    with token.open(rw=True) as session:  # the login is per application: the key service logged in
        key: Any = session.get_key(label="mac-key", key_type=KeyType.AES)
        bare_cmac = rate(lambda: key.sign(data, mechanism=Mechanism.AES_CMAC), args.seconds)
        bare_kcv = rate(lambda: key.encrypt(b"\x01" * 16, mechanism=Mechanism.AES_ECB), args.seconds)
        counter = iter(range(10**9))
        bare_gen = rate(lambda: session.generate_key(
            KeyType.AES, 128, label=f"bare-{next(counter)}", store=True,
            template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}), args.seconds / 2)

    service_req = Request(Caller("bench", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "bench")
    with ks.channels.mac(service_req, "mac-key") as ctx:
        facade_cmac = rate(lambda: ctx.mac(data), args.seconds)
    facade_kcv = rate(lambda: ks.keys.kcv(officer, "mac-key"), args.seconds)
    gen_counter = iter(range(10**9))
    facade_gen = rate(lambda: ks.keys.generate(officer, NewKey(f"gen-{next(gen_counter)}", KeyAlgorithm.AES, 16,
                                                          KeyUsage.KEK, "bench")), args.seconds / 2)
    assert ks.keys.show("mac-key").state == KeyState.ACTIVE

    print(f"{'operation':10} {'facade/s':>10} {'bare/s':>10} {'facade time / bare time':>24}")
    for name, facade, bare in (("cmac", facade_cmac, bare_cmac), ("kcv", facade_kcv, bare_kcv),
                               ("generate", facade_gen, bare_gen)):
        print(f"{name:10} {facade:10.0f} {bare:10.0f} {bare / facade:24.2f}x")


if __name__ == "__main__":
    main()
