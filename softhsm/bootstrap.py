"""Bootstrap of the embedded default HSM: a private SoftHSM2 configuration and token under `$TSM_HOME`.

The token's SO and user PINs are generated here and kept in a JSON file readable only by its owner (0600).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SOFTHSM_UTIL = "softhsm2-util"


class BootstrapError(Exception):
    """The embedded token could not be created (missing softhsm2-util, unwritable directory, ...)."""

    code = "bootstrap_error"


@dataclass(frozen=True)
class TokenPins:
    """The PINs of the embedded token. Never logged, never printed."""

    so_pin: str
    user_pin: str

    def __repr__(self) -> str:
        return "TokenPins(<redacted>)"


def write_conf(conf: Path, tokendir: Path) -> None:
    """Write the private softhsm2.conf pointing at `tokendir` (idempotent)."""
    tokendir.mkdir(parents=True, exist_ok=True, mode=0o700)
    template = resources.files("softhsm").joinpath("softhsm2.conf.in").read_text()
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(template.format(tokendir=tokendir))


def generate_pins() -> TokenPins:
    """Fresh random PINs (128 bits each)."""
    return TokenPins(so_pin=secrets.token_hex(16), user_pin=secrets.token_hex(16))


def save_pins(path: Path, pins: TokenPins) -> None:
    """Write the PIN file with mode 0600 (created that way, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"so_pin": pins.so_pin, "user_pin": pins.user_pin}, fh)
    os.chmod(path, 0o600)


def load_pins(path: Path) -> TokenPins:
    """Read the PIN file; refuse one that others can read."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise BootstrapError(f"PIN file {path} must be readable by its owner only (mode is {mode:o})")
        data = json.loads(path.read_text())
        return TokenPins(so_pin=str(data["so_pin"]), user_pin=str(data["user_pin"]))
    except FileNotFoundError:
        raise BootstrapError(f"PIN file {path} does not exist: run `tsm init`") from None
    except (KeyError, ValueError):
        raise BootstrapError(f"PIN file {path} is not a valid PIN file") from None


def token_exists(conf: Path, label: str) -> bool:
    """Whether a token with `label` is initialised under this configuration."""
    out = _util(conf, "--show-slots")
    return any(line.strip() == f"Label:            {label}" for line in out.splitlines())


def init_token(conf: Path, label: str, pins: TokenPins) -> None:
    """`softhsm2-util --init-token --free` with the given PINs (passed via argv of a child process only)."""
    _util(conf, "--init-token", "--free", "--label", label, "--so-pin", pins.so_pin, "--pin", pins.user_pin)


def _util(conf: Path, *args: str) -> str:
    exe = shutil.which(SOFTHSM_UTIL)
    if exe is None:
        raise BootstrapError("softhsm2-util is not installed (Debian package softhsm2)")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        first = (proc.stderr or proc.stdout).strip().splitlines()
        raise BootstrapError(f"softhsm2-util {args[0]} failed: {first[0] if first else proc.returncode}")
    return proc.stdout
