"""The operator CLI of the TSM core (issue 9's command block) through real `tsm` subprocesses in a fresh $TSM_HOME:
every flow against a simulated card file, the ids on the last line, and every failure one `error[code]: ...`
line with exit status 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cardsim.state import kdd_from_cplc, make_cplc
from tests.tsm_core.lab import BANK_INSTANCE, BANK_PAN, BANK_PERSO, TRANSIT_INSTANCE, cap

TSM = str(Path(sys.executable).with_name("tsm"))
TEST_KEY = "404142434445464748494A4B4C4D4E4F"
ID = {"se": re.compile(r"se-[0-9a-f]{20}"), "job": re.compile(r"job-[0-9a-f]{12}"),
      "app": re.compile(r"app-[0-9a-f]{12}")}


@dataclass
class Home:
    path: Path
    card: Path
    se: str

    def tsm(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TSM_") and k != "SOFTHSM2_CONF"}
        env.update(TSM_HOME=str(self.path / "var"), TSM_OPERATOR="alice")
        return subprocess.run([TSM, *args], cwd=self.path, env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    def ok(self, *args: str) -> list[str]:
        """The lines a command printed; it must succeed and print nothing on stderr."""
        done = self.tsm(*args)
        assert (done.returncode, done.stderr) == (0, ""), (args, done.stdout, done.stderr)
        return done.stdout.splitlines()

    def last_id(self, kind: str, *args: str) -> str:
        """The id a command prints on its last line."""
        last = self.ok(*args)[-1]
        assert ID[kind].fullmatch(last), (args, last)
        return last

    def error(self, code: str, *args: str) -> str:
        """The one error line of a refused command (exit 2, stdout empty, no traceback)."""
        done = self.tsm(*args)
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1, (args, done.stdout, done.stderr)
        assert lines[0].startswith(f"error[{code}]: "), (args, lines[0])
        assert done.stdout == "", (args, done.stdout)
        return lines[0]


def wearable_home(path: Path) -> Home:
    """`tsm init --test-token` in `path`, the vendor's keys, a wearable card (card.json) discovered."""
    made = Home(path, path / "card.json", "")
    made.ok("init", "--test-token")
    for label, usage in (("vendor-isd", "ISD_KEYSET"), ("vendor-ssd", "SSD_KEYSET")):
        made.ok("keys", "import-test", "--label", label, "--type", "aes", "--hex", TEST_KEY, "--usage", usage)
    made.ok("cardsim", "new", "--profile", "wearable", "--out", str(made.card))
    made.se = made.last_id("se", "se", "discover", "--card", "card.json", "--key", "vendor-isd", "--initial-ssd-key",
                           "vendor-ssd")
    return made


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Home]:
    """A wearable home, two SPs, the demo CAP files (`tsm cardsim cap`)."""
    path = tmp_path_factory.mktemp("cli")
    made = wearable_home(path)
    made.ok("sp", "add", "transitco")
    made.ok("sp", "add", "bankco", "--mode", "am")
    for name in ("transit", "bank"):
        assert made.ok("cardsim", "cap", name, "--out", f"{name}.cap")[-1].endswith(f"{name}.cap")
        assert (path / f"{name}.cap").read_bytes() == cap(name)
    (path / "perso.json").write_text(json.dumps({"8101": "5A08" + BANK_PAN, "8000": bytes(range(16)).hex()}))
    yield made


