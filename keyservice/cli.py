"""`tsm keys ...`, `tsm audit ...`, `tsm hsm info`: the key service at the console.

Views only: each command parses, calls one facade method and prints. Errors surface as one line through
the root group (tsm/cli.py).
"""

from __future__ import annotations

import click

from hsm_profiles import loader
from keyservice.errors import InvalidInput
from keyservice.gp import strategy
from keyservice.inventory import Algorithm, KcvMethod, KeyState, KeyUsage, parse_enum
from keyservice.policy import Purpose, Request, console_officer
from keyservice.runtime import open_service
from keyservice.service import KeyService, KeyView, NewKey
from keyservice.vendor import KeyBlockHeader, Received
from storage.config import load_settings


def _service() -> KeyService:
    return open_service(load_settings())


def _request(target: str, purpose: Purpose = Purpose.KEY_MANAGEMENT) -> Request:
    return Request(console_officer(), purpose, target)


def parse_hex(value: str, what: str) -> bytes:
    """Bytes from hex, or a typed error (never echoes the value: it may be a key)."""
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidInput(f"{what} is not valid hex") from None


def _print_key(view: KeyView) -> None:
    kvn = "" if view.kvn is None else f" kvn={view.kvn:02X}"
    kid = "" if view.key_id is None else f" key_id={view.key_id:02X}"
    click.echo(f"{view.label:32} {view.algorithm}-{view.length * 8:<4} {view.usage:12} {view.state:15} "
               f"kcv={view.kcv} ({view.kcv_method}) owner={view.owner}{kvn}{kid} {view.provenance}"
               f"{' exportable' if view.exportable else ''}")


_ALGS = click.Choice([a.value for a in Algorithm if a is not Algorithm.HMAC])
_USAGES = click.Choice([u.value for u in KeyUsage if u is not KeyUsage.AUDIT_KEY])


@click.group("keys")
def keys_group() -> None:
    """Key inventory: master keys on the HSM, their states and KCVs."""


@keys_group.command("generate")
@click.option("--label", required=True)
@click.option("--type", "algorithm", type=_ALGS, required=True)
@click.option("--length", type=int, default=16, show_default=True, help="key length in bytes")
@click.option("--usage", type=_USAGES, required=True)
@click.option("--owner", default="issuer", show_default=True)
@click.option("--kvn", type=click.IntRange(0, 255))
@click.option("--key-id", type=click.IntRange(0, 255))
@click.option("--exportable", is_flag=True, help="may leave the HSM wrapped under a KEK (for SE vendors)")
def generate(label: str, algorithm: str, length: int, usage: str, owner: str, kvn: int | None,
             key_id: int | None, exportable: bool) -> None:
    """Generate a key inside the HSM (sensitive; never extractable unless --exportable; pre-activation)."""
    spec = NewKey(label, Algorithm(algorithm), length, KeyUsage(usage), owner, kvn, key_id, exportable=exportable)
    _print_key(_service().generate(_request(label), spec))


@keys_group.command("import-test")
@click.option("--label", required=True)
@click.option("--type", "algorithm", type=_ALGS, required=True)
@click.option("--hex", "hex_value", required=True, help="the published test key, e.g. 404142...4F")
@click.option("--usage", type=_USAGES, default=KeyUsage.ISD_KEYSET.value, show_default=True)
@click.option("--owner", default="lab", show_default=True)
@click.option("--kvn", type=click.IntRange(0, 255))
@click.option("--key-id", type=click.IntRange(0, 255))
@click.option("--exportable", is_flag=True, help="may leave the HSM wrapped under a KEK")
def import_test(label: str, algorithm: str, hex_value: str, usage: str, owner: str, kvn: int | None,
                key_id: int | None, exportable: bool) -> None:
    """Import a clear test key (only on a token created with `tsm init --test-token`)."""
    value = parse_hex(hex_value, "--hex")
    spec = NewKey(label, Algorithm(algorithm), len(value), KeyUsage(usage), owner, kvn, key_id, exportable=exportable)
    _print_key(_service().import_test_key(_request(label), spec, value))


def _received(label: str, owner: str, usage: str | None, kvn: int | None, key_id: int | None) -> Received:
    return Received(label, owner, KeyUsage(usage) if usage else None, kvn, key_id)


@keys_group.command("import-tr31")
@click.option("--kbpk", required=True, help="label of the KEK protecting the block")
@click.option("--block", required=True, help="the TR-31 / X9.143 key block (versions B and D)")
@click.option("--label", required=True)
@click.option("--kcv", "expected_kcv", required=True, help="the KCV the sender gave (GP method)")
@click.option("--usage", type=_USAGES, help="inventory usage, when the block's usage does not map to one")
@click.option("--owner", default="vendor", show_default=True)
@click.option("--kvn", type=click.IntRange(0, 255))
@click.option("--key-id", type=click.IntRange(0, 255))
def import_tr31(kbpk: str, block: str, label: str, expected_kcv: str, usage: str | None, owner: str,
                kvn: int | None, key_id: int | None) -> None:
    """Receive a key from an SE vendor as a TR-31 key block (MAC and KCV checked)."""
    view = _service().import_key_block(_request(label, Purpose.VENDOR_IMPORT), kbpk, block,
                                       _received(label, owner, usage, kvn, key_id), expected_kcv)
    _print_key(view)


