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


class SettingsError(ValueError):
    """The configuration file or an environment variable is invalid."""

    code = "configuration_error"


@dataclass(frozen=True)
class Settings:
    """Every setting the product reads; `home` anchors the embedded defaults."""

    home: Path
    database_url: str
    pkcs11_module: str
    token_label: str
    pin_file: Path
    softhsm_conf: Path
    token_dir: Path
    hsm_profile: str
    log_level: str = "INFO"


_ENV = {
    "database_url": "TSM_DATABASE_URL",
    "pkcs11_module": "TSM_PKCS11_MODULE",
    "token_label": "TSM_TOKEN_LABEL",
    "pin_file": "TSM_PIN_FILE",
    "softhsm_conf": "SOFTHSM2_CONF",
    "token_dir": "TSM_TOKEN_DIR",
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
        "token_dir": home / "softhsm" / "tokens",
        "hsm_profile": "softhsm2",
    }


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings for this process (`env` defaults to `os.environ`)."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("TSM_HOME", "var")).resolve()
    values = _defaults(home)
    config_file = Path(env.get("TSM_CONFIG", str(home / "tsm.toml")))
    if config_file.is_file():
        try:
            with config_file.open("rb") as fh:
                values.update(tomllib.load(fh))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{config_file} is not valid TOML: {exc}") from None
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise SettingsError(f"unknown settings in {config_file}: {', '.join(sorted(unknown))}")
    for name in ("home", "pin_file", "softhsm_conf", "token_dir"):
        values[name] = Path(values[name])
    return Settings(**values)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some fields replaced (tests, `tsm init` options)."""
    return replace(settings, **changes)
