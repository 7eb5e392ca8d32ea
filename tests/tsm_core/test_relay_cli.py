"""`--relay SESSION` end to end, every piece a real process: `tsm job run JOB --relay` (and `tsm se show`) serve
the relay endpoint; `tsm relay-client` plays the phone, its SE a simulated wearable that `tsm cardsim serve`
puts behind the real pcscd + vpcd. Plus the one-line errors of a relay that cannot start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import free_port
from tests.tsm_core.conftest import READER, wait_for_card, wait_for_removal
from tests.tsm_core.test_lifecycle import PURSE_PERSO
from tests.tsm_core.test_tsm_cli import Home, wearable_home
from tsm_core.transport.pcscd import stop_process

TSM = str(Path(sys.executable).with_name("tsm"))
SESSION = "relay-e2e-Session_0001"
STOP_TIMEOUT = 10
RUN_TIMEOUT = 120



@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A wearable home (a test token, the wearable discovered from its state file), an SP in AM, the transit
    applet's CAP file."""
    made = wearable_home(tmp_path_factory.mktemp("relay-cli"))
    made.ok("sp", "add", "transitco", "--mode", "am")
    made.ok("cardsim", "cap", "transit", "--out", "transit.cap")
    yield made


def _order(home: Home, *submit: str) -> str:
    """A job installing the transit app (`submit`: more `app submit` options) on the wearable."""
    app = home.last_id("app", "app", "submit", "--sp", "transitco", "--cap", "transit.cap", *submit)
    home.ok("app", "review", app, "--approve")
    return home.last_id("job", "service", "order", home.se, app)


def _popen(home: Home, *args: str, **variables: str) -> subprocess.Popen[str]:
    """`tsm ARGS` started in the home, with more environment `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSM_") and k != "SOFTHSM2_CONF"}
    env.update(TSM_HOME=str(home.path / "var"), TSM_OPERATOR="alice", **variables)
    return subprocess.Popen([TSM, *args], cwd=home.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture
def served_wearable(pcscd, home: Home) -> Iterator[Path]:
    """`tsm cardsim serve` of the wearable's state file, stopped by its PID (Ctrl-C: the card is saved)."""
    process = _popen(home, "cardsim", "serve", "--card", "card.json", "--vpcd", "127.0.0.1:35963")
    try:
        wait_for_card()
        yield home.card
    finally:
        stop_process(process, signal.SIGINT, STOP_TIMEOUT)
        process.communicate()
        wait_for_removal()


def _through_the_phone(home: Home, *args: str) -> tuple[list[str], str]:
    """`tsm ARGS --relay SESSION` with `tsm relay-client` as the phone; (its stdout lines, the phone's output)."""
    port = free_port()
    command = _popen(home, *args, "--relay", SESSION, "--relay-listen", f"127.0.0.1:{port}")
    phone: subprocess.Popen[str] | None = None
    try:
        assert command.stderr is not None
        waiting = command.stderr.readline()
        url = f"http://127.0.0.1:{port}/relay"
        assert waiting == (f"relay session {SESSION} waiting at {url} (tsm relay-client --url {url} --session "
                           f"{SESSION} --reader R)\n"), (waiting, command.communicate(timeout=RUN_TIMEOUT))
        phone = _popen(home, "relay-client", "--url", url, "--session", SESSION, "--reader", READER,
                       "--poll-interval", "0.05")
        out, err = command.communicate(timeout=RUN_TIMEOUT)
        phone_out, phone_err = phone.communicate(timeout=RUN_TIMEOUT)
    finally:
        for process in (command, phone):
            if process is not None:
                stop_process(process, timeout=STOP_TIMEOUT)
    assert (command.returncode, err) == (0, ""), (args, out, err)
    assert (phone.returncode, phone_err) == (0, ""), (phone_out, phone_err)
    return out.splitlines(), phone_out


@pytest.mark.pcsc
def test_a_job_and_a_card_read_through_the_phone(home, served_wearable):
    job = _order(home)
    run, phone = _through_the_phone(home, "job", "run", job)
    assert run[-1] == job and [line.split()[:2] for line in run[1:-1]] == [
        [step, "done"] for step in ("ssd", "ssd-keys", "load", "install", "activate")], run
    batches = int(phone.split()[-2])
    assert phone == f"session closed after {batches} batches\n" and batches > 10
    assert home.ok("job", "show", job)[1].split() == ["state", "done"]

    shown, _ = _through_the_phone(home, "se", "show", home.se)
    blank = [n for n, line in enumerate(shown) if not line]
    header, *rows = shown[blank[-1] + 1:]
    assert header.split() == ["AID", "KIND", "REGISTRY", "CARD", "SAME"]
    assert len(rows) > 3 and all(row.split()[-1] == "yes" for row in rows), shown


def test_relay_failures_are_one_line(home):
    """The command-line refusals (bad session id, no SE known, ...) are in tests/test_cli_grammar.py."""
    job = _order(home, "--instance-aid", "F00000000101010109")
    home.error("not_found", "job", "run", "job-000000000000", "--relay", SESSION)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = home.error("relay_listen_failed", "job", "run", job, "--relay", SESSION, "--relay-listen",
                          f"127.0.0.1:{port}")
        assert f"127.0.0.1:{port}: Address already in use" in line
        from_setting = _popen(home, "job", "run", job, "--relay", SESSION, TSM_RELAY_LISTEN=f"127.0.0.1:{port}")
        out, err = from_setting.communicate(timeout=RUN_TIMEOUT)
        assert (from_setting.returncode, out) == (2, "") and err.startswith("error[relay_listen_failed]: ")
        assert f"127.0.0.1:{port}: Address already in use" in err and len(err.splitlines()) == 1
    assert home.ok("job", "show", job)[1].split() == ["state", "pending"]
    nobody = _popen(home, "job", "run", job, "--relay", SESSION, "--relay-listen", f"127.0.0.1:{free_port()}",
                    TSM_RELAY_TIMEOUT="0.5")  # no phone: one relay timeout, then the job stops
    out, err = nobody.communicate(timeout=RUN_TIMEOUT)
    assert nobody.returncode == 2 and len(err.splitlines()) == 2, (out, err)  # the waiting line, the error
    assert err.splitlines()[-1].startswith(f"error[job_in_error]: job {job} stopped: relay_timeout: no phone "
                                           "contacted the session within 0.5 s"), err


@pytest.mark.pcsc
def test_the_service_life_cycle_through_the_phone(home, served_wearable):
    """Open card, top-up, report lost, unlock and delete, each a `tsm service` command whose card is the phone's."""
    app = home.last_id("app", "app", "submit", "--sp", "transitco", "--cap", "transit.cap", "--instance-aid",
                       "F00000000101010102", "--perso", PURSE_PERSO)
    home.ok("app", "review", app, "--approve")
    opened, _ = _through_the_phone(home, "service", "open", home.se, app)
    service = opened[-1]
    assert any(line.split()[:2] == ["state", "active"] for line in opened), opened
    assert _through_the_phone(home, "service", "topup", service, "--amount", "700")[0][-1] == "700"
    assert _through_the_phone(home, "service", "lock", service)[0] == ["locked_lost: locked on the card", service]
    assert _through_the_phone(home, "service", "unlock", service)[0] == ["active: unlocked on the card", service]
    assert _through_the_phone(home, "service", "balance", service)[0][-1] == "700"
    assert _through_the_phone(home, "service", "delete", service)[0] == ["deleted", service]