@keys_group.command("import-wrapped")
@click.option("--kek", required=True, help="label of the KEK")
@click.option("--wrapped", "wrapped_hex", required=True, help="RFC 3394 (or --padded RFC 5649) wrapped key, hex")
@click.option("--padded", is_flag=True, help="RFC 5649 (AES key wrap with padding)")
@click.option("--type", "algorithm", type=_ALGS, required=True)
@click.option("--usage", type=_USAGES, required=True)
@click.option("--label", required=True)
@click.option("--kcv", "expected_kcv", required=True, help="the KCV the sender gave (GP method)")
@click.option("--owner", default="vendor", show_default=True)
@click.option("--kvn", type=click.IntRange(0, 255))
@click.option("--key-id", type=click.IntRange(0, 255))
def import_wrapped(kek: str, wrapped_hex: str, padded: bool, algorithm: str, usage: str, label: str,
                   expected_kcv: str, owner: str, kvn: int | None, key_id: int | None) -> None:
    """Receive a key from an SE vendor wrapped under a KEK (AES key wrap; KCV checked)."""
    view = _service().import_wrapped(_request(label, Purpose.VENDOR_IMPORT), kek, parse_hex(wrapped_hex, "--wrapped"),
                                     padded, Algorithm(algorithm), _received(label, owner, usage, kvn, key_id),
                                     expected_kcv)
    _print_key(view)


@keys_group.command("export-wrapped")
@click.argument("label")
@click.option("--kek", required=True, help="label of the vendor's KEK")
@click.option("--padded", is_flag=True, help="RFC 5649 (AES key wrap with padding)")
def export_wrapped(label: str, kek: str, padded: bool) -> None:
    """Send an exportable key to an SE vendor, wrapped under a KEK (RFC 3394 / RFC 5649); prints hex."""
    click.echo(_service().export_wrapped(_request(label, Purpose.VENDOR_EXPORT), label, kek, padded).hex().upper())


@keys_group.command("export-tr31")
@click.argument("label")
@click.option("--kbpk", required=True, help="label of the KEK protecting the block (3DES: version B, AES: D)")
@click.option("--usage-code", required=True, help="TR-31 key usage, e.g. K0, E6")
@click.option("--mode", default="N", show_default=True)
@click.option("--key-version", default="00", show_default=True)
@click.option("--exportability", default="N", show_default=True)
def export_tr31(label: str, kbpk: str, usage_code: str, mode: str, key_version: str, exportability: str) -> None:
    """Send an exportable key to an SE vendor as a TR-31 key block; prints the block."""
    header = KeyBlockHeader(usage_code, mode, key_version, exportability)
    click.echo(_service().export_key_block(_request(label, Purpose.VENDOR_EXPORT), label, kbpk, header))


@keys_group.command("list")
@click.option("--usage", type=click.Choice([u.value for u in KeyUsage]))
@click.option("--owner")
@click.option("--all", "include_destroyed", is_flag=True, help="include destroyed keys")
def list_keys(usage: str | None, owner: str | None, include_destroyed: bool) -> None:
    """List inventory records."""
    for view in _service().list_keys(KeyUsage(usage) if usage else None, owner, include_destroyed):
        _print_key(view)


@keys_group.command("show")
@click.argument("label")
def show(label: str) -> None:
    """Show one key's record."""
    view = _service().show(label)
    for name, value in vars(view).items():
        click.echo(f"{name:18} {value}")


@keys_group.command("state")
@click.argument("label")
@click.argument("state", type=click.Choice([s.value for s in KeyState if s is not KeyState.DESTROYED]))
def change_state(label: str, state: str) -> None:
    """Move a key to another SP 800-57 state (activate, suspend, deactivate, mark compromised)."""
    _print_key(_service().change_state(_request(label), label, parse_enum(KeyState, state, "state")))


@keys_group.command("destroy")
@click.argument("label")
@click.option("--yes", is_flag=True, help="confirm")
def destroy(label: str, yes: bool) -> None:
    """Destroy a key on the token (the record stays, state destroyed)."""
    if not yes:
        raise InvalidInput("destroying a key cannot be undone: add --yes")
    _print_key(_service().destroy(_request(label), label))


@keys_group.command("kcv")
@click.argument("label")
@click.option("--method", type=click.Choice([m.value for m in KcvMethod]))
@click.option("--length", type=click.Choice(["2", "3", "5"]), default="3", show_default=True)
def kcv(label: str, method: str | None, length: str) -> None:
    """Compute a key check value inside the HSM."""
    click.echo(_service().kcv(_request(label), label, KcvMethod(method) if method else None, int(length)))


