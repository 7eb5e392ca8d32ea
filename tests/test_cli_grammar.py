"""The command-line grammar (docs/cli.md) on every command, in-process (click's runner) against one initialised
home with a few keys and a simulated card.

Examples: every command has --help, a group alone prints its help, usage errors are one line with exit 2,
tables have a header row, --json parses, irreversible changes need --yes, `cardsim serve --vpcd` takes an
optional value.

Property (hypothesis): whatever the arguments, a command ends with exit status 0, 1 or 2, never a traceback,
and exit 2 comes with exactly one `error[code]: message` line on stderr. Each leaf command gets random values
for each of its options and arguments: strings with control characters, huge strings, non-hex, negative and
huge numbers, unknown and existing labels, the valid choices. Commands that would run for ever or replace the
process when everything is valid (`serve`, `cardsim serve`, `relay-client`) and `kat` (which would create a
scratch token) get one invalid option appended, checked after the random ones.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SOFTHSM_CONF, TOKEN_DIR, make_service, new_token
from tsm.cli import main

TEST_KEY = "404142434445464748494A4B4C4D4E4F"
SESSION = "q3hV0dJc0sQ5s1bF2m9xk7Yp"
LABELS = ["gp", "kek", "send", "nope", "card.json"]
LEGACY_STATUS = ["--subset", "modules", "--legacy", "07A0000000620001010001 08A000000062000101"]
SAMPLES = [
    "", "-", "-1", "0", "00", "0x", "0x30", "30", "FF", "1G", "100", "65536", "1e999", "nan", "inf", "zz",
    TEST_KEY, "0102030405060708", "9" * 5000, "A" * 100_000, "\x1b[31mred", "a\nb", "\r\n", "\t", "é", "ｆｆ",
    "/", "/nonexistent/x.json", "http://[", "ftp://x", ":0", "h:99999", "E6", "K0", "N", "emv", "isd", "KMC",
]
GUARDS: dict[tuple[str, ...], list[str]] = {
    ("serve",): ["--workers", "0"],
    ("cardsim", "serve"): ["--vpcd", "nope"],
    ("relay-client",): ["--poll-interval", "0"],
    ("kat",): ["/nonexistent/guard.json"],
}
"""An invalid value appended last: these commands must never run for real here."""
ERROR_LINE = re.compile(r"error\[[a-z0-9_]+\]: .+")
UNSET = {var: None for var in ("TSM_DATABASE_URL", "TSM_PKCS11_MODULE", "TSM_PIN_FILE", "TSM_HSM_PROFILE",
                               "TSM_CONFIG")}


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


ALL = dict(_commands(main))
COMMANDS = {path: command for path, command in ALL.items() if not isinstance(command, click.Group)}
"""The leaf commands."""


def _safe(value: str) -> bool:
    """Random values stay inside the scratch directory: no absolute paths or parent directories."""
    return not value.startswith(("/", "~")) and ".." not in value


text_values = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40)
values = st.one_of(
    st.sampled_from(LABELS + SAMPLES),
    text_values.filter(_safe),
    st.integers(-(2**70), 2**70).map(str),
    st.binary(max_size=40).map(bytes.hex),
)


HINTS: dict[str, list[str]] = {
    "card_path": ["card.json"], "out": ["new.json", "card.json"], "label": ["new", "gp"], "labels": LABELS,
    "keys": LABELS, "kek": ["kek", "gp"], "host_challenge": ["0102030405060708"], "length": ["16", "24", "17"],
    "kvn": ["00", "0x30", "FF"], "key_id": ["01"], "level": ["01", "03", "13", "33", "7F"],
    "value": [TEST_KEY], "wrapped": ["1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"], "status": ["6A88"],
    "data": ["E3144F07A00000015100009F700107C50180EA028000"], "response": ["E3144F07A00000015100009F700107"],
    "month": ["2026-03", "2026-13"], "per_operation": ["lock=20", "download=1", "lock=-1", "lock="],
}
"""Plausible values by parameter name, so that the random lines also reach past the parsing."""


def _value(param: click.Parameter) -> st.SearchStrategy[str]:
    plausible = [str(c) for c in param.type.choices] if isinstance(param.type, click.Choice) else []
    plausible += HINTS.get(param.name or "", [])
    return st.one_of(st.sampled_from(plausible), values) if plausible else values


@st.composite
def argv(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    """A command line for `path`: each option present or not, with random values; then the arguments."""
    command = COMMANDS[path]
    tokens: list[str] = list(path)
    positional: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option):
            if param.is_flag:
                if draw(st.booleans()):
                    tokens.append(param.opts[0])
                continue
            count = draw(st.integers(0, 3 if param.multiple else 1)) if not param.required else \
                draw(st.sampled_from([1, 1, 1, 0, 2] if param.multiple else [1, 1, 1, 0]))
            for _ in range(count):
                tokens += [param.opts[0], draw(_value(param))]
        else:
            count = draw(st.integers(0, 3)) if param.nargs == -1 else draw(st.sampled_from([1, 1, 1, 0]))
            positional += [draw(_value(param)) for _ in range(count)]
    if positional and draw(st.booleans()):
        tokens.append("--")  # so that values starting with '-' reach the arguments
    tokens += positional
    tokens += draw(st.lists(values, max_size=2)) if draw(st.integers(0, 4)) == 0 else []
    return tokens + GUARDS.get(path, [])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """One initialised home (test token, keys gp/kek/send, a simulated card in the working directory)."""
    from softhsm import bootstrap
    from storage.config import load_settings

    home = tmp_path_factory.mktemp("cli-properties")
    token = new_token("prop")
    variables: dict[str, str | None] = {**UNSET, "TSM_HOME": str(home), "TSM_TOKEN_LABEL": token.label,
                                        "SOFTHSM2_CONF": str(SOFTHSM_CONF), "TSM_TOKEN_DIR": str(TOKEN_DIR),
                                        "TSM_OPERATOR": "prop"}
    # the settings the commands will read, so that they find the service opened here (one login per token)
    settings = load_settings({k: v for k, v in {**os.environ, **variables}.items() if v is not None})
    bootstrap.save_pins(settings.pin_file, token.pins)
    service = make_service(settings, True)
    work = home / "work"
    work.mkdir()
    previous = Path.cwd()
    os.chdir(work)
    try:
        runner = CliRunner()
        for args in (["keys", "import-test", "--label", "gp", "--type", "aes", "--hex", TEST_KEY],
                     ["keys", "import-test", "--label", "kek", "--type", "aes", "--usage", "KEK", "--hex", TEST_KEY],
                     ["keys", "import-test", "--label", "send", "--type", "aes", "--usage", "KMC", "--exportable",
                      "--hex", TEST_KEY],
                     ["cardsim", "new", "--out", "card.json"]):
            result = runner.invoke(main, args, env=variables)
            assert result.exit_code == 0, result.output
        yield variables
    finally:
        os.chdir(previous)
        service.close()


def run(env: dict[str, str | None], *args: str, code: int = 0):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, (args, result.output)
    return result


@pytest.mark.parametrize("path", [(), *sorted(ALL)], ids=lambda path: " ".join(("tsm", *path)))
def test_every_command_has_help(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0 and result.output.startswith(f"Usage: tsm {' '.join(path)}".rstrip())


@pytest.mark.parametrize("group", ["keys", "audit", "hsm", "gp", "cardsim", "db"])
def test_a_group_alone_prints_its_help(group):
    result = CliRunner().invoke(main, [group])
    assert result.exit_code == 0 and "Commands:" in result.output and not result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["keys", "generate"], "Missing option '--label'"),
    (["keys", "generate", "--label", "x", "--type", "ecc", "--usage", "KMC"], "'ecc' is not one of"),
    (["keys", "generate", "--label", "x", "--type", "aes", "--usage", "KMC", "--kvn", "100"], "not one hex byte"),
    (["keys", "import-test", "--label", "x", "--type", "aes", "--hex", "zz"], "not valid hex"),
    (["keys", "list", "--bogus"], "No such option '--bogus'"),
    (["keys", "nope"], "No such command 'nope'"),
    (["--bogus"], "No such option '--bogus'"),
    (["keys", "show", "gp", "a\nb\x1b[2J"], "unexpected extra argument (a\\nb\\x1b[2J)"),
    (["gp", "list", "--key", "gp"], "give exactly one of --reader, --card and --relay"),
    (["job", "run", "job-000000000000", "--relay", "short"], "16 to 64 URL-safe characters"),
    (["job", "run", "job-000000000000", "--relay", "sixteen+chars/!!"], "16 to 64 URL-safe characters"),
    (["job", "run", "job-000000000000", "--relay", SESSION, "--card", "card.json"], "exactly one of --reader, --card"),
    (["job", "run", "job-000000000000", "--relay", SESSION, "--relay-listen", "nowhere"], "expected HOST:PORT"),
    (["gp", "list", "--key", "gp", "--relay", SESSION], "--relay needs a registered SE"),
    (["se", "discover", "--key", "gp", "--relay", SESSION], "--relay needs a registered SE"),
    (["se", "show", "se-0000", "--relay", SESSION, "--reader", "0"], "at most one of --reader, --card"),
    (["serve", "--bind", "nowhere"], "expected HOST:PORT"),
    (["relay-client", "--url", "ftp://x", "--session", "s", "--reader", "0"], "http:// or https://"),
    (["db", "upgrade", "--revision", ""], "is not head or a revision id"),
])
def test_usage_errors_are_one_line_with_exit_2(env, args, says):
    result = run(env, *args, code=2)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error[usage]: ")
    assert says in result.stderr and "--help'" in result.stderr


def test_irreversible_changes_need_yes(env):
    run(env, "keys", "import-test", "--label", "doomed", "--type", "aes", "--hex", TEST_KEY)
    refused = run(env, "keys", "state", "doomed", "compromised", code=2)
    assert refused.stderr.startswith("error[usage]: marking a key compromised cannot be undone: add --yes")
    assert run(env, "keys", "destroy", "doomed", code=2).stderr.startswith("error[usage]: destroying a key")
    assert json.loads(run(env, "keys", "show", "doomed", "--json").stdout)["state"] == "active"
    changed = run(env, "keys", "state", "doomed", "compromised", "--yes", "--json").stdout
    assert json.loads(changed)[0]["state"] == "compromised"
    assert json.loads(run(env, "keys", "destroy", "doomed", "--yes", "--json").stdout)[0]["state"] == "destroyed"


def test_messages_use_the_right_article(env):
    length = run(env, "keys", "generate", "--label", "x", "--type", "aes", "--length", "17", "--usage", "KMC", code=2)
    assert "error[invalid_input]: an AES key is " in length.stderr
    denied = run(env, "gp", "diagnose", "--key", "tsm.audit-key", "--host-challenge", "0102030405060708",
                 "--init-update-response", "00" * 29, code=2)
    assert "error[policy_denied]: AUDIT_KEY keys may not be used for diagnose" in denied.stderr


@pytest.mark.parametrize(("args", "header"), [
    (["keys", "list"], "LABEL TYPE LENGTH USAGE STATE KCV KCV-METHOD OWNER KVN KEY-ID EXPORTABLE PROVENANCE RECORD"),
    (["audit", "list"], "SEQ TIME ACTOR OPERATION PURPOSE OUTCOME TARGET KEYS DETAIL"),
    (["cardsim", "profiles"], "PROFILE DESCRIPTION"),
    (["gp", "parse-status", *LEGACY_STATUS], "AID STATE PRIVILEGES MODULES"),
])
def test_tables_have_a_header_row(env, args, header):
    lines = run(env, *args).stdout.splitlines()
    assert " ".join(lines[0].split()) == header and len(lines) > 1


def _init_update_response(env: dict[str, str | None]) -> str:
    out = run(env, "cardsim", "initialize-update", "--card", "card.json", "--host-challenge", "0102030405060708")
    return str(out.stdout.strip())


def test_initialize_update_gives_what_diagnose_takes(env):
    response = _init_update_response(env)
    assert len(bytes.fromhex(response)) in (29, 32, 45, 48)  # SCP03 (Amd D Table 7-2), without the SW
    out = run(env, "gp", "diagnose", "--key", "gp", "--host-challenge", "0102030405060708",
              "--init-update-response", response).stdout
    assert out.splitlines()[0].split() == ["MATCH", "KEY", "DIVERSIFICATION", "RESULT"]
    assert out.splitlines()[-1] == "use: --key gp --div none"
    wrong = run(env, "gp", "diagnose", "--key", "send", "--host-challenge", "0102030405060709",
                "--init-update-response", response, code=1)
    assert "no key and diversification" in wrong.stdout


@pytest.mark.parametrize("args", [
    ["keys", "list"], ["keys", "show", "gp"], ["keys", "check"], ["audit", "list"], ["audit", "verify"],
    ["hsm", "info"], ["selftest"], ["cardsim", "profiles"], ["cardsim", "show", "--card", "card.json"],
    ["gp", "list", "--card", "card.json", "--key", "gp"], ["gp", "parse-status", *LEGACY_STATUS],
    ["gp", "diagnose", "--key", "gp", "--host-challenge", "0102030405060708", "--init-update-response"],
])
def test_json_parses(env, args):
    if args[-1] == "--init-update-response":
        args = [*args, _init_update_response(env)]
    document = json.loads(run(env, *args, "--json").stdout)
    assert document


def test_cardsim_serve_takes_vpcd_with_or_without_a_value():
    from tsm.commands.cardsim import serve_command

    def vpcd(*args: str) -> object:
        return serve_command.make_context("serve", ["--card", "c.json", *args]).params["vpcd"]

    assert vpcd() == vpcd("--vpcd") == ("127.0.0.1", 35963)
    assert vpcd("--vpcd", "10.0.0.2:9999") == ("10.0.0.2", 9999)
    assert serve_command.make_context("serve", ["--vpcd", "--card", "c.json"]).params["vpcd"] == ("127.0.0.1", 35963)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_docs_reference_names_every_command_and_option(path):
    reference = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    rows = [line for line in reference.splitlines() if line.startswith(f"| `tsm {' '.join(path)} ")
            or line.startswith(f"| `tsm {' '.join(path)}`")]
    assert len(rows) == 1, f"docs/cli.md has no reference row for tsm {' '.join(path)}"
    for param in COMMANDS[path].params:
        if isinstance(param, click.Option):
            assert param.opts[0] in rows[0], f"{param.opts[0]} of tsm {' '.join(path)} is not in docs/cli.md"


def test_every_leaf_command_is_covered():
    assert len(COMMANDS) >= 30 and set(GUARDS) <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_one_line_exit_2_never_a_traceback(env, path, data):
    args = data.draw(argv(path), label="argv")
    result = CliRunner().invoke(main, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{args!r} raised {result.exception!r}")
    assert result.exit_code in (0, 1, 2), (args, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and ERROR_LINE.fullmatch(lines[0]), (args, result.stderr)
