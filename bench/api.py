"""The key-service API over HTTP against the same operations in process, in one run (issue 12's target).

    .venv/bin/python bench/api.py [--seconds 5] [--workers 2] [--clients 4] [--rounds 3]
                                  [--database-url postgresql+psycopg://root@127.0.0.1:5432/postgres]

A scratch home (test token; SQLite there, or a throwaway PostgreSQL database) with one registered SE whose ISD
key set is the GP test key (SCP03, S8, i=00) and a TSM component's API key (purpose SE_MANAGEMENT). The card's
INITIALIZE UPDATE answer is computed in software, independently of the key service (Amd D §6.2.1-§6.2.2.2).

Per round: (a) in process, one thread: `components.channels.open_channel` (a channel authenticated from the card's
answer: policy, key record, session keys and cryptograms in the HSM, audit record, the handle stored), and
`components.channels.use(..., wrap)` on one channel (handle read, channel resumed: session keys derived again,
audit record, counters saved); (b) the same over HTTP: `POST /api/v1/key-service/channels` and
`POST .../channels/{id}/wrap` to `tsm serve` (gunicorn, --workers W) started by the bench and stopped by its
process group id, from C client processes with one keep-alive connection each (one channel each for the wraps).
Prints requests per second (min / median / max of the rounds) and the ratio (b) / (a). Target: >= 1,000 SCP03
session set-ups per second over HTTP. The full open-card through the API and the relay is not measured here
(the relay is being rewritten in branch `relaydb`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from scratch import scratch_settings
from timing import rate

from globalplatform.keys import KeyAlgorithm
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.runtime import open_service
from keyservice.views import NewKey
from storage.config import Settings
from storage.session import make_engine, session_factory
from tsm_core.apikeys import service as apikeys
from tsm_core.components import channels
from tsm_core.components.service import Component
from tsm_core.context import Tsm
from tsm_core.registry import batch
from tsm_core.registry import service as registry
from tsm_core.tenancy import Scope

GP_TEST_KEY = bytes(range(0x40, 0x50))
KDD = bytes.fromhex("00112233445566778899")
SE_ID = "se-" + KDD.hex()
KVN = 0x30
HOST = bytes.fromhex("0102030405060708")
CARD = bytes.fromhex("1112131415161718")
OFFICER = Caller("bench", CallerKind.OFFICER)
TSM_EXE = str(Path(sys.executable).with_name("tsm"))
GET_DATA = "80CA006600"


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def card_response() -> bytes:
    """The card's INITIALIZE UPDATE answer with static keys = the GP test key (Amd D §6.2.1, §6.2.2.2)."""
    ctx = HOST + CARD
    s_mac = _cmac(GP_TEST_KEY, bytes(11) + b"\x06\x00\x00\x80\x01" + ctx)
    cryptogram = _cmac(s_mac, bytes(11) + b"\x00\x00\x00\x40\x01" + ctx)[:8]
    return KDD + bytes([KVN, 0x03, 0x00]) + CARD + cryptogram


OPEN_BODY = {"se_id": SE_ID, "purpose": "SE_MANAGEMENT", "host_challenge": HOST.hex(),
             "card_response": card_response().hex()}


def setup(settings: Settings) -> tuple[str, Component]:
    """The SE, its key and the component's API key; the key and the component's in-process context."""
    service = open_service(settings)
    officer = Tsm(session_factory(make_engine(settings.database_url, settings.database_busy_timeout)), service,
                  OFFICER)
    service.keys.import_test(Request(OFFICER, Purpose.KEY_MANAGEMENT, "bench"),
                             NewKey("isd", KeyAlgorithm.AES, 16, KeyUsage.ISD_KEYSET, "acme"), GP_TEST_KEY)
    registry.add_tenant(officer, "acme", "vendor")
    registry.import_batch(officer, batch.parse_document({
        "vendor": "acme", "profiles": {"p": {"scp": "03", "i": "00", "isd_aid": "A000000151000000"}},
        "secure_elements": [{"kdd": KDD.hex(), "profile": "p", "isd_key": ["isd"], "isd_kvn": f"{KVN:02X}"}]}))
    made = apikeys.create(officer, "component", "bench", (), ("SE_MANAGEMENT",))
    caller = Caller(f"apikey:{made.view.id}", CallerKind.SERVICE)
    component = Component(Tsm(officer.sessions, service, caller, Scope("component", "bench")),
                          frozenset({"SE_MANAGEMENT"}))
    return made.key, component


