"""APDU round trips per second through the transports, each against a baseline measured in the same run.

- local: `LocalTransport.transmit` vs. calling `card.transmit` directly.
- pcsc:  `PcscTransport.transmit` vs. pyscard's own `CardConnection.transmit`, both through a pcscd started
  here (by PID, stopped at the end) and a card served by `cardsim.vpcd.serve` in a thread.

Run: .venv/bin/python -m bench.transport [--count N] [--skip-pcsc]
Target through pcscd: >= 2,000 APDU/s. Exit status 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from smartcard.System import readers as pyscard_readers

from cardsim.vpcd import serve
from tsm_core.transport.errors import NoCard, TransportError
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcsc import PcscTransport, list_readers

READER = "Virtual PCD 00 00"
PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
TARGET_PCSC = 2_000
APDU = bytes.fromhex("00A4040008A000000151000000")
ATR = bytes.fromhex("3B80800101")


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
    print(f"{name:<34} {measured:>12,.0f} APDU/s")
    print(f"{baseline_name:<34} {baseline:>12,.0f} APDU/s")
    print(f"{'ratio (transport / baseline)':<34} {measured / baseline:>12.2f}")


def bench_local(count: int) -> None:
    card = EchoCard()
    with LocalTransport(card) as transport:
        measured = rate(lambda: transport.transmit(APDU), count)
    baseline = rate(lambda: card.transmit(APDU), count)
    print("== local (in-process card) ==")
    report("LocalTransport.transmit", "baseline: card.transmit", measured, baseline)


def _pcscd_running() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(PCSCD_SOCKET)
        except OSError:
            return False
    return True


def _wait(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _card_present() -> bool:
    transport = PcscTransport(READER)
    try:
        transport.connect()
    except NoCard:
        return False
    finally:
        transport.close()
    return True


def _has_reader() -> bool:
    try:
        return READER in list_readers()
    except TransportError:
        return False


@contextmanager
def pcscd_with_card() -> Iterator[None]:
    """Our own pcscd (stopped by PID) with an `EchoCard` served through vpcd."""
    binary = shutil.which("pcscd")
    if binary is None:
        raise SystemExit("pcscd is not installed")
    if _pcscd_running():
        raise SystemExit(f"a pcscd is already running ({PCSCD_SOCKET}); stop it first, this bench starts its own")
    process = subprocess.Popen([binary, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(EchoCard(),), kwargs={"stop": stop}, daemon=True)
    try:
        _wait(_has_reader, "pcscd")
        thread.start()
        _wait(_card_present, "the virtual card")
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def bench_pcsc(count: int) -> float:
    with pcscd_with_card():
        with PcscTransport(READER) as transport:
            measured = rate(lambda: transport.transmit(APDU), count)
        (reader,) = [r for r in pyscard_readers() if str(r) == READER]
        connection = reader.createConnection()
        connection.connect()
        command = list(APDU)
        try:
            baseline = rate(lambda: connection.transmit(command), count)
        finally:
            connection.disconnect()
            connection.release()
    print("== pcsc (pcscd + vpcd + cardsim.vpcd.serve) ==")
    report("PcscTransport.transmit", "baseline: pyscard connection.transmit", measured, baseline)
    verdict = "meets" if measured >= TARGET_PCSC else "MISSES"
    print(f"target >= {TARGET_PCSC:,} APDU/s through pcscd: {verdict}")
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="APDUs per measurement")
    parser.add_argument("--skip-pcsc", action="store_true", help="only the in-process transport")
    args = parser.parse_args()
    bench_local(args.count * 10)
    if args.skip_pcsc:
        return 0
    return 0 if bench_pcsc(args.count) >= TARGET_PCSC else 1


if __name__ == "__main__":
    sys.exit(main())
