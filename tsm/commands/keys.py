"""`tsm keys ...`: the key inventory at the console (docs/cli.md).

Views only: each command parses, names the caller (the console officer), calls one key-service function and
prints. Errors surface as one line through the root group (tsm/cli.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from globalplatform.kcv import KcvMethod
from globalplatform.keys import KeyAlgorithm
from keyservice.approvals import Approval, ApprovalSet
from keyservice.errors import InvalidInput
from keyservice.inventory import INTERNAL_USAGES, KeyState, KeyUsage
from keyservice.people import Credentials
from keyservice.policy import Purpose, Request
from keyservice.vendor import KeyBlockHeader, Received
from keyservice.views import KeyView, NewKey
from tsm.auth import person_options
from tsm.identity import console_officer
from tsm.output import emit_json, json_option, table
from tsm.params import HexByte, HexData
from tsm.service import key_service

ALGORITHMS = click.Choice([a.value for a in KeyAlgorithm if a.symmetric and a is not KeyAlgorithm.HMAC])
GENERATED = click.Choice([a.value for a in KeyAlgorithm if a is not KeyAlgorithm.HMAC])
DEFAULT_LENGTH = {KeyAlgorithm.RSA: 2048}
USAGES = click.Choice([u.value for u in KeyUsage if u not in INTERNAL_USAGES])
IRREVERSIBLE_STATES = frozenset({KeyState.COMPROMISED})

label_option = click.option("--label", metavar="LABEL", required=True, help="Label of the new key.")
type_option = click.option("--type", "algorithm", type=ALGORITHMS, required=True, help="Key algorithm.")
kvn_option = click.option("--kvn", type=HexByte(), help="Key version number, hex (e.g. 30).")
key_id_option = click.option("--key-id", type=HexByte(), help="Key identifier, hex (e.g. 01).")
kek_option = click.option("--kek", metavar="LABEL", required=True,
                          help="Label of the KEK protecting the key (the TR-31 KBPK too).")
expected_kcv_option = click.option("--kcv", "expected_kcv", metavar="HEX", required=True,
                                   help="The KCV the sender gave, hex (GP method); the import fails on a mismatch.")
yes_option = click.option("--yes", is_flag=True, help="Confirm an irreversible change.")


def request(target: str, purpose: Purpose = Purpose.KEY_MANAGEMENT) -> Request:
    """A request of the console officer."""
    return Request(console_officer(), purpose, target)


def require_yes(yes: bool, what: str) -> None:
    """Refuse an irreversible change that was not confirmed with --yes (a usage error)."""
    if not yes:
        raise click.UsageError(f"{what} cannot be undone: add --yes", click.get_current_context(silent=True))


KEY_HEADERS = ("LABEL", "TYPE", "LENGTH", "USAGE", "STATE", "KCV", "KCV-METHOD", "OWNER", "KVN", "KEY-ID", "EXPORTABLE",
               "PROVENANCE", "RECORD")


def _byte(value: int | None) -> str:
    return "" if value is None else f"{value:02X}"


def _fields(view: KeyView) -> dict[str, object]:
    """A key's fields as the text output shows them (hex bytes, yes/no)."""
    return {"label": view.label, "type": view.algorithm, "length": view.length, "usage": view.usage,
            "state": view.state, "kcv": view.kcv, "kcv-method": view.kcv_method, "owner": view.owner,
            "kvn": _byte(view.kvn), "key-id": _byte(view.key_id), "exportable": "yes" if view.exportable else "no",
            "provenance": view.provenance, "record": "signed" if view.signed else "UNTRUSTED"}


def print_keys(views: list[KeyView], as_json: bool = False) -> None:
    """A table of keys (or JSON: a list of key objects)."""
    if as_json:
        emit_json(views)
    else:
        table(KEY_HEADERS, [list(_fields(v).values()) for v in views])


@click.group("keys")
def keys_group() -> None:
    """Key inventory: master keys on the HSM, their states and KCVs."""


