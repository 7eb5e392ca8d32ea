"""APDU round trips per second through the transports, each against a baseline measured in the same run.

- local: `LocalTransport.transmit` vs. calling `card.transmit` directly.
- pcsc:  `PcscTransport.transmit` vs. pyscard's own `CardConnection.transmit`, both through a pcscd started
  here (`tsm_core.transport.pcscd.PrivatePcscd`, stopped by PID) and an echo card served by
  `cardsim.vpcd.serve` in a thread.
- pcsc, full simulator: SELECT of the ISD on `cardsim.state.new_card(None)` through the same pcscd, next to
  the echo card (what the card's own command processing adds) and to the simulator called in process.

Run: .venv/bin/python -m bench.transport [--count N] [--skip-pcsc]
The PC/SC part waits for the test runs' lock file (/tmp/tsm-pcscd-tests.lock) so it never races them.
Target through pcscd: >= 2,000 APDU/s (echo card). Exit status 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import fcntl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from smartcard.System import readers as pyscard_readers

from cardsim.state import new_card
from cardsim.vpcd import serve
from tsm_core.transport.base import CardLike
from tsm_core.transport.errors import TransportError
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport
from tsm_core.transport.pcscd import READY_TIMEOUT, VPCD_READER, PrivatePcscd, card_present, wait_for

READER: Final = VPCD_READER
LOCK_FILE: Final = Path("/tmp/tsm-pcscd-tests.lock")  # noqa: S108 - the test runs' lock, shared on purpose
TARGET_PCSC: Final = 2_000
APDU: Final = bytes.fromhex("00A4040008A000000151000000")
"""SELECT of the ISD by AID (GPCS 2.3.1 §11.9): the echo card echoes it, the simulator answers its FCI."""
ATR: Final = bytes.fromhex("3B80800101")
SERVE_JOIN_TIMEOUT: Final = 5.0


class EchoCard:
    """Minimal card: echoes the command data with '9000' (the bench measures transport, not the card)."""

    def power_on(self) -> bytes:
        return ATR

    def transmit(self, apdu: bytes) -> bytes:
        return apdu[5 : 5 + apdu[4]] + b"\x90\x00" if len(apdu) > 5 else b"\x90\x00"


def rate(call: Callable[[], object], count: int) -> float:
    """Calls per second of `call` over `count` calls (after a short warm-up)."""
    for _ in range(min(100, count)):
        call()
    start = time.perf_counter()
    for _ in range(count):
        call()
    return count / (time.perf_counter() - start)


def report(name: str, baseline_name: str, measured: float, baseline: float) -> None:
    print(f"{name:<42} {measured:>12,.0f} APDU/s")
    print(f"{baseline_name:<42} {baseline:>12,.0f} APDU/s")
    print(f"{'ratio (transport / baseline)':<42} {measured / baseline:>12.2f}")


def bench_local(count: int) -> None:
    card = EchoCard()
    with LocalTransport(card) as transport:
        measured = rate(lambda: transport.transmit(APDU), count)
    baseline = rate(lambda: card.transmit(APDU), count)
    print("== local (in-process card) ==")
    report("LocalTransport.transmit", "baseline: card.transmit", measured, baseline)


@contextmanager
def pcsc_lock() -> Iterator[None]:
    """Wait for the PC/SC test runs of this checkout to finish, and keep them out while measuring."""
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def served(card: CardLike) -> Iterator[None]:
    """`card` inserted in READER (served through vpcd by a thread) until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(card,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: card_present(READER), READY_TIMEOUT, "the virtual card")
        yield
    finally:
        stop.set()
        thread.join(timeout=SERVE_JOIN_TIMEOUT)
        wait_for(lambda: not card_present(READER), READY_TIMEOUT, "pcscd to notice the card removal")


def _pyscard_rate(count: int) -> float:
    (reader,) = [r for r in pyscard_readers() if str(r) == READER]
    connection = reader.createConnection()
    connection.connect()
    command = list(APDU)
    try:
        return rate(lambda: connection.transmit(command), count)
    finally:
        connection.disconnect()
        connection.release()


def _transport_rate(count: int) -> float:
    with PcscTransport(READER) as transport:
        return rate(lambda: transport.transmit(APDU), count)


def bench_pcsc(count: int) -> float:
    simulator = new_card(None)
    with pcsc_lock(), PrivatePcscd(READER):
        with served(EchoCard()):
            echo = _transport_rate(count)
            baseline = _pyscard_rate(count)
        with served(simulator):
            full = _transport_rate(count)
    simulator.power_on()
    in_process = rate(lambda: simulator.transmit(APDU), count)
    print("== pcsc (pcscd + vpcd + cardsim.vpcd.serve), echo card ==")
    report("PcscTransport.transmit", "baseline: pyscard connection.transmit", echo, baseline)
    verdict = "meets" if echo >= TARGET_PCSC else "MISSES"
    print(f"target >= {TARGET_PCSC:,} APDU/s through pcscd: {verdict}")
    print("== pcsc, full simulator (cardsim.state.new_card(None)), SELECT ISD ==")
    report("PcscTransport.transmit, full simulator", "PcscTransport.transmit, echo card", full, echo)
    print(f"{'simulator in process (card.transmit)':<42} {in_process:>12,.0f} APDU/s")
    return echo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="APDUs per measurement")
    parser.add_argument("--skip-pcsc", action="store_true", help="only the in-process transport")
    args = parser.parse_args()
    bench_local(args.count * 10)
    if args.skip_pcsc:
        return 0
    try:
        measured = bench_pcsc(args.count)
    except TransportError as exc:
        raise SystemExit(f"error[{exc.code}]: {exc}") from None
    return 0 if measured >= TARGET_PCSC else 1


if __name__ == "__main__":
    sys.exit(main())
