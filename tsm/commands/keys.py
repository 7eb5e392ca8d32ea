"""`tsm keys ...`: the key inventory at the console (docs/cli.md).

Views only: each command parses, names the caller (the console officer), calls one key-service function and
prints. Errors surface as one line through the root group (tsm/cli.py).
"""

from __future__ import annotations

import click

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice.errors import InvalidInput
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.vendor import KeyBlockHeader, Received
from keyservice.views import KeyView, NewKey
from tsm.identity import console_officer
from tsm.output import HexByte, emit_json, json_option, table
from tsm.service import key_service

ALGORITHMS = click.Choice([a.value for a in KeyAlgorithm if a is not KeyAlgorithm.HMAC])
USAGES = click.Choice([u.value for u in KeyUsage if u is not KeyUsage.AUDIT_KEY])
IRREVERSIBLE_STATES = frozenset({KeyState.COMPROMISED})


def request(target: str, purpose: Purpose = Purpose.KEY_MANAGEMENT) -> Request:
    """A request of the console officer."""
    return Request(console_officer(), purpose, target)


def parse_hex(value: str, what: str) -> bytes:
    """Bytes from hex, or a typed error (never echoes the value: it may be a key)."""
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidInput(f"{what} is not valid hex") from None


KEY_HEADERS = ("LABEL", "TYPE", "USAGE", "STATE", "KCV", "OWNER", "KVN", "KEY-ID", "PROVENANCE")


def _row(view: KeyView) -> list[object]:
    kvn = "" if view.kvn is None else f"{view.kvn:02X}"
    kid = "" if view.key_id is None else f"{view.key_id:02X}"
    provenance = view.provenance + (", exportable" if view.exportable else "")
    return [view.label, f"{view.algorithm}-{view.length * 8}", view.usage, view.state,
            f"{view.kcv} ({view.kcv_method})", view.owner, kvn, kid, provenance]


def print_keys(views: list[KeyView], as_json: bool = False) -> None:
    """A table of keys (or JSON)."""
    if as_json:
        emit_json(views)
    else:
        table(KEY_HEADERS, [_row(v) for v in views])


@click.group("keys")
def keys_group() -> None:
    """Key inventory: master keys on the HSM, their states and KCVs."""


@keys_group.command("generate")
@click.option("--label", required=True, help="label of the new key")
@click.option("--type", "algorithm", type=ALGORITHMS, required=True)
@click.option("--length", type=int, default=16, show_default=True, help="key length in bytes")
@click.option("--usage", type=USAGES, required=True)
@click.option("--owner", default="issuer", show_default=True)
@click.option("--kvn", type=HexByte(), help="key version number, hex (e.g. 30)")
@click.option("--key-id", type=HexByte(), help="key identifier, hex (e.g. 01)")
@click.option("--exportable", is_flag=True, help="may leave the HSM wrapped under a KEK (for SE vendors)")
@json_option
def generate(label: str, algorithm: str, length: int, usage: str, owner: str, kvn: int | None,
             key_id: int | None, exportable: bool, as_json: bool) -> None:
    """Generate a key inside the HSM (sensitive; never extractable unless --exportable; pre-activation)."""
    spec = NewKey(label, KeyAlgorithm(algorithm), length, KeyUsage(usage), owner, kvn, key_id, exportable=exportable)
    print_keys([key_service().keys.generate(request(label), spec)], as_json)


@keys_group.command("import-test")
@click.option("--label", required=True, help="label of the new key")
@click.option("--type", "algorithm", type=ALGORITHMS, required=True)
@click.option("--hex", "hex_value", required=True, help="the published test key, e.g. 404142...4F")
@click.option("--usage", type=USAGES, default=KeyUsage.ISD_KEYSET.value, show_default=True)
@click.option("--owner", default="lab", show_default=True)
@click.option("--kvn", type=HexByte(), help="key version number, hex (e.g. 30)")
@click.option("--key-id", type=HexByte(), help="key identifier, hex (e.g. 01)")
@click.option("--exportable", is_flag=True, help="may leave the HSM wrapped under a KEK")
@json_option
def import_test(label: str, algorithm: str, hex_value: str, usage: str, owner: str, kvn: int | None,
                key_id: int | None, exportable: bool, as_json: bool) -> None:
    """Import a clear test key (only on a token created with `tsm init --test-token`)."""
    value = parse_hex(hex_value, "--hex")
    spec = NewKey(label, KeyAlgorithm(algorithm), len(value), KeyUsage(usage), owner, kvn, key_id,
                  exportable=exportable)
    print_keys([key_service().keys.import_test(request(label), spec, value)], as_json)