@keys_group.command("generate")
@label_option
@click.option("--type", "algorithm", type=GENERATED, required=True, help="Key algorithm (rsa: a key pair).")
@click.option("--length", type=int, help="Key length: bytes for des3/aes (16, 24, 32; default 16), modulus bits "
              "for rsa (1024, 2048, 3072, 4096; default 2048).")
@click.option("--usage", type=USAGES, required=True, help="Usage class in the key hierarchy.")
@click.option("--owner", metavar="OWNER", default="issuer", show_default=True, help="Owner of the key.")
@kvn_option
@key_id_option
@click.option("--exportable", is_flag=True, help="May leave the HSM wrapped under a KEK (for SE vendors).")
@json_option
def generate(label: str, algorithm: str, length: int | None, usage: str, owner: str, kvn: int | None,
             key_id: int | None, exportable: bool, as_json: bool) -> None:
    """Generate a key inside the HSM (sensitive; never extractable unless --exportable; pre-activation); an rsa
    key is a key pair whose private key never leaves the HSM."""
    alg = KeyAlgorithm(algorithm)
    size = DEFAULT_LENGTH.get(alg, 16) if length is None else length
    spec = NewKey(label, alg, size, KeyUsage(usage), owner, kvn, key_id, exportable=exportable)
    print_keys([key_service().keys.generate(request(label), spec)], as_json)


@keys_group.command("import-test")
@label_option
@type_option
@click.option("--hex", "value", type=HexData(), required=True, help="The published test key, e.g. 404142...4F.")
@click.option("--usage", type=USAGES, default=KeyUsage.ISD_KEYSET.value, show_default=True,
              help="Usage class in the key hierarchy.")
@click.option("--owner", metavar="OWNER", default="lab", show_default=True, help="Owner of the key.")
@kvn_option
@key_id_option
@click.option("--exportable", is_flag=True, help="May leave the HSM wrapped under a KEK.")
@json_option
def import_test(label: str, algorithm: str, value: bytes, usage: str, owner: str, kvn: int | None,
                key_id: int | None, exportable: bool, as_json: bool) -> None:
    """Import a clear test key (only on a token created with `tsm init --test-token`)."""
    spec = NewKey(label, KeyAlgorithm(algorithm), len(value), KeyUsage(usage), owner, kvn, key_id,
                  exportable=exportable)
    print_keys([key_service().keys.import_test(request(label), spec, value)], as_json)


def _received(label: str, owner: str, usage: str | None, kvn: int | None, key_id: int | None) -> Received:
    return Received(label, owner, KeyUsage(usage) if usage else None, kvn, key_id)


@keys_group.command("import-tr31")
@label_option
@kek_option
@click.option("--block", metavar="BLOCK", required=True, help="The TR-31 / X9.143 key block (versions B and D).")
@expected_kcv_option
@click.option("--usage", type=USAGES, help="Usage class, when the block's key usage does not map to one.")
@click.option("--owner", metavar="OWNER", default="vendor", show_default=True, help="Owner of the key.")
@kvn_option
@key_id_option
@json_option
def import_tr31(label: str, kek: str, block: str, expected_kcv: str, usage: str | None, owner: str,
                kvn: int | None, key_id: int | None, as_json: bool) -> None:
    """Receive a key from an SE vendor as a TR-31 key block (MAC and KCV checked)."""
    view = key_service().vendor.import_key_block(request(label, Purpose.VENDOR_IMPORT), kek, block,
                                                 _received(label, owner, usage, kvn, key_id), expected_kcv)
    print_keys([view], as_json)


@keys_group.command("import-wrapped")
@label_option
@kek_option
@click.option("--wrapped", type=HexData(), required=True, help="The wrapped key, hex (RFC 3394, or RFC 5649 with "
                                                               "--padded).")