def in_process(component: Component, seconds: float) -> tuple[float, float]:
    """(a): set-ups per second and wraps per second, one thread."""
    want = channels.ChannelRequest(SE_ID, Purpose.SE_MANAGEMENT, host_challenge=HOST, card_response=card_response())
    opened = rate(lambda: channels.open_channel(component, want), seconds)
    handle = channels.open_channel(component, want).id
    command = bytes.fromhex(GET_DATA)
    wraps = rate(lambda: channels.use(component, handle, lambda c: c.wrap(command)), seconds)
    return opened, wraps


def _client(port: int, key: str, kind: str, seconds: float, start: float, out: multiprocessing.Queue[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(path: str, body: Mapping[str, object]) -> dict[str, object]:
        conn.request("POST", path, json.dumps(body), headers)
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise SystemExit(f"{path}: {response.status} {data[:300]!r}")
        return dict(json.loads(data))

    path, body = "/api/v1/key-service/channels", dict(OPEN_BODY)
    if kind == "wrap":
        path, body = f"/api/v1/key-service/channels/{post(path, body)['id']}/wrap", {"command": GET_DATA}
    while time.time() < start:
        time.sleep(0.001)
    n, end = 0, start + seconds
    while time.time() < end:
        post(path, body)
        n += 1
    out.put(n)


def over_http(port: int, key: str, kind: str, clients: int, seconds: float) -> float:
    """(b): requests per second from `clients` processes."""
    out: multiprocessing.Queue[int] = multiprocessing.Queue()
    start = time.time() + 1.0
    procs = [multiprocessing.Process(target=_client, args=(port, key, kind, seconds, start, out))
             for _ in range(clients)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(settings: Settings, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    """`tsm serve` on the scratch home, ready."""
    port = _free_port()
    env = {**os.environ, "TSM_HOME": str(settings.home), "TSM_DATABASE_URL": settings.database_url,
           "TSM_TOKEN_LABEL": settings.token_label, "TSM_API_RATE_LIMIT": "100000000 per minute",
           "TSM_LOG_LEVEL": "WARNING"}
    env.pop("SOFTHSM2_CONF", None)
    proc = subprocess.Popen([TSM_EXE, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("tsm serve did not start")


def _line(name: str, values: list[float], base: list[float] | None = None) -> str:
    lo, mid, hi = min(values), statistics.median(values), max(values)
    text = f"  {name:<44} {lo:>8,.0f} / {mid:>8,.0f} / {hi:>8,.0f} /s"
    if base:
        ratios = sorted(v / b for v, b in zip(values, base, strict=True))
        text += f"   ratio to in process {ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    settings = scratch_settings("bench", args.database_url)
    key, component = setup(settings)
    proc, port = serve(settings, args.workers)
    results: dict[str, list[float]] = {"open": [], "wrap": [], "http open": [], "http wrap": []}
    measure: dict[str, Callable[[], float]] = {
        "http open": lambda: over_http(port, key, "open", args.clients, args.seconds),
        "http wrap": lambda: over_http(port, key, "wrap", args.clients, args.seconds)}
    try:
        for _ in range(args.rounds):
            opened, wrapped = in_process(component, args.seconds)
            results["open"].append(opened)
            results["wrap"].append(wrapped)
            for name, run in measure.items():
                results[name].append(run())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    print(f"key-service API, {settings.database_url.split(':')[0]}, gunicorn --workers {args.workers}, "
          f"{args.clients} client processes, {args.rounds} rounds of {args.seconds:g} s (min / median / max)")
    print(_line("SCP03 set-up, in process (1 thread)", results["open"]))
    print(_line("SCP03 set-up, over HTTP", results["http open"], results["open"]))
    print(_line("command wrap, in process (1 thread)", results["wrap"]))
    print(_line("command wrap, over HTTP", results["http wrap"], results["wrap"]))
    met = statistics.median(results["http open"]) >= 1000
    print(f"  target >= 1,000 set-ups/s over HTTP: {'met' if met else 'not met'}")


if __name__ == "__main__":
    main()