def test_every_flow_through_the_command_line(home):
    se, card = home.se, "card.json"
    assert [line.split()[:2] for line in home.ok("sp", "list")[1:]] == [["bankco", "am"], ["transitco", "cm"]]

    home.ok("vendor", "add", "acme")
    cplc = make_cplc()
    batch = {"vendor": "acme", "profiles": {"acme-w1": {"scp": "03", "i": "70", "isd_aid": "A000000151000000"}},
             "secure_elements": [{"kdd": kdd_from_cplc(cplc).hex(), "profile": "acme-w1", "isd_key": "vendor-isd",
                                  "cplc": cplc.hex()}]}
    (home.path / "batch.json").write_text(json.dumps(batch))
    assert home.ok("se", "import", "batch.json") == ["1 secure elements imported"]
    listed = {line.split()[0]: line.split() for line in home.ok("se", "list")[1:]}
    assert set(listed) == {se, f"se-{kdd_from_cplc(cplc).hex()}"}

    ssd_job = home.last_id("job", "sd", "create", se, "--sp", "transitco", "--mode", "cm", "--card", card)
    transit = home.last_id("app", "app", "submit", "--sp", "transitco", "--cap", "transit.cap", "--instance-aid",
                           TRANSIT_INSTANCE, "--name", "transit")
    assert home.ok("app", "review", transit, "--approve") == [f"app {transit} approved"]
    job = home.last_id("job", "service", "order", se, transit)
    run = home.ok("job", "run", job, "--card", card)
    assert run[-1] == job and {line.split()[0]: line.split()[1] for line in run[1:-1]} == {
        "load": "done", "install": "done", "extradite": "done", "activate": "done"}

    bank = home.last_id("app", "app", "submit", "--sp", "bankco", "--cap", "bank.cap", "--instance-aid",
                        BANK_INSTANCE, "--perso", BANK_PERSO)
    home.ok("app", "review", bank, "--approve")
    bank_job = home.last_id("job", "service", "order", se, bank)
    assert home.last_id("job", "job", "run", bank_job, "--card", card, "--perso", "perso.json") == bank_job
    shown = home.ok("job", "show", bank_job)
    assert shown[1].split() == ["state", "done"] and any(line.split()[:2] == ["personalize", "done"]
                                                        for line in shown)
    assert {line.split()[0] for line in home.ok("app", "list")[1:]} == {transit, bank}
    assert {line.split()[0] for line in home.ok("job", "list", "--se", se)[1:]} == {ssd_job, job, bank_job}

    home.ok("keys", "generate", "--label", "issuer-kmc", "--type", "aes", "--usage", "KMC")
    home.ok("keys", "state", "issuer-kmc", "active")
    rotation = home.last_id("job", "se", "rotate-keys", se, "--to-kvn", "01", "--card", card)
    assert home.ok("job", "show", rotation)[1].split() == ["state", "done"]

    side_by_side = home.ok("se", "show", se, "--card", card)  # read over the ISD's new keys
    blank = [n for n, line in enumerate(side_by_side) if not line]
    header, *rows = side_by_side[blank[-1] + 1:]
    assert header.split() == ["AID", "KIND", "REGISTRY", "CARD", "SAME"]
    content = {row.split()[0]: row.split()[1:] for row in rows}
    assert {TRANSIT_INSTANCE, BANK_INSTANCE, "F0000000010101", "F0000000020101"} <= set(content)
    assert all(row[-1] == "yes" for row in content.values()), side_by_side
    assert any(line.startswith("A000000151000000  isd") and "01*:issuer-kmc/kdf3" in line for line in side_by_side)


def test_every_failure_is_one_error_line(home):
    se, card = home.se, "card.json"
    (home.path / "bad.cap").write_bytes(b"PK\x03\x04 this is no CAP file")
    pending = home.last_id("app", "app", "submit", "--sp", "transitco", "--cap", "transit.cap", "--instance-aid",
                           "F00000000101010109", "--name", "pending")
    home.error("not_found", "se", "show", "se-0000000000")
    home.error("not_found", "service", "order", "se-0000000000", pending)
    home.error("not_found", "app", "review", "app-000000000000", "--approve")
    home.error("not_found", "service", "order", se, "app-000000000000")
    home.error("invalid_request", "app", "submit", "--sp", "transitco", "--cap", "transit.cap", "--instance-aid",
               "F00000XYZ")
    home.error("invalid_request", "app", "submit", "--sp", "transitco", "--cap", "transit.cap", "--instance-aid",
               "F000")
    home.error("invalid_request", "app", "submit", "--sp", "transitco", "--cap", "bad.cap")
    assert "reason" in home.error("invalid_request", "app", "review", pending, "--reject")
    assert "pending" in home.error("conflict", "service", "order", se, pending)
    home.error("not_found", "job", "run", "job-000000000000", "--card", card)
    home.error("conflict", "sp", "add", "transitco")
    home.error("usage", "sd", "create", se, "--sp", "transitco", "--mode", "xx", "--card", card)
    assert home.ok("app", "review", pending, "--reject", "--reason", "no DAP") == [f"app {pending} rejected: no DAP"]