@click.option("--padded", is_flag=True, help="RFC 5649 (AES key wrap with padding).")
@type_option
@click.option("--usage", type=USAGES, required=True, help="Usage class in the key hierarchy.")
@expected_kcv_option
@click.option("--owner", metavar="OWNER", default="vendor", show_default=True, help="Owner of the key.")
@kvn_option
@key_id_option
@json_option
def import_wrapped(label: str, kek: str, wrapped: bytes, padded: bool, algorithm: str, usage: str,
                   expected_kcv: str, owner: str, kvn: int | None, key_id: int | None, as_json: bool) -> None:
    """Receive a key from an SE vendor wrapped under a KEK (AES key wrap; KCV checked)."""
    view = key_service().vendor.import_wrapped(request(label, Purpose.VENDOR_IMPORT), kek, wrapped, padded,
                                               KeyAlgorithm(algorithm), _received(label, owner, usage, kvn, key_id),
                                               expected_kcv)
    print_keys([view], as_json)


@keys_group.command("export-wrapped")
@click.argument("label", metavar="LABEL")
@kek_option
@click.option("--padded", is_flag=True, help="RFC 5649 (AES key wrap with padding).")
def export_wrapped(label: str, kek: str, padded: bool) -> None:
    """Send the exportable key LABEL to an SE vendor, wrapped under a KEK (RFC 3394 / RFC 5649); prints hex."""
    blob = key_service().vendor.export_wrapped(request(label, Purpose.VENDOR_EXPORT), label, kek, padded)
    click.echo(blob.hex().upper())


@keys_group.command("export-tr31")
@click.argument("label", metavar="LABEL")
@click.option("--kek", metavar="LABEL", required=True,
              help="Label of the KEK protecting the block, the KBPK (3DES: version B, AES: D).")
@click.option("--header-usage", required=True, help="TR-31 key usage, e.g. K0, E6.")
@click.option("--header-mode", default="N", show_default=True, help="TR-31 mode of use.")
@click.option("--header-key-version", default="00", show_default=True, help="TR-31 key version number.")
@click.option("--header-exportability", default="N", show_default=True, help="TR-31 exportability.")
def export_tr31(label: str, kek: str, header_usage: str, header_mode: str, header_key_version: str,
                header_exportability: str) -> None:
    """Send the exportable key LABEL to an SE vendor as a TR-31 key block; prints the block."""
    header = KeyBlockHeader(header_usage, header_mode, header_key_version, header_exportability)
    click.echo(key_service().vendor.export_key_block(request(label, Purpose.VENDOR_EXPORT), label, kek, header))


@keys_group.command("list")
@click.option("--usage", type=click.Choice([u.value for u in KeyUsage]), help="Only keys of this usage class.")
@click.option("--owner", metavar="OWNER", help="Only keys of this owner.")
@click.option("--all", "include_destroyed", is_flag=True, help="Include destroyed keys.")
@json_option
def list_keys(usage: str | None, owner: str | None, include_destroyed: bool, as_json: bool) -> None:
    """List the inventory records."""
    print_keys(key_service().keys.list_keys(KeyUsage(usage) if usage else None, owner, include_destroyed), as_json)


@keys_group.command("show")
@click.argument("label", metavar="LABEL")
@json_option
def show(label: str, as_json: bool) -> None:
    """Show the record of the key LABEL, one field a line."""
    view = key_service().keys.show(label)
    if as_json:
        emit_json(view)
        return
    fields = {**_fields(view), "created-by": view.created_by, "created-at": view.created_at.isoformat(),
              "state-changed-at": view.state_changed_at.isoformat(), "cka-id": view.cka_id, "note": view.note}
    for name, value in fields.items():
        click.echo(f"{name:17} {value if value != '' else '-'}")


@keys_group.command("state")
@click.argument("label", metavar="LABEL")
@click.argument("state", metavar="STATE", type=click.Choice([s.value for s in KeyState if s is not KeyState.DESTROYED]))
@yes_option
@json_option
def change_state(label: str, state: str, yes: bool, as_json: bool) -> None:
    """Move the key LABEL to another SP 800-57 state (activate, suspend, deactivate; compromised needs --yes)."""
    new_state = KeyState(state)
    if new_state in IRREVERSIBLE_STATES:
        require_yes(yes, f"marking a key {new_state}")
    print_keys([key_service().keys.change_state(request(label), label, new_state)], as_json)


@keys_group.command("destroy")
@click.argument("label", metavar="LABEL")
@yes_option
@json_option
def destroy(label: str, yes: bool, as_json: bool) -> None:
    """Destroy the key LABEL on the token (the record stays, state destroyed; needs --yes)."""
    require_yes(yes, "destroying a key")
    print_keys([key_service().keys.destroy(request(label), label)], as_json)


