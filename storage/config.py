"""Configuration as data: one TOML file plus `TSM_*` environment variables.

Precedence (lowest first): built-in defaults, `$TSM_HOME/tsm.toml` (or `$TSM_CONFIG`), environment.
Pointing at PostgreSQL or at a real HSM's PKCS#11 module is configuration, not code.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class Settings:
    """Every setting the product reads; `home` anchors the embedded defaults."""

    home: Path
    database_url: str
    pkcs11_module: str
    token_label: str
    pin_file: Path
    softhsm_conf: Path
    hsm_profile: str
    log_level: str = "INFO"

    @property
    def token_dir(self) -> Path:
        """Where the embedded SoftHSM2 keeps its token files."""
        return self.home / "softhsm" / "tokens"


_ENV = {
    "database_url": "TSM_DATABASE_URL",
    "pkcs11_module": "TSM_PKCS11_MODULE",
    "token_label": "TSM_TOKEN_LABEL",
    "pin_file": "TSM_PIN_FILE",
    "softhsm_conf": "SOFTHSM2_CONF",
    "hsm_profile": "TSM_HSM_PROFILE",
    "log_level": "TSM_LOG_LEVEL",
}


def _defaults(home: Path) -> dict[str, Any]:
    return {
        "home": home,
        "database_url": f"sqlite:///{home / 'tsm.db'}",
        "pkcs11_module": DEFAULT_MODULE,
        "token_label": "tsm",
        "pin_file": home / "secrets" / "token-pins.json",
        "softhsm_conf": home / "softhsm" / "softhsm2.conf",
        "hsm_profile": "softhsm2",
    }


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings for this process (`env` defaults to `os.environ`)."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("TSM_HOME", "var")).resolve()
    values = _defaults(home)
    config_file = Path(env.get("TSM_CONFIG", str(home / "tsm.toml")))
    if config_file.is_file():
        with config_file.open("rb") as fh:
            values.update(tomllib.load(fh))
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings in {config_file}: {', '.join(sorted(unknown))}")
    for name in ("home", "pin_file", "softhsm_conf"):
        values[name] = Path(values[name])
    return Settings(**values)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some fields replaced (tests, `tsm init` options)."""
    return replace(settings, **changes)
