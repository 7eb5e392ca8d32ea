"""The `tsm` command end to end, as separate processes on a fresh $TSM_HOME (real SoftHSM2, real
gunicorn), and a scan of everything the run wrote for secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.serving import TSM, free_port

TEST_KEYS = ["404142434445464748494A4B4C4D4E4F", "00112233445566778899AABBCCDDEEFF",
             "0123456789ABCDEFFEDCBA9876543210"]
RELAY_SESSION = "Relay-Session-Secret_0123456789"
OUTPUTS: list[str] = []
FIRST_INIT: list[subprocess.CompletedProcess[str]] = []


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home initialised as a test token; the first `tsm init` output is kept for the init test."""
    path = tmp_path_factory.mktemp("home")
    FIRST_INIT.append(tsm(path, "init", "--test-token"))
    return path


def tsm(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL")}
    env.update(TSM_HOME=str(home), TSM_OPERATOR="alice")
    proc = subprocess.run([TSM, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    OUTPUTS.append(proc.stdout + proc.stderr)
    if ok:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error["), proc.stderr
    return proc


def test_init_is_idempotent_and_keeps_pins_private(home):
    first = FIRST_INIT[0]
    assert "created" in first.stdout and "TEST TOKEN" in first.stdout
    second = tsm(home, "init")
    assert "exists" in second.stdout
    assert (home / "secrets" / "token-pins.json").stat().st_mode & 0o777 == 0o600


def rows(output: str) -> list[dict[str, str]]:
    """A table's rows as dicts keyed by the header row (docs/cli.md: cells are one word, `-` when empty)."""
    header, *lines = output.splitlines()
    names = header.split()
    return [dict(zip(names, line.split(None, len(names) - 1), strict=True)) for line in lines]


def test_keys_commands(home):
    out = tsm(home, "keys", "import-test", "--label", "gp", "--type", "aes", "--hex", TEST_KEYS[0]).stdout
    assert rows(out) == [{"LABEL": "gp", "TYPE": "aes", "LENGTH": "16", "USAGE": "ISD_KEYSET", "STATE": "active",
                          "KCV": "504A77", "KCV-METHOD": "gp", "OWNER": "lab", "KVN": "-", "KEY-ID": "-",
                          "EXPORTABLE": "no", "PROVENANCE": "imported-test", "RECORD": "signed"}]
    made = tsm(home, "keys", "generate", "--label", "kmc", "--type", "des3", "--length", "16", "--usage", "KMC",
               "--kvn", "0x30", "--key-id", "1", "--json").stdout
    assert json.loads(made)[0] | {"kvn": 0x30, "key_id": 1, "length": 16, "state": "pre-activation"} == \
        json.loads(made)[0]
    tsm(home, "keys", "state", "kmc", "active")
    listed = {r["LABEL"]: r for r in rows(tsm(home, "keys", "list").stdout)}
    assert {"KVN": "30", "KEY-ID": "01", "STATE": "active", "TYPE": "des3"}.items() <= listed["kmc"].items()
    assert [k["label"] for k in json.loads(tsm(home, "keys", "list", "--usage", "KMC", "--json").stdout)] == ["kmc"]
    shown = tsm(home, "keys", "show", "kmc").stdout
    assert "usage             KMC" in shown and "kvn               30" in shown
    assert json.loads(tsm(home, "keys", "show", "kmc", "--json").stdout)["usage"] == "KMC"
    assert len(tsm(home, "keys", "kcv", "gp", "--method", "aes_cmac").stdout.strip()) == 6
    assert len(tsm(home, "keys", "kcv", "gp", "--kcv-length", "5").stdout.strip()) == 10
    assert "agree" in tsm(home, "keys", "check").stdout
    assert json.loads(tsm(home, "keys", "check", "--json").stdout)["consistent"] is True


def test_rsa_key_pair_at_the_console(home):
    """The issue's `tsm keys generate --type rsa --length 2048 --usage TOKEN_KEY`: a pair in the HSM, the length
    in bits, the public key's fingerprint as its KCV; lengths in the wrong unit and usages without RSA refused."""
    out = tsm(home, "keys", "generate", "--label", "token", "--type", "rsa", "--length", "2048", "--usage",
              "TOKEN_KEY").stdout
    row = rows(out)[0]
    assert {"TYPE": "rsa", "LENGTH": "2048", "USAGE": "TOKEN_KEY", "KCV-METHOD": "spki_sha256",
            "EXPORTABLE": "no", "STATE": "pre-activation"}.items() <= row.items()
    assert tsm(home, "keys", "kcv", "token").stdout.strip() == row["KCV"]
    made = json.loads(tsm(home, "keys", "generate", "--label", "dap", "--type", "rsa", "--usage", "DAP_KEY",
                          "--json").stdout)[0]
    assert (made["algorithm"], made["length"]) == ("rsa", 2048)
    assert "agree" in tsm(home, "keys", "check").stdout
    assert "1024, 2048, 3072, 4096 bits long, not 16" in tsm(home, "keys", "generate", "--label", "x", "--type",
                                                              "rsa", "--length", "16", "--usage", "TOKEN_KEY",
                                                              ok=False).stderr
    assert "a KMC key is" in tsm(home, "keys", "generate", "--label", "x", "--type", "rsa", "--usage", "KMC",
                                 ok=False).stderr
    assert "error[usage]" in tsm(home, "keys", "import-test", "--label", "x", "--type", "rsa", "--hex", "00",
                                 ok=False).stderr


def test_vendor_key_imports(home):
    # RFC 3394 §4.1: KEK 000102..0F wraps 00112233..FF
    tsm(home, "keys", "import-test", "--label", "vendor-kek", "--type", "aes", "--usage", "KEK", "--hex",
        "000102030405060708090A0B0C0D0E0F")
    clear = tsm(home, "keys", "import-test", "--label", "clear-ref", "--type", "aes", "--usage", "KMC", "--hex",
                TEST_KEYS[1]).stdout
    kcv = rows(clear)[0]["KCV"]
    out = tsm(home, "keys", "import-wrapped", "--kek", "vendor-kek", "--wrapped",
              "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5", "--type", "aes", "--usage", "KMC",
              "--label", "received", "--kcv", kcv).stdout
    assert rows(out)[0]["KCV"] == kcv and rows(out)[0]["PROVENANCE"] == "imported-wrapped"
    err = tsm(home, "keys", "import-wrapped", "--kek", "vendor-kek", "--wrapped",
              "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE4", "--type", "aes", "--usage", "KMC",
              "--label", "received2", "--kcv", kcv, ok=False).stderr
    assert "unwrap_failed" in err
    err = tsm(home, "keys", "import-tr31", "--kek", "vendor-kek", "--block", "B0080P0TE00E0000", "--label", "t",
              "--kcv", "00", ok=False).stderr
    assert "error[" in err
    tsm(home, "keys", "import-test", "--label", "to-send", "--type", "aes", "--usage", "KMC", "--exportable",
        "--hex", TEST_KEYS[1])
    blob = tsm(home, "keys", "export-wrapped", "to-send", "--kek", "vendor-kek").stdout.strip()
    assert blob == "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"  # RFC 3394 §4.1
    assert "policy_denied" in tsm(home, "keys", "export-wrapped", "clear-ref", "--kek", "vendor-kek", ok=False).stderr
    block = tsm(home, "keys", "export-tr31", "to-send", "--kek", "vendor-kek", "--header-usage", "E6").stdout
    assert block.startswith("D") and block[5:8] == "E6A"


def test_bad_input_is_one_line(home):
    assert "not valid hex" in tsm(home, "keys", "import-test", "--label", "x", "--type", "aes", "--hex", "zz",
                                  ok=False).stderr
    assert "key_not_found" in tsm(home, "keys", "show", "nope", ok=False).stderr
    assert "key_exists" in tsm(home, "keys", "import-test", "--label", "gp", "--type", "aes", "--hex",
                               TEST_KEYS[1], ok=False).stderr
    assert "invalid_input" in tsm(home, "keys", "import-test", "--label", "y", "--type", "aes", "--hex",
                                  TEST_KEYS[1][:30], ok=False).stderr
    assert "key_state" in tsm(home, "keys", "state", "kmc", "pre-activation", ok=False).stderr
    assert tsm(home, "keys", "state", "kmc", "compromised", ok=False).stderr.startswith("error[usage]: ")
    assert "error[usage]: Missing option '--label'" in tsm(home, "keys", "generate", ok=False).stderr


def test_production_token_refuses_clear_import(tmp_path):
    tsm(tmp_path, "init")
    err = tsm(tmp_path, "keys", "import-test", "--label", "x", "--type", "aes", "--hex", TEST_KEYS[2],
              ok=False).stderr
    assert "test_token_only" in err
    assert "TEST TOKEN" not in tsm(tmp_path, "hsm", "info").stdout


def test_hsm_info_and_audit(home):
    info = tsm(home, "hsm", "info").stdout
    assert "TEST TOKEN" in info and "profile     softhsm2" in info and "profile matches the token" in info
    strategies = rows(info.split("them):\n")[-1])
    assert {"STEP": "put_key_scp02", "STRATEGY": "host_memory_card_key", "WHERE": "host-memory"}.items() <= \
        next(r for r in strategies if r["STEP"] == "put_key_scp02").items()
    assert next(r for r in strategies if r["STEP"] == "scp03_session_keys")["WHERE"] == "hsm"
    assert next(r for r in strategies if r["STEP"] == "rsa_sign")["STRATEGY"] == "native_sign"
    assert "audit chain intact" in tsm(home, "audit", "verify").stdout
    records = rows(tsm(home, "audit", "list", "--limit", "50").stdout)
    assert "refused" in {r["OUTCOME"] for r in records}
    assert json.loads(tsm(home, "audit", "verify", "--json").stdout)["intact"] is True
    assert len(json.loads(tsm(home, "audit", "list", "--limit", "3", "--json").stdout)) == 3


def test_kat_and_selftest_commands(home):
    vectors = Path(__file__).parent / "vectors"
    out = tsm(home, "kat", str(vectors / "kcv.json"), str(vectors / "scp03_session_keys.json")).stdout
    assert out.splitlines()[-1].endswith(" passed, 0 failed")
    report = json.loads(tsm(home, "kat", str(vectors / "kcv.json"), "--json").stdout)
    assert report["failed"] == 0 and report["passed"] == len(report["outcomes"]) > 0
    assert "error[usage]: " in tsm(home, "kat", str(home / "missing.json"), ok=False).stderr
    assert tsm(home, "selftest").stdout.splitlines()[-1].endswith(" passed, 0 failed")


def test_gp_diagnose_finds_the_diversification(home):
    from cardsim.state import new_card

    card = new_card("scp02-emv")  # card keys EMV-diversified from 404142..4F
    card.power_on()
    card.transmit(bytes.fromhex("00A4040000"))
    host = "0102030405060708"
    response = card.transmit(bytes.fromhex("8050000008" + host + "00"))
    tsm(home, "keys", "import-test", "--label", "gp-des", "--type", "des3", "--hex", TEST_KEYS[0])
    out = tsm(home, "gp", "diagnose", "--init-update-response", response.hex(), "--host-challenge", host,
              "--key", "gp", "--key", "gp-des").stdout
    assert "use: --key gp-des --div emv" in out
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"} | {"TSM_HOME": str(home)}
    miss = subprocess.run([TSM, "gp", "diagnose", "--init-update-response", response[:-2].hex(),
                           "--host-challenge", host, "--key", "gp"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert miss.returncode == 1 and "no key and diversification" in miss.stdout and not miss.stderr
    err = tsm(home, "gp", "diagnose", "--init-update-response", "00" * 5, "--host-challenge", host, "--key", "gp",
              ok=False).stderr
    assert "invalid_input" in err



def test_serve_health_under_gunicorn(home):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF",)}
    env.update(TSM_HOME=str(home))
    log = home / "serve.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([TSM, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = None
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    body = json.loads(resp.read())
                    break
            except urllib.error.HTTPError as exc:
                body = json.loads(exc.read())
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, log.read_text()
        assert body["status"] == "ok", body
        assert body["hsm"]["test_token"] is True and "TEST TOKEN" in body["warning"]
        assert body["audit_chain"]["status"] == "ok" and body["database"]["status"] == "ok"
        assert body["selftest"]["status"] == "ok"
        poll = urllib.request.Request(f"http://127.0.0.1:{port}/relay/sessions/{RELAY_SESSION}/exchange",
                                      data=b'{"version": 2, "seq": 1, "status": "POLLING"}', method="POST",
                                      headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as unknown:  # the relay endpoint, its session id a secret
            urllib.request.urlopen(poll, timeout=10)  # noqa: S310 (http)
        assert unknown.value.code == 404 and unknown.value.headers["Content-Type"] == "application/problem+json"
        assert json.loads(unknown.value.read())["code"] == "relay_session_not_found"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    served = log.read_text()
    assert '"POST /relay/sessions/-/exchange HTTP/1.1" 404' in served  # the access log has the request, not the id
    OUTPUTS.append(served)


def test_no_secret_reaches_output_database_or_logs(home):
    pins = json.loads((home / "secrets" / "token-pins.json").read_text())
    secrets_ = [k.lower() for k in TEST_KEYS] + [pins["so_pin"], pins["user_pin"], RELAY_SESSION.lower()]
    blobs = [o.lower() for o in OUTPUTS]
    blobs.append((home / "tsm.db").read_bytes().hex() + (home / "tsm.db").read_bytes().decode("latin-1").lower())
    for wal in home.glob("tsm.db-*"):
        blobs.append(wal.read_bytes().decode("latin-1").lower())
    for secret in secrets_:
        for blob in blobs:
            assert secret not in blob
