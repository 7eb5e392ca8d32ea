"""An audited SCP03 channel open, against the leanest raw PKCS#11 loop, in one run (issue 8 targets).

    .venv/bin/python bench/audited_open.py [--seconds 2] [--database-url postgresql+psycopg://root@127.0.0.1/postgres]
                                           [--processes 2] [--rounds 3]

Per round, in this process: (a) the independent raw loop of bench/raw_scp03.py (1.00), (b) the key service's GP
layer (SecureChannel with a KDF3 diversifier), (c) the audited facade: `service.channels.open` (policy, signed
key record, anchor check) → INITIALIZE UPDATE → card cryptogram → the audit record committed and anchored →
EXTERNAL AUTHENTICATE → close. With --processes N, N processes run (c) at once on the same token and database
and their sum is compared with the raw loop and with (c) alone. Prints min / median / max of the rounds.
Targets: (c) / (a) >= 0.6 on SQLite and on PostgreSQL; N = 2 processes >= 1.8 x (c) on PostgreSQL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from raw_scp03 import setup_loop
from scratch import hsm_of, scratch_settings
from timing import rate

from globalplatform.keys import KeyAlgorithm
from keyservice.channels import ChannelSpec, DivMethod
from keyservice.gp.channel import Scp, SecureChannel
from keyservice.gp.diversify import Diversifier
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.runtime import open_service
from keyservice.service import KeyService
from keyservice.views import NewKey
from storage.config import Settings

KMC = bytes(range(0x40, 0x50))
KDD = bytes.fromhex("00010203040506070809")
HOST = bytes.fromhex("0102030405060708")
CARD = bytes.fromhex("1112131415161718")
OFFICER = Request(Caller("bench", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "bench")
TSM = Request(Caller("bench", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-bench")
SPEC = ChannelSpec(("kmc",), DivMethod.KDF3, security_level=0x03, kvn=0x30)


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def card_response() -> bytes:
    """What the card answers to INITIALIZE UPDATE (the card side, in software: Amd D §6.2)."""
    enc = _cmac(KMC, b"\x01\x00\x00\x00\x01\x00" + KDD)
    mac = _cmac(KMC, b"\x01\x00\x00\x00\x02\x00" + KDD)
    ctx = HOST + CARD
    s_mac = _cmac(mac, bytes(11) + b"\x06\x00\x00\x80\x01" + ctx)
    del enc
    cryptogram = _cmac(s_mac, bytes(11) + b"\x00\x00\x00\x40\x01" + ctx)[:8]
    return KDD + bytes([0x30, 0x03, 0x00]) + CARD + cryptogram


RESPONSE = card_response()


def facade_open(service: KeyService) -> Callable[[], None]:
    def one() -> None:
        with service.channels.open(TSM, SPEC) as session:
            session.initialize_update(HOST)
            session.authenticate(RESPONSE)
    return one


def _worker(settings: Settings, seconds: float, start: float, queue: multiprocessing.Queue[float]) -> None:
    service = open_service(settings)
    one = facade_open(service)
    one()
    while time.time() < start:
        time.sleep(0.001)
    n, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        for _ in range(20):
            one()
        n += 20
    queue.put(n / elapsed)


def parallel(settings: Settings, processes: int, seconds: float) -> float:
    """Audited opens per second summed over `processes` processes started at once."""
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[float] = ctx.Queue()
    start = time.time() + 3.0
    workers = [ctx.Process(target=_worker, args=(settings, seconds, start, queue)) for _ in range(processes)]
    for w in workers:
        w.start()
    total = sum(queue.get(timeout=120) for _ in workers)
    for w in workers:
        w.join()
    return total


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--processes", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    settings = scratch_settings("bench-open", args.database_url)
    service = open_service(settings)
    service.keys.import_test(OFFICER, NewKey("kmc", KeyAlgorithm.AES, 16, KeyUsage.KMC, "bench"), KMC)
    hsm = hsm_of(service)
    kmc = hsm.hot_handle("kmc")
    raw = setup_loop(hsm.module, hsm._token.slot.slot_id, kmc, KMC, KDD, HOST, CARD)
    div = Diversifier(kmc, DivMethod.KDF3, 16)

    def gp_layer() -> None:
        with SecureChannel(hsm, Scp.SCP03, diversifier=div, security_level=0x03) as ch:
            ch.initialize_update(0x30, HOST)
            ch.verify_card_response(RESPONSE)
            ch.external_authenticate()

    facade = facade_open(service)
    backend = settings.database_url.split(":", 1)[0].split("+")[0]
    raws, gps, facades = [], [], []
    for _ in range(args.rounds):
        r = rate(raw, args.seconds)
        raws.append(r)
        gps.append(rate(gp_layer, args.seconds) / r)
        facades.append(rate(facade, args.seconds) / r)
    print(f"SCP03 set-up, one process, ratio to the raw loop (min / median / max of {args.rounds} rounds):")
    print(f"  raw PKCS#11 loop          {statistics.median(raws):8,.0f}/s   1.00")
    print(f"  GP layer                  {statistics.median(gps) * statistics.median(raws):8,.0f}/s   "
          f"{_spread(gps)}")
    print(f"  audited facade ({backend:8}) {statistics.median(facades) * statistics.median(raws):8,.0f}/s   "
          f"{_spread(facades)}   target >= 0.6")
    if args.processes:
        one = statistics.median(facades) * statistics.median(raws)
        total = parallel(settings, args.processes, args.seconds)
        print(f"  {args.processes} processes, audited     {total:8,.0f}/s   {total / statistics.median(raws):.2f} of "
              f"the raw loop, {total / one:.2f} x one process   target >= 1.8 x on PostgreSQL")


if __name__ == "__main__":
    main()
