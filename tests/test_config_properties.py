"""Property tests over the configuration file and the environment (hypothesis).

Whatever the values and types in tsm.toml and in the TSM_* variables (control characters, huge strings,
paths to files, directories or nothing), loading the settings raises nothing but `SettingsError` (or
`InsecurePermissions`), and `tsm hsm info` / `tsm keys list` end with success or exactly one `error[...]`
line and exit 2. Values are drawn per setting (right ones, near misses, paths to files, directories,
nothing) mixed with arbitrary ones.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage.config import SettingsError, load_settings
from storage.permissions import InsecurePermissions
from tests.edge import TSM_VARIABLES, ends_cleanly, make_home, run_tsm

VARIABLES = {  # environment variable -> setting
    "TSM_HOME": "home", "TSM_CONFIG": "config", "TSM_DATABASE_URL": "database_url",
    "TSM_PKCS11_MODULE": "pkcs11_module", "TSM_TOKEN_LABEL": "token_label", "TSM_PIN_FILE": "pin_file",
    "SOFTHSM2_CONF": "softhsm_conf", "TSM_TOKEN_DIR": "token_dir", "TSM_HSM_PROFILE": "hsm_profile",
    "TSM_LOG_LEVEL": "log_level", "TSM_DATABASE_BUSY_TIMEOUT": "database_busy_timeout",
    "TSM_RELAY_LISTEN": "relay_listen", "TSM_RELAY_TIMEOUT": "relay_timeout",
}
assert set(VARIABLES) == {*TSM_VARIABLES, "SOFTHSM2_CONF"}
SETTINGS = [*(v for v in VARIABLES.values() if v != "config"), "no_such_setting"]
PROPERTY = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _toml_value(value: Any) -> str:
    """TOML for a scalar, array or table (json's string escapes are TOML's, bar DEL)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"


def _plausible(home: Path, setting: str) -> st.SearchStrategy[str]:
    """Values a setting might be given: right ones, near misses, paths to files, directories or nothing."""
    paths = [str(home), str(home / "secrets"), str(home / "secrets" / "token-pins.json"), str(home / "tsm.db"),
             str(home / "tsm.toml"), str(home / "wide-dir"), str(home / "wide-file"), str(home / "missing" / "x"),
             str(home / "tsm.toml" / "below-a-file"), "/", "/etc/hostname", "/dev/null", "relative/path", ".",
             "a" * 5000, "a/" * 3000, str(home) + "\x01", "\u202e\u0301"]
    specific = {
        "database_url": [f"sqlite:///{home / 'tsm.db'}", f"sqlite:///{home / 'other.db'}", f"sqlite:///{home}",
                         "sqlite://", "sqlite:///relative.db", "postgresql+psycopg://nobody@127.0.0.1:1/none",
                         "postgresql://u:p@/db", "mysql://u@h/db", "nosuch://x", "garbage", "://",
                         "sqlite:////dev/null", "postgresql+psycopg://u@h:99999999/db"],
        "pkcs11_module": ["/usr/lib/softhsm/libsofthsm2.so", "/nonexistent.so", "/etc/hostname", "/tmp"],
        "token_label": ["tsm", "x" * 32, "x" * 33, "ÿ" * 17],
        "hsm_profile": ["softhsm2", "thales-luna7", "../../etc/passwd", "nope"],
        "log_level": ["DEBUG", "info", "Warning", "bogus", "10"],
        "database_busy_timeout": ["0", "0.01", "5", "600", "601", "-1", "nan", "inf", "1e400", "soon"],
        "relay_timeout": ["0", "0.5", "30", "600", "601", "-1", "nan", "soon"],
        "relay_listen": ["127.0.0.1:8780", ":8780", "[::1]:8780", "0.0.0.0:1", "h:0", "h:65536", "h:", "h 1:80",
                         "8780", "h:-1", "h:+80", "h:٣"],
    }
    return st.sampled_from(specific.get(setting, paths) + paths[:4])


SCALARS = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                    st.text(min_size=4000, max_size=5000, alphabet="ab\x01/"))


def _number(text: str) -> float | str:
    """The TOML number a plausible busy timeout stands for (TOML has no 1e400; a word stays a string)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) or text in ("nan", "inf") else text


def _toml_values(home: Path, setting: str) -> st.SearchStrategy[Any]:
    plausible = _plausible(home, setting)
    if setting in ("database_busy_timeout", "relay_timeout"):
        plausible = st.one_of(plausible.map(_number), st.floats(min_value=-1, max_value=700))
    return st.one_of(plausible, SCALARS, st.lists(SCALARS, max_size=2),
                     st.dictionaries(st.text(max_size=5), SCALARS, max_size=2))


def _env_values(home: Path, setting: str) -> st.SearchStrategy[str]:
    return st.one_of(_plausible(home, setting), st.text(max_size=60).filter(lambda s: "\x00" not in s))


@st.composite
def _toml(draw: st.DrawFn, home: Path) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=80))  # not TOML at all, mostly
    chosen = draw(st.lists(st.sampled_from(SETTINGS), max_size=2, unique=True))
    return "".join(f"{name} = {_toml_value(draw(_toml_values(home, name)))}\n" for name in chosen)


@st.composite
def _environment(draw: st.DrawFn, home: Path) -> dict[str, str]:
    chosen = draw(st.lists(st.sampled_from(sorted(VARIABLES)), max_size=2, unique=True))
    return {var: draw(_env_values(home, VARIABLES[var])) for var in chosen}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """An initialised home with a 0777 directory and a 0666 file in it, and its tsm.toml."""
    monkeypatch.chdir(tmp_path)  # relative paths drawn below land here
    path = make_home(tmp_path / "home")
    (path / "wide-dir").mkdir(mode=0o700)
    os.chmod(path / "wide-dir", 0o777)
    (path / "wide-file").write_text("{}")
    os.chmod(path / "wide-file", 0o666)
    return path, (path / "tsm.toml").read_text()


def _write_config(home: Path, base: str, drawn: str) -> None:
    """tsm.toml: the drawn lines, plus the home's own lines for the settings not drawn."""
    kept = [line for line in base.splitlines(keepends=True) if not drawn.startswith(line.split(" = ")[0] + " = ")
            and "\n" + line.split(" = ")[0] + " = " not in drawn]
    (home / "tsm.toml").write_text("".join(kept) + drawn)


@given(data=st.data())
@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_loading_settings_raises_only_settings_errors(home, data):
    path, base = home
    _write_config(path, base, data.draw(_toml(path), "tsm.toml"))
    env = {"TSM_HOME": str(path), **data.draw(_environment(path), "environment")}
    try:
        loaded = load_settings(env)
    except (SettingsError, InsecurePermissions) as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message and len(message) < 5000
    else:
        assert loaded.log_level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        assert 0 <= loaded.database_busy_timeout <= 600 and 0 <= loaded.relay_timeout <= 600
        assert 0 < loaded.relay_listen[1] <= 65535


@pytest.mark.parametrize("command", [("hsm", "info"), ("keys", "list")])
@given(data=st.data())
@PROPERTY
def test_the_cli_ends_in_success_or_one_error_line(home, command, data):
    path, base = home
    _write_config(path, base, data.draw(_toml(path), "tsm.toml"))
    env = {"TSM_HOME": str(path), **data.draw(_environment(path), "environment")}
    ends_cleanly(run_tsm(*command, env=env))