@keys_group.command("check")
def check_keys() -> None:
    """Report any key missing on the token or in the inventory (exit 1 if any)."""
    report = _service().check_token()
    for label in report.missing_on_token:
        click.echo(f"missing on token:     {label}")
    for label in report.missing_in_inventory:
        click.echo(f"missing in inventory: {label}")
    for problem in report.wrong_attributes:
        click.echo(f"attribute drift:      {problem}")
    if not report.consistent:
        raise SystemExit(1)
    click.echo("inventory and token agree")


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit chain."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Verify every record's link, hash and HSM MAC, and the HSM anchor."""
    report = _service().verify_audit()
    click.echo(f"audit chain intact: {report.records} records, head {report.head_hash[:16]}…")


@audit_group.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
def audit_list(limit: int) -> None:
    """Show the newest records."""
    for rec in _service().audit.records(limit):
        click.echo(f"{rec.seq:6} {rec.ts} {rec.actor:24} {rec.operation:14} {rec.purpose:14} "
                   f"{rec.outcome:8} {rec.target} {rec.keys} {rec.detail}")


@click.group("hsm")
def hsm_group() -> None:
    """The HSM behind the key service."""


@hsm_group.command("info")
def hsm_info() -> None:
    """The active profile, the mechanisms the token reports, and any mismatch between them."""
    settings = load_settings()
    service = _service()
    profile = loader.load(settings.hsm_profile)
    info = service.token_info()
    if info.test_token:
        click.echo("!!! TEST TOKEN: clear test keys may be imported; never use it for production cards !!!")
    click.echo(f"token:    {info.label} ({info.manufacturer} {info.model}, serial {info.serial})")
    click.echo(f"module:   {service.hsm.module} — {info.library}")
    click.echo(f"profile:  {profile.name} ({profile.vendor}){'' if profile.tested else ' — UNTESTED'}")
    reported = service.hsm.mechanisms()
    names = sorted(name for name, value in loader.KNOWN.items() if value in reported)
    click.echo(f"mechanisms reported ({len(names)}): {' '.join(names)}")
    comparison = loader.compare(profile, reported)
    if comparison.matches:
        click.echo("profile matches the token")
    for name in comparison.declared_missing:
        click.echo(f"MISMATCH: profile declares {name}, the token does not report it")
    for name in comparison.absent_present:
        click.echo(f"MISMATCH: profile says {name} is absent, the token reports it")
    click.echo("strategy per operation (host memory = a session-class or imported key transits host memory;"
               " master keys never do):")
    for op, name in strategy.profile_table(profile.strategies, profile.name).items():
        chosen = strategy.STRATEGIES[name]
        available = "" if chosen.mechanisms <= reported else "  MISSING MECHANISMS ON THIS TOKEN"
        memory = "a key transits host memory" if chosen.session_key_in_host_memory else "inside the HSM"
        click.echo(f"  {op.value:24} {name:24} {memory if chosen.supported else 'refused'}{available}")


@click.command("kat", context_settings={"ignore_unknown_options": False})
@click.argument("paths", nargs=-1, required=True)
def kat_command(paths: tuple[str, ...]) -> None:
    """Run known-answer vector files (docs/kat-format.md) on a scratch SoftHSM2 token; exit 1 on any FAIL."""
    from keyservice import kat

    raise SystemExit(kat.main(list(paths)))


@click.command("selftest")
def selftest_command() -> None:
    """Run the shipped published vectors through the production code path on the configured token."""
    report = _service().run_selftest()
    for line in report.lines():
        click.echo(line)


@click.command("diagnose")
@click.option("--init-update-response", "response_hex", required=True,
              help="the card's INITIALIZE UPDATE response, without the status word")
@click.option("--host-challenge", "challenge_hex", required=True, help="the 8-byte host challenge that was sent")
@click.option("--key", "labels", multiple=True, required=True, help="key label to try (repeatable)")
def diagnose_command(response_hex: str, challenge_hex: str, labels: tuple[str, ...]) -> None:
    """Which key and diversification give the card cryptogram. Never sends or builds EXTERNAL AUTHENTICATE."""
    response = parse_hex(response_hex, "--init-update-response")
    if response[-2:] == b"\x90\x00" and len(response) in (30, 31, 34):
        response = response[:-2]  # a pasted response with its status word
    challenge = parse_hex(challenge_hex, "--host-challenge")
    trials = _service().diagnose(_request("diagnose", Purpose.DIAGNOSTIC), list(labels), response, challenge)
    for trial in trials:
        click.echo(f"{'MATCH' if trial.matched else '     '} key={trial.key:24} div={trial.diversification:6} "
                   f"{trial.result}")
    matches = [t for t in trials if t.matched]
    if not matches:
        click.echo("no key and diversification reproduces the card cryptogram")
        raise SystemExit(1)
    best = matches[0]
    click.echo(f"use: --key {best.key} --div {best.diversification}")
