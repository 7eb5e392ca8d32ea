"""Configuration as data: one TOML file plus `TSM_*` environment variables.

Precedence (lowest first): built-in defaults, `$TSM_HOME/tsm.toml` (or `$TSM_CONFIG`), environment; an empty
variable counts as unset. Every value is checked here, once, for its type and range, so a bad setting is one
`SettingsError` naming where it came from and what is allowed, before any HSM or database is touched.
Pointing at PostgreSQL or at a real HSM's PKCS#11 module is configuration, not code.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from storage.permissions import OTHERS_WRITE, refuse_if_shared

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_HOME: Final = "var"
DEFAULT_BUSY_TIMEOUT: Final = 5.0
MAX_BUSY_TIMEOUT: Final = 600.0
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_LENGTH: Final = 4096
"""No setting is longer than PATH_MAX."""
TOKEN_LABEL_BYTES: Final = 32
"""CK_TOKEN_INFO.label is 32 bytes (PKCS#11 v2.40 §3.2)."""
URL_HINT: Final = "use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
DEFAULT_RELAY_LISTEN: Final = ("127.0.0.1", 8780)
DEFAULT_API_RATE_LIMIT: Final = "600 per minute"
DEFAULT_LOGIN_RATE_LIMIT: Final = "10 per minute"
DEFAULT_SESSION_IDLE_MINUTES: Final = 15
MAX_SESSION_IDLE_MINUTES: Final = 24 * 60
BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
RATE_LIMIT: Final = re.compile(r"\d+ *(per|/) *(\d+ *)?(second|minute|hour|day)s?( *[;,] *\d+ *(per|/) *(\d+ *)?"
                               r"(second|minute|hour|day)s?)*")
"""Flask-Limiter's rate-limit notation, e.g. `600 per minute` or `10/second; 1000/day`."""
DEFAULT_RELAY_TIMEOUT: Final = 30.0
MAX_PORT: Final = 65535


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
    database_busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    relay_listen: tuple[str, int] = DEFAULT_RELAY_LISTEN
    """Where the CLI's `--relay` serves the phone relay endpoint (docs/relay.md)."""
    api_rate_limit: str = DEFAULT_API_RATE_LIMIT
    """Requests each API key may make (docs/api.md, "Rate limits"), e.g. `600 per minute`."""
    rate_limit_storage_uri: str = "memory://"
    """Where the rate limiter counts (Flask-Limiter storage URI): `memory://` counts per process; use
    `redis://HOST:PORT` to share the counts between workers."""
    login_rate_limit: str = DEFAULT_LOGIN_RATE_LIMIT
    """POSTs to the admin UI's /login per client address (docs/operations.md, "Admin UI")."""
    session_idle_minutes: int = DEFAULT_SESSION_IDLE_MINUTES
    """An admin UI session ends after this many minutes without a request."""
    secure_cookies: bool = True
    """The session cookie is `Secure` (sent over HTTPS only; browsers also accept it from http://127.0.0.1 and
    http://localhost); turn off only for plain-http set-ups on other hosts."""
    relay_timeout: float = DEFAULT_RELAY_TIMEOUT
    """Seconds the phone has to make its first request and to answer each batch (docs/relay.md, "Timers")."""


_ENV = {
    "database_url": "TSM_DATABASE_URL",
    "pkcs11_module": "TSM_PKCS11_MODULE",
    "token_label": "TSM_TOKEN_LABEL",
    "pin_file": "TSM_PIN_FILE",
    "softhsm_conf": "SOFTHSM2_CONF",
    "token_dir": "TSM_TOKEN_DIR",
    "hsm_profile": "TSM_HSM_PROFILE",
    "log_level": "TSM_LOG_LEVEL",
    "database_busy_timeout": "TSM_DATABASE_BUSY_TIMEOUT",
    "relay_listen": "TSM_RELAY_LISTEN",
    "api_rate_limit": "TSM_API_RATE_LIMIT",
    "rate_limit_storage_uri": "TSM_RATE_LIMIT_STORAGE_URI",
    "login_rate_limit": "TSM_LOGIN_RATE_LIMIT",
    "session_idle_minutes": "TSM_SESSION_IDLE_MINUTES",
    "secure_cookies": "TSM_SECURE_COOKIES",
    "relay_timeout": "TSM_RELAY_TIMEOUT",
}
_PATHS = ("pin_file", "softhsm_conf", "token_dir")
_TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
               dict: "a table"}


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
        "log_level": "INFO",
        "database_busy_timeout": DEFAULT_BUSY_TIMEOUT,
        "relay_listen": DEFAULT_RELAY_LISTEN,
        "api_rate_limit": DEFAULT_API_RATE_LIMIT,
        "rate_limit_storage_uri": "memory://",
        "login_rate_limit": DEFAULT_LOGIN_RATE_LIMIT,
        "session_idle_minutes": DEFAULT_SESSION_IDLE_MINUTES,
        "secure_cookies": True,
        "relay_timeout": DEFAULT_RELAY_TIMEOUT,
    }


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and check the settings for this process (`env` defaults to `os.environ`)."""
    env = dict(os.environ) if env is None else env
    home = _home(env.get("TSM_HOME") or DEFAULT_HOME)
    values = _defaults(home)
    config_file = _config_file(env.get("TSM_CONFIG") or "", home)
    if config_file is not None:
        for name, raw in _read(config_file).items():
            values[name] = _check(name, raw, f"{name} in {config_file}", from_env=False)
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = _check(name, env[var], var, from_env=True)
    return Settings(**values)


def parse_host_port(text: str) -> tuple[str, int]:
    """HOST:PORT with a port 1..65535 (an empty HOST means 127.0.0.1), or ValueError."""
    host, sep, port = text.rpartition(":")
    valid_port = sep and port.isascii() and port.isdigit() and len(port) <= len(str(MAX_PORT)) and \
        0 < int(port) <= MAX_PORT
    if not valid_port or not host.isprintable() or any(c.isspace() for c in host):
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8000), got {_show(text)}")
    return host or "127.0.0.1", int(port)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some fields replaced (tests, `tsm init` options)."""
    return replace(settings, **changes)


