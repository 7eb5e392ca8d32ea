"""The README's 5-minute tour, run as written: its commands are taken from README.md and run by bash in a fresh
$TSM_HOME, from the repository root, without pcscd. Only the `tsm serve` line (and the `kill` that stops it)
is left out: serving under gunicorn is tested in tests/test_cli.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TSM = str(Path(sys.executable).with_name("tsm"))


def tour_lines() -> list[str]:
    """The tour's command lines, backslash continuations joined."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## A 5-minute tour\n.*?```\n(.*?)```", readme, re.S)
    assert block is not None, "README.md has no tour code block"
    return block.group(1).replace("\\\n", " ").splitlines()


def test_the_tour_waits_for_the_service_before_asking_it():
    serve = [line for line in tour_lines() if "tsm serve" in line]
    assert len(serve) == 1 and "--retry-connrefused" in serve[0]


def test_the_readme_tour_runs_as_written(tmp_path):
    lines = tour_lines()
    assert lines[0].startswith("export TSM_HOME=")
    script = [line.replace(".venv/bin/tsm", TSM) for line in lines[1:]
              if "tsm serve" not in line and not line.startswith("kill %")]
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL")}
    env.update(TSM_HOME=str(tmp_path / "tsm-lab"), TSM_OPERATOR="alice")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "TEST TOKEN" in out and "inventory and token agree" in out and "audit chain intact" in out
    assert re.search(r"^\d+ passed, 0 failed$", out, re.M)
    assert "ISD: A000000151000000 (SECURED)" in out
    assert "use: --key gp-test --div none" in out
    assert re.search(r"^F000000001010101 +app +0F +0F +yes$", out, re.M)  # installed, personalized, selectable
    assert re.search(r"^top-up top-[0-9a-f]{12}: credited, 0 -> 1500$", out, re.M)
    assert "the card-side lock waits for the device's next contact" in out and "1 waiting job(s) run" in out
    assert "active: unlocked on the card" in out
    assert re.search(r"^download +1$", out, re.M) and re.search(r"^topup +1$", out, re.M)
    assert "01*:kmc-issuer/kdf3" in out  # the ISD's key set after the rotation