def _received(label: str, owner: str, usage: str | None, kvn: int | None, key_id: int | None) -> Received:
    return Received(label, owner, KeyUsage(usage) if usage else None, kvn, key_id)


@keys_group.command("import-tr31")
@click.option("--label", required=True, help="label of the new key")
@click.option("--kek", required=True, help="label of the KEK protecting the block (the TR-31 KBPK)")
@click.option("--block", required=True, help="the TR-31 / X9.143 key block (versions B and D)")
@click.option("--kcv", "expected_kcv", required=True, help="the KCV the sender gave (GP method)")
@click.option("--usage", type=USAGES, help="inventory usage, when the block's usage does not map to one")
@click.option("--owner", default="vendor", show_default=True)
@click.option("--kvn", type=HexByte(), help="key version number, hex (e.g. 30)")
@click.option("--key-id", type=HexByte(), help="key identifier, hex (e.g. 01)")
@json_option
def import_tr31(label: str, kek: str, block: str, expected_kcv: str, usage: str | None, owner: str,
                kvn: int | None, key_id: int | None, as_json: bool) -> None:
    """Receive a key from an SE vendor as a TR-31 key block (MAC and KCV checked)."""
    view = key_service().vendor.import_key_block(request(label, Purpose.VENDOR_IMPORT), kek, block,
                                                 _received(label, owner, usage, kvn, key_id), expected_kcv)
    print_keys([view], as_json)


@keys_group.command("import-wrapped")
@click.option("--label", required=True, help="label of the new key")
@click.option("--kek", required=True, help="label of the KEK")
@click.option("--wrapped", "wrapped_hex", required=True, help="RFC 3394 (or --padded RFC 5649) wrapped key, hex")
@click.option("--padded", is_flag=True, help="RFC 5649 (AES key wrap with padding)")
@click.option("--type", "algorithm", type=ALGORITHMS, required=True)
@click.option("--usage", type=USAGES, required=True)
@click.option("--kcv", "expected_kcv", required=True, help="the KCV the sender gave (GP method)")
@click.option("--owner", default="vendor", show_default=True)
@click.option("--kvn", type=HexByte(), help="key version number, hex (e.g. 30)")
@click.option("--key-id", type=HexByte(), help="key identifier, hex (e.g. 01)")
@json_option
def import_wrapped(label: str, kek: str, wrapped_hex: str, padded: bool, algorithm: str, usage: str,
                   expected_kcv: str, owner: str, kvn: int | None, key_id: int | None, as_json: bool) -> None:
    """Receive a key from an SE vendor wrapped under a KEK (AES key wrap; KCV checked)."""
    view = key_service().vendor.import_wrapped(request(label, Purpose.VENDOR_IMPORT), kek,
                                               parse_hex(wrapped_hex, "--wrapped"), padded, KeyAlgorithm(algorithm),
                                               _received(label, owner, usage, kvn, key_id), expected_kcv)
    print_keys([view], as_json)


@keys_group.command("export-wrapped")
@click.argument("label")
@click.option("--kek", required=True, help="label of the vendor's KEK")
@click.option("--padded", is_flag=True, help="RFC 5649 (AES key wrap with padding)")
def export_wrapped(label: str, kek: str, padded: bool) -> None:
    """Send an exportable key to an SE vendor, wrapped under a KEK (RFC 3394 / RFC 5649); prints hex."""
    blob = key_service().vendor.export_wrapped(request(label, Purpose.VENDOR_EXPORT), label, kek, padded)
    click.echo(blob.hex().upper())


@keys_group.command("export-tr31")
@click.argument("label")
@click.option("--kek", required=True, help="label of the KEK protecting the block (3DES: version B, AES: D)")
@click.option("--header-usage", required=True, help="TR-31 key usage, e.g. K0, E6")
@click.option("--header-mode", default="N", show_default=True, help="TR-31 mode of use")
@click.option("--header-key-version", default="00", show_default=True, help="TR-31 key version number")
@click.option("--header-exportability", default="N", show_default=True, help="TR-31 exportability")
def export_tr31(label: str, kek: str, header_usage: str, header_mode: str, header_key_version: str,
                header_exportability: str) -> None:
    """Send an exportable key to an SE vendor as a TR-31 key block; prints the block."""
    header = KeyBlockHeader(header_usage, header_mode, header_key_version, header_exportability)
    click.echo(key_service().vendor.export_key_block(request(label, Purpose.VENDOR_EXPORT), label, kek, header))