def _home(raw: str) -> Path:
    """TSM_HOME, resolved: absent or a private directory (`tsm init` creates it)."""
    text = _text(raw, "TSM_HOME")
    try:
        home = Path(text).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise SettingsError(f"TSM_HOME {_show(text)} cannot be resolved: {_one_line(str(exc))}") from None
    st = _stat(home, "TSM_HOME")
    if st is None:
        return home
    if not stat.S_ISDIR(st.st_mode):
        raise SettingsError(f"TSM_HOME {home} is not a directory: point it at a directory, or unset it for ./var")
    refuse_if_shared(home, "TSM_HOME", st)
    return home


def _config_file(explicit: str, home: Path) -> Path | None:
    """The configuration file to read, if any; one named by TSM_CONFIG must exist."""
    path = Path(_text(explicit, "TSM_CONFIG")) if explicit else home / "tsm.toml"
    where = "TSM_CONFIG" if explicit else "configuration file"
    st = _stat(path, where)
    if st is None:
        if explicit:
            raise SettingsError(f"TSM_CONFIG {path} does not exist: create it, or unset TSM_CONFIG")
        return None
    if not stat.S_ISREG(st.st_mode):
        raise SettingsError(f"{where} {path} is not a regular file")
    refuse_if_shared(path, "configuration file", st, bits=OTHERS_WRITE)  # it names the PKCS#11 library to load
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} is not valid TOML: {_one_line(str(exc))}") from None
    except OSError as exc:
        raise SettingsError(f"configuration file {path} cannot be read: {exc.strerror}") from None
    if "home" in data:
        raise SettingsError(f"home cannot be set in {path} (the file lives in it): set TSM_HOME")
    unknown = set(data) - {f.name for f in fields(Settings)}
    if unknown:
        raise SettingsError(f"unknown settings in {path}: {', '.join(_show(k) for k in sorted(unknown))}")
    return data


