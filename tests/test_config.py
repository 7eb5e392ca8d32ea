"""The trust base under $TSM_HOME: private modes, typed settings, one-line errors (issue 8).

Modes and refusals are checked on a real home (real token, real SQLite file); settings errors through the
`tsm` command, which must print one `error[...]` line and exit 2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from storage.config import SettingsError, load_settings
from tests.edge import error_line, make_home, run_tsm
from tests.serving import TSM, free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


# ---- modes ------------------------------------------------------------------------------------------------


def test_tsm_init_makes_everything_private_whatever_the_umask(tmp_path):
    home = tmp_path / "fresh" / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSM_") and k != "SOFTHSM2_CONF"}
    env["TSM_HOME"] = str(home)
    proc = subprocess.run([TSM, "init", "--test-token"], env=env, capture_output=True, text=True, timeout=120,
                          check=False, umask=0)
    assert proc.returncode == 0, proc.stderr
    dirs = [home, home / "secrets", home / "softhsm", home / "softhsm" / "tokens"]
    assert {str(d): oct(mode(d)) for d in dirs} == {str(d): oct(0o700) for d in dirs}
    files = [home / "tsm.db", home / "secrets" / "token-pins.json", *home.glob("tsm.db-*")]
    assert {str(f): oct(mode(f)) for f in files} == {str(f): oct(0o600) for f in files}


def test_save_pins_creates_missing_directories_private(tmp_path):
    from softhsm import bootstrap

    pin_file = tmp_path / "a" / "b" / "secrets" / "pins.json"
    old = os.umask(0)
    try:
        bootstrap.save_pins(pin_file, bootstrap.generate_pins())
    finally:
        os.umask(old)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", pin_file.parent):
        assert mode(directory) == 0o700, directory
    assert mode(pin_file) == 0o600


def test_a_private_home_works(home):
    assert run_tsm("keys", "list", home=home).exit_code == 0


@pytest.mark.parametrize(("part", "wide", "fix"), [
    ("", 0o755, "chmod 700"),
    ("secrets", 0o777, "chmod 700"),
    ("secrets/token-pins.json", 0o644, "chmod 600"),
    ("tsm.db", 0o644, "chmod 600"),
    ("tsm.db-wal", 0o604, "chmod 600"),
])
def test_wider_modes_are_refused_with_the_fix(home, part, wide, fix):
    target = home / part if part else home
    if not target.exists():
        target.touch(mode=0o600)
    os.chmod(target, wide)
    line = error_line(run_tsm("keys", "list", home=home))
    assert line.startswith("error[insecure_permissions]")
    assert f"{fix} {target}" in line


def test_a_config_file_others_can_write_is_refused(home):
    os.chmod(home / "tsm.toml", 0o622)
    line = error_line(run_tsm("keys", "list", home=home))
    assert "insecure_permissions" in line and f"chmod 600 {home / 'tsm.toml'}" in line


def test_empty_home_means_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({"TSM_HOME": ""}).home == tmp_path / "var"


def test_home_pointing_at_a_file_is_one_line(tmp_path):
    file = tmp_path / "not-a-dir"
    file.write_text("x")
    line = error_line(run_tsm("keys", "list", env={"TSM_HOME": str(file)}))
    assert "configuration_error" in line and str(file) in line and "not a directory" in line


def test_explicit_config_file_must_exist(tmp_path):
    line = error_line(run_tsm("keys", "list", env={"TSM_HOME": str(tmp_path), "TSM_CONFIG": str(tmp_path / "x")}))
    assert "TSM_CONFIG" in line and "does not exist" in line


# ---- typed settings -----------------------------------------------------------------------------------------

WRONG_TYPES = [
    ("database_url", "5", "a string"),
    ("pin_file", "[1]", "a string"),
    ("pkcs11_module", "true", "a string"),
    ("token_label", "{ a = 1 }", "a string"),
    ("softhsm_conf", "1.5", "a string"),
    ("token_dir", "2024-01-01", "a string"),
    ("hsm_profile", "[]", "a string"),
    ("log_level", "10", "a string"),
    ("database_busy_timeout", '"5"', "a number"),
    ("database_busy_timeout", "true", "a number"),
]


@pytest.mark.parametrize(("name", "value", "expected"), WRONG_TYPES)
def test_every_setting_is_type_checked(tmp_path, name, value, expected):
    (tmp_path / "tsm.toml").write_text(f"{name} = {value}\n")
    with pytest.raises(SettingsError) as info:
        load_settings({"TSM_HOME": str(tmp_path)})
    assert name in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize("toml", ["database_url = 5", "pin_file = [1]"])
def test_wrong_type_in_the_file_is_one_line_at_the_cli(home, toml):
    with (home / "tsm.toml").open("a") as fh:
        fh.write(toml + "\n")
    line = error_line(run_tsm("hsm", "info", home=home))
    assert line.startswith("error[configuration_error]") and str(home / "tsm.toml") in line


@pytest.mark.parametrize(("toml", "words"), [
    ('token_label = "a\\u0000b"', "control character"),
    (f'token_label = "{"x" * 33}"', "32 bytes"),
    ('database_busy_timeout = nan', "between 0 and"),
    ('database_busy_timeout = -1', "between 0 and"),
    ('home = "/elsewhere"', "TSM_HOME"),
    ('database_url = ""', "empty"),
])
def test_bad_values_in_the_file(tmp_path, toml, words):
    (tmp_path / "tsm.toml").write_text(toml + "\n")
    with pytest.raises(SettingsError, match=words):
        load_settings({"TSM_HOME": str(tmp_path)})


def test_relay_timeout_default_environment_and_file(tmp_path):
    assert load_settings({"TSM_HOME": str(tmp_path)}).relay_timeout == 30.0
    assert load_settings({"TSM_HOME": str(tmp_path), "TSM_RELAY_TIMEOUT": "2.5"}).relay_timeout == 2.5
    (tmp_path / "tsm.toml").write_text("relay_timeout = 5\n")
    assert load_settings({"TSM_HOME": str(tmp_path)}).relay_timeout == 5.0
    with pytest.raises(SettingsError, match="TSM_RELAY_TIMEOUT must be between 0 and 600"):
        load_settings({"TSM_HOME": str(tmp_path), "TSM_RELAY_TIMEOUT": "601"})


def test_busy_timeout_default_and_environment(tmp_path):
    assert load_settings({"TSM_HOME": str(tmp_path)}).database_busy_timeout == 5.0
    settings = load_settings({"TSM_HOME": str(tmp_path), "TSM_DATABASE_BUSY_TIMEOUT": "0.5"})
    assert settings.database_busy_timeout == 0.5
    with pytest.raises(SettingsError, match="TSM_DATABASE_BUSY_TIMEOUT"):
        load_settings({"TSM_HOME": str(tmp_path), "TSM_DATABASE_BUSY_TIMEOUT": "soon"})


def test_relay_listen_default_environment_and_file(tmp_path):
    assert load_settings({"TSM_HOME": str(tmp_path)}).relay_listen == ("127.0.0.1", 8780)
    assert load_settings({"TSM_HOME": str(tmp_path), "TSM_RELAY_LISTEN": ":9000"}).relay_listen == ("127.0.0.1", 9000)
    (tmp_path / "tsm.toml").write_text('relay_listen = "10.0.0.2:8781"\n')
    assert load_settings({"TSM_HOME": str(tmp_path)}).relay_listen == ("10.0.0.2", 8781)
    for bad in ("8780", "h:0", "h:65536", "h:80a", "a b:80"):
        with pytest.raises(SettingsError, match="TSM_RELAY_LISTEN: expected HOST:PORT"):
            load_settings({"TSM_HOME": str(tmp_path), "TSM_RELAY_LISTEN": bad})
    (tmp_path / "tsm.toml").write_text("relay_listen = 8780\n")
    with pytest.raises(SettingsError, match=r"relay_listen in .* must be a string"):
        load_settings({"TSM_HOME": str(tmp_path)})


def test_garbage_database_url(home):
    line = error_line(run_tsm("keys", "list", home=home, env={"TSM_DATABASE_URL": "garbage"}))
    assert line.startswith("error[configuration_error]") and "TSM_DATABASE_URL" in line
    assert "postgresql+psycopg://" in line  # the remedy: what a URL looks like


def test_database_url_whose_driver_is_missing(home):
    line = error_line(run_tsm("keys", "list", home=home, env={"TSM_DATABASE_URL": "mysql://u:hunter2@h/db"}))
    assert "MySQLdb" in line and "not installed" in line
    assert "hunter2" not in line


def test_unknown_database_dialect(home):
    line = error_line(run_tsm("keys", "list", home=home, env={"TSM_DATABASE_URL": "nosuchdb://h/db"}))
    assert "configuration_error" in line and "nosuchdb" in line


@pytest.mark.parametrize("content", ["[]", '{"user_pin": 5}', '{"so_pin": "a", "user_pin": 5}', "null",
                                     '"pin"', '{"so_pin": "", "user_pin": ""}', "not json", "\udcff"])
def test_pin_file_of_the_wrong_shape(home, content):
    pin_file = home / "secrets" / "token-pins.json"
    pin_file.write_bytes(content.encode("utf-8", "surrogateescape"))
    line = error_line(run_tsm("keys", "list", home=home))
    assert line.startswith("error[configuration_error]") and str(pin_file) in line and "tsm init" in line


def test_pin_file_that_is_a_directory(home):
    line = error_line(run_tsm("keys", "list", home=home, env={"TSM_PIN_FILE": str(home / "secrets")}))
    assert "configuration_error" in line and "PIN file" in line


def test_bogus_log_level_is_refused_with_the_allowed_values(home):
    line = error_line(run_tsm("keys", "list", home=home, env={"TSM_LOG_LEVEL": "bogus"}))
    assert "TSM_LOG_LEVEL" in line and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in line
    assert load_settings({"TSM_HOME": str(home), "TSM_LOG_LEVEL": "warning"}).log_level == "WARNING"



def test_serve_refuses_a_bogus_log_level_before_gunicorn(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSM_")}
    env.update(TSM_HOME=str(home), TSM_LOG_LEVEL="bogus")
    proc = subprocess.Popen([TSM, "serve", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert err.strip().splitlines() == [err.strip()] and "TSM_LOG_LEVEL" in err
    assert "serving" not in out


# ---- a busy database ----------------------------------------------------------------------------------------


def test_a_held_sqlite_write_lock_is_database_busy(home):
    with (home / "tsm.toml").open("a") as fh:
        fh.write("database_busy_timeout = 0.2\n")
    holder = sqlite3.connect(home / "tsm.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        result = run_tsm("keys", "generate", "--label", "k1", "--type", "aes", "--usage", "KMC", home=home)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = error_line(result)
    assert line.startswith("error[database_busy]") and "another process holds the write lock" in line
    assert "database_busy_timeout" in line
    assert "agree" in run_tsm("keys", "check", home=home).stdout  # nothing half-done on the token


def test_a_held_postgresql_row_lock_is_database_busy(tmp_path, pg_url):
    import psycopg

    home = make_home(tmp_path / "home", pg_url)
    with (home / "tsm.toml").open("a") as fh:
        fh.write("database_busy_timeout = 0.2\n")
    with psycopg.connect(pg_url.replace("+psycopg", "")) as holder:
        holder.execute("UPDATE ks_audit_head SET seq = seq")
        result = run_tsm("keys", "generate", "--label", "k1", "--type", "aes", "--usage", "KMC", home=home)
        holder.rollback()
    line = error_line(result)
    assert line.startswith("error[database_busy]")
    assert "agree" in run_tsm("keys", "check", home=home).stdout


def test_pin_file_content_is_never_echoed(home):
    pin_file = home / "secrets" / "token-pins.json"
    pin_file.write_text(json.dumps({"so_pin": ["s3cr3t-so"], "user_pin": "s3cr3t-user"}))
    line = error_line(run_tsm("keys", "list", home=home))
    assert "s3cr3t" not in line