@keys_group.command("list")
@click.option("--usage", type=click.Choice([u.value for u in KeyUsage]))
@click.option("--owner")
@click.option("--all", "include_destroyed", is_flag=True, help="include destroyed keys")
@json_option
def list_keys(usage: str | None, owner: str | None, include_destroyed: bool, as_json: bool) -> None:
    """List inventory records."""
    print_keys(key_service().keys.list_keys(KeyUsage(usage) if usage else None, owner, include_destroyed), as_json)


@keys_group.command("show")
@click.argument("label")
@json_option
def show(label: str, as_json: bool) -> None:
    """Show one key's record."""
    view = key_service().keys.show(label)
    if as_json:
        emit_json(view)
        return
    for name, value in vars(view).items():
        click.echo(f"{name:18} {value}")


@keys_group.command("state")
@click.argument("label")
@click.argument("state", type=click.Choice([s.value for s in KeyState if s is not KeyState.DESTROYED]))
@click.option("--yes", is_flag=True, help="confirm an irreversible change (compromised)")
@json_option
def change_state(label: str, state: str, yes: bool, as_json: bool) -> None:
    """Move a key to another SP 800-57 state (activate, suspend, deactivate, mark compromised)."""
    new_state = KeyState(state)
    if new_state in IRREVERSIBLE_STATES and not yes:
        raise InvalidInput(f"a key marked {new_state} can never be used again: add --yes")
    print_keys([key_service().keys.change_state(request(label), label, new_state)], as_json)


@keys_group.command("destroy")
@click.argument("label")
@click.option("--yes", is_flag=True, help="confirm: destroying a key cannot be undone")
@json_option
def destroy(label: str, yes: bool, as_json: bool) -> None:
    """Destroy a key on the token (the record stays, state destroyed)."""
    if not yes:
        raise InvalidInput("destroying a key cannot be undone: add --yes")
    print_keys([key_service().keys.destroy(request(label), label)], as_json)


@keys_group.command("kcv")
@click.argument("label")
@click.option("--method", type=click.Choice([m.value for m in KcvMethod]))
@click.option("--kcv-length", type=click.Choice(["2", "3", "5"]), default="3", show_default=True,
              help="KCV length in bytes")
def kcv(label: str, method: str | None, kcv_length: str) -> None:
    """Compute a key check value inside the HSM."""
    click.echo(key_service().keys.kcv(request(label), label, KcvMethod(method) if method else None, int(kcv_length)))


@keys_group.command("check")
@json_option
def check_keys(as_json: bool) -> None:
    """Report any key missing on the token or in the inventory, or whose token object drifted (exit 1 if any)."""
    report = key_service().keys.check()
    if as_json:
        emit_json({**vars(report), "consistent": report.consistent})
    else:
        rows = [("missing on token", label) for label in report.missing_on_token]
        rows += [("missing in inventory", label) for label in report.missing_in_inventory]
        rows += [("attribute drift", problem) for problem in report.wrong_attributes]
        rows += [("untrusted record", problem) for problem in report.untrusted_records]
        rows += [("interrupted", problem) for problem in report.interrupted]
        if rows:
            table(("FINDING", "KEY"), rows)
        else:
            click.echo("inventory and token agree")
    if not report.consistent:
        raise SystemExit(1)


@keys_group.command("reconcile")
@click.option("--yes", is_flag=True, help="take the remedies (without it: list what was found and what would be done)")
@json_option
def reconcile(yes: bool, as_json: bool) -> None:
    """After a crash, a restored database or a tampered one: find what is left (an audit chain behind its HSM
    anchor, interrupted generate/destroy, unsigned or forged key records) and, with --yes, take each remedy in
    one audited reconciliation record (docs/threat-model.md)."""
    found = key_service().keys.reconcile(request("reconcile"), apply=yes)
    if as_json:
        emit_json({"applied": yes and bool(found), "findings": found})
        return
    if not found:
        click.echo("nothing to reconcile")
        return
    table(("FINDING", "SUBJECT", "DETAIL", "ACTION"), [(f.kind, f.subject, f.detail, f.action) for f in found])
    click.echo("reconciled: one audit record names every finding" if yes
               else "dry run: add --yes to take these actions")