def _check(name: str, raw: Any, where: str, from_env: bool) -> Any:
    """The value of setting `name` from `raw` (a TOML value, or an environment string), or SettingsError."""
    if name in ("database_busy_timeout", "relay_timeout"):
        return _seconds(raw, where, from_env)
    if name == "session_idle_minutes":
        return _minutes(raw, where, from_env)
    if name == "secure_cookies":
        return _boolean(raw, where, from_env)
    value = _text(raw, where)
    if name == "relay_listen":
        try:
            return parse_host_port(value)
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}") from None
    if name in _PATHS:
        path = Path(value)
        _stat(path, where)
        return path
    if name == "token_label" and len(value.encode()) > TOKEN_LABEL_BYTES:
        raise SettingsError(f"{where} is longer than {TOKEN_LABEL_BYTES} bytes (the PKCS#11 token label)")
    if name == "log_level":
        if value.upper() not in LOG_LEVELS:
            raise SettingsError(f"{where}: {_show(value)} is not a log level (one of {', '.join(LOG_LEVELS)})")
        return value.upper()
    if name in ("api_rate_limit", "login_rate_limit") and not RATE_LIMIT.fullmatch(value.strip()):
        raise SettingsError(f"{where}: {_show(value)} is not a rate limit such as '600 per minute'")
    if name == "database_url":
        _check_database_url(value, where)
    if name == "pkcs11_module":
        _stat(Path(value), where)
    return value


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise SettingsError(f"{where} must be a string, not {_toml_type(raw)}")
    if not raw:
        raise SettingsError(f"{where} must not be empty")
    if len(raw) > MAX_LENGTH:
        raise SettingsError(f"{where} is longer than {MAX_LENGTH} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in raw):
        raise SettingsError(f"{where} contains a control character")
    return raw


def _seconds(raw: Any, where: str, from_env: bool) -> float:
    if from_env and isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{where} must be a number of seconds, not {_show(raw)}") from None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        raise SettingsError(f"{where} must be a number of seconds, not {_toml_type(raw)}")
    if not (math.isfinite(value) and 0 <= value <= MAX_BUSY_TIMEOUT):
        raise SettingsError(f"{where} must be between 0 and {MAX_BUSY_TIMEOUT:g} seconds")
    return value


def _minutes(raw: Any, where: str, from_env: bool) -> int:
    if from_env and isinstance(raw, str) and raw.isascii() and raw.isdigit():
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise SettingsError(f"{where} must be a whole number of minutes, not "
                            f"{_show(raw) if isinstance(raw, str) else _toml_type(raw)}")
    if not 1 <= value <= MAX_SESSION_IDLE_MINUTES:
        raise SettingsError(f"{where} must be between 1 and {MAX_SESSION_IDLE_MINUTES} minutes")
    return value


def _boolean(raw: Any, where: str, from_env: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if from_env and isinstance(raw, str) and raw.strip().lower() in BOOLEANS:
        return BOOLEANS[raw.strip().lower()]
    raise SettingsError(f"{where} must be true or false, not "
                        f"{_show(raw) if isinstance(raw, str) else _toml_type(raw)}")


def _check_database_url(url: str, where: str) -> None:
    """A URL SQLAlchemy can parse, for a dialect it has and a driver that is installed (never echoed: it may
    hold a password)."""
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except NoSuchModuleError:  # before ArgumentError, its base
        raise SettingsError(f"{where} names an unknown database {_show(url.split(':', 1)[0])}: "
                            f"{URL_HINT}") from None
    except (ArgumentError, ValueError):
        raise SettingsError(f"{where} is not a database URL: {URL_HINT}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise SettingsError(f"{where}: the {parsed.drivername} driver (Python module {exc.name or '?'}) is not "
                            f"installed: install it, or {URL_HINT}") from None


def _stat(path: Path, where: str) -> os.stat_result | None:
    """`path`'s status, or None if nothing is there; a path that cannot even be looked up is an error."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise SettingsError(f"{where} {_show(str(path))}: {exc.strerror}") from None


def _toml_type(value: Any) -> str:
    return next((name for kind, name in _TOML_TYPES.items() if isinstance(value, kind)), "a date or time")


def _show(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(message: str) -> str:
    return " ".join(message.split())