@keys_group.command("kcv")
@click.argument("label", metavar="LABEL")
@click.option("--method", type=click.Choice([m.value for m in KcvMethod]), help="KCV method (default: the key's).")
@click.option("--kcv-length", type=click.Choice(["2", "3", "5"]), default="3", show_default=True,
              help="KCV length in bytes.")
def kcv(label: str, method: str | None, kcv_length: str) -> None:
    """Compute the key check value of the key LABEL inside the HSM; prints hex."""
    click.echo(key_service().keys.kcv(request(label), label, KcvMethod(method) if method else None, int(kcv_length)))


@keys_group.command("check")
@json_option
def check_keys(as_json: bool) -> None:
    """Report any key missing on the token or in the inventory, or whose token object drifted (exit 1 if any)."""
    report = key_service().keys.check()
    if as_json:
        emit_json({**vars(report), "consistent": report.consistent})
    else:
        rows = [("missing-on-token", label) for label in report.missing_on_token]
        rows += [("missing-in-inventory", label) for label in report.missing_in_inventory]
        rows += [("attribute-drift", problem) for problem in report.wrong_attributes]
        rows += [("untrusted-record", problem) for problem in report.untrusted_records]
        rows += [("interrupted", problem) for problem in report.interrupted]
        if rows:
            table(("FINDING", "KEY"), rows)
        else:
            click.echo("inventory and token agree")
    if not report.consistent:
        raise SystemExit(1)


def _approvals(paths: tuple[Path, ...]) -> ApprovalSet | None:
    """The approval set of `--approval FILE...` (each file: one approval string), for the console officer."""
    if not paths:
        return None
    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the approval file ({type(exc).__name__})") from None
    return ApprovalSet(console_officer().name, tuple(Approval.decode(text) for text in texts))


@keys_group.command("reconcile")
@click.option("--yes", is_flag=True, help="take the remedies (without it: list what was found and what would be done)")
@click.option("--approval", "approval_files", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="An approval of this reconciliation (tsm keys approve-reconcile); repeat for each approver.")
@json_option
def reconcile(yes: bool, approval_files: tuple[Path, ...], as_json: bool) -> None:
    """After a crash, a restored database or a tampered one: find what is left (an audit chain behind its HSM
    anchor, interrupted generate/destroy, unsigned or forged key records) and, with --yes, take each remedy in
    one audited reconciliation record (docs/threat-model.md); on a production token with the approvals of a
    quorum of officers (docs/people.md)."""
    req = Request(console_officer(), Purpose.KEY_MANAGEMENT, "reconcile", _approvals(approval_files))
    found = key_service().keys.reconcile(req, apply=yes)
    if as_json:
        emit_json({"applied": yes and bool(found), "findings": found})
        return
    if not found:
        click.echo("nothing to reconcile")
        return
    table(("FINDING", "SUBJECT", "DETAIL", "ACTION"), [(f.kind, f.subject, f.detail, f.action) for f in found])
    click.echo("reconciled: one audit record names every finding" if yes
               else "dry run: add --yes to take these actions")


@keys_group.command("approve-reconcile")
@person_options
@click.option("--requester", required=True, metavar="NAME",
              help="The officer who runs 'tsm keys reconcile --yes' (their TSM_OPERATOR).")
def approve_reconcile(person: tuple[str, Credentials], requester: str) -> None:
    """An officer approves the reconciliation as `tsm keys reconcile` lists it now (also while the audit chain is
    sealed: docs/people.md); prints the approval, one line, for `tsm keys reconcile --yes --approval FILE`."""
    name, creds = person
    service = key_service()
    spec = service.keys.reconciliation()
    approval = service.approvals.approve(spec.digest, name, creds, requester=requester)
    click.echo(f"{name} approved {spec.summary()} for {requester} until "
               f"{datetime.fromtimestamp(approval.expires_at, UTC).isoformat(timespec='seconds')}", err=True)
    click.echo(approval.encode())
