"""`tsm gp ...`: thin commands over the GP vocabulary, `tsm_core.gp`, the flows and the transports
(docs/cli.md).

Typed errors (`GpError`, `TsmCoreError`, `KeyServiceError`, `CardSimError`, each with a `code`) propagate to
the root group, which prints one line.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Final

import click

from globalplatform import sw, tlv
from globalplatform.apdu import SW_LEN
from keyservice.channels import ChannelSpec, DivMethod
from keyservice.policy import Purpose, Request
from tsm.cards import card_options, card_transport, require_card, target_of
from tsm.commands.pcsc import reader_choice, reader_option
from tsm.identity import console_officer
from tsm.output import emit_json, json_option, table
from tsm.params import HexByte, HexData
from tsm.service import key_service
from tsm_core.flows.channel import ChannelSessionLike, IsdInfo
from tsm_core.flows.list_content import CardContent, list_content
from tsm_core.gp import getstatus
from tsm_core.gp.getstatus import Privilege, StatusEntry
from tsm_core.transport.pcsc import PcscTransport

SUBSETS = {
    "isd": getstatus.StatusSubset.ISD,
    "apps": getstatus.StatusSubset.APPLICATIONS,
    "files": getstatus.StatusSubset.LOAD_FILES,
    "modules": getstatus.StatusSubset.LOAD_FILES_AND_MODULES,
}


@click.group("gp")
def gp_group() -> None:
    """GlobalPlatform helpers (GPCS 2.3.1): send APDUs, explain status words, decode TLV and GET STATUS."""


@gp_group.command("send")
@reader_option
@click.argument("apdus", nargs=-1, required=True, type=HexData())
def send_command(reader: str, apdus: tuple[bytes, ...]) -> None:
    """Send raw C-APDUs (hex) to the card in the reader, in order, and print each R-APDU."""
    with PcscTransport(reader_choice(reader)) as transport:
        click.echo(f"ATR {transport.atr.hex().upper()}")
        for apdu in apdus:
            response = transport.transmit(apdu)
            status = int.from_bytes(response[-2:], "big")
            click.echo(f">> {apdu.hex().upper()}")
            click.echo(f"<< {response.hex().upper()}  ({sw.lookup(status).meaning})")


@gp_group.command("sw")
@click.argument("status", type=HexData())
def sw_command(status: bytes) -> None:
    """Explain a two-byte status word, e.g. 6A88."""
    if len(status) != SW_LEN:
        raise click.BadParameter("a status word is two bytes", param_hint="STATUS")
    info = sw.lookup(int.from_bytes(status, "big"))
    error = info.error.code if info.error else "-"
    click.echo(f"{info.sw:04X}  {info.category.value}  {info.meaning}  (error code: {error})")


def _print_tlv(data: bytes) -> None:
    for depth, item in tlv.walk(data):
        tag = tlv.tag_bytes(item.tag).hex().upper()
        value = "" if tlv.is_constructed(item.tag) else f" {item.value.hex().upper()}"
        click.echo(f"{'  ' * depth}{tag}{value}")


@gp_group.command("tlv")
@click.argument("data", type=HexData())
def tlv_command(data: bytes) -> None:
    """Decode BER-TLV data into an indented tree."""
    _print_tlv(data)


@gp_group.command("parse-status")
@click.option("--subset", type=click.Choice(list(SUBSETS)), default="apps", show_default=True,
              help="Which GET STATUS subset the response answers (P1).")
@click.option("--legacy", is_flag=True, help="Legacy format (P2 '00') instead of TLV (P2 '02').")
@click.argument("response", type=HexData())
@json_option
def parse_status_command(subset: str, legacy: bool, response: bytes, as_json: bool) -> None:
    """Decode a GET STATUS response (data field, without SW) into Registry entries."""
    parse = getstatus.parse_legacy if legacy else getstatus.parse_tlv
    entries = parse(SUBSETS[subset], response)
    if as_json:
        emit_json([_entry_json(entry) for entry in entries])
        return
    table(("AID", "STATE", "PRIVILEGES", "MODULES"),
          [(_hex(e.aid), e.state.name, ",".join(p.name or "" for p in e.privileges),
            ",".join(_hex(m) for m in e.modules)) for e in entries])


DIVERSIFICATIONS: Final = ("emv", "visa2", "visa", "kdf3", "none")
PRIVILEGE_NAMES: Final[dict[Privilege, str]] = {
    Privilege.SECURITY_DOMAIN: "SecurityDomain",
    Privilege.DAP_VERIFICATION: "DAPVerification",
    Privilege.DELEGATED_MANAGEMENT: "DelegatedManagement",
    Privilege.CARD_LOCK: "CardLock",
    Privilege.CARD_TERMINATE: "CardTerminate",
    Privilege.CARD_RESET: "CardReset",
    Privilege.CVM_MANAGEMENT: "CVMManagement",
    Privilege.MANDATED_DAP_VERIFICATION: "MandatedDAPVerification",
    Privilege.TRUSTED_PATH: "TrustedPath",
    Privilege.AUTHORIZED_MANAGEMENT: "AuthorizedManagement",
    Privilege.TOKEN_VERIFICATION: "TokenVerification",
    Privilege.GLOBAL_DELETE: "GlobalDelete",
    Privilege.GLOBAL_LOCK: "GlobalLock",
    Privilege.GLOBAL_REGISTRY: "GlobalRegistry",
    Privilege.FINAL_APPLICATION: "FinalApplication",
    Privilege.GLOBAL_SERVICE: "GlobalService",
    Privilege.RECEIPT_GENERATION: "ReceiptGeneration",
    Privilege.CIPHERED_LOAD_FILE_DATA_BLOCK: "CipheredLoadFileDataBlock",
    Privilege.CONTACTLESS_ACTIVATION: "ContactlessActivation",
    Privilege.CONTACTLESS_SELF_ACTIVATION: "ContactlessSelfActivation",
}
"""GlobalPlatformPro's spelling of each privilege (its `GPStatusEntry.Privilege` names)."""
INDENT: Final = "     "


def _hex(aid: bytes | None) -> str:
    return aid.hex().upper() if aid else ""


def _entry_json(entry: StatusEntry) -> dict[str, object]:
    """One Registry entry for `--json` (hex AIDs, state and privilege names)."""
    return {"aid": _hex(entry.aid), "state": _state(entry), "life_cycle": entry.life_cycle,
            "privileges": [name for privilege, name in PRIVILEGE_NAMES.items() if privilege in entry.privileges],
            "parent": _hex(entry.associated_sd_aid) or None, "load_file": _hex(entry.elf_aid) or None,
            "version": ".".join(str(part) for part in entry.elf_version) if entry.elf_version else None,
            "modules": [_hex(module) for module in entry.modules]}


def _state(entry: StatusEntry) -> str:
    state = entry.state
    if state is getstatus.ApplicationLifeCycle.SELECTABLE and entry.application_specific_state:
        return f"{state.name}, application-specific {entry.life_cycle:02X}"
    return state.name


def _print_entry(kind: str, entry: StatusEntry) -> None:
    click.echo(f"{kind}: {_hex(entry.aid)} ({_state(entry)})")
    if entry.associated_sd_aid:
        click.echo(f"{INDENT}Parent:  {_hex(entry.associated_sd_aid)}")
    if kind == "PKG":
        if entry.elf_version:
            click.echo(f"{INDENT}Version: {'.'.join(str(part) for part in entry.elf_version)}")
        for module in entry.modules:
            click.echo(f"{INDENT}Applet:  {_hex(module)}")
    else:
        if entry.elf_aid:
            click.echo(f"{INDENT}From:    {_hex(entry.elf_aid)}")
        names = [name for privilege, name in PRIVILEGE_NAMES.items() if privilege in entry.privileges]
        if names:
            click.echo(f"{INDENT}Privs:   {', '.join(names)}")
    click.echo()


def _print_registry(found: CardContent) -> None:
    """The Registry the way GlobalPlatformPro's `gp -l` prints it: ISD, then APP (SDs too), then PKG."""
    for entry in found.isd:
        _print_entry("ISD", entry)
    for entry in found.applications:
        _print_entry("APP", entry)
    for entry in found.load_files:
        _print_entry("PKG", entry)


@gp_group.command("list")
@card_options
@click.option("--key", "keys", metavar="LABEL", multiple=True, required=True,
              help="Key label: once (ENC = MAC = DEK, or the KMC with --div) or three times (ENC MAC DEK).")
@click.option("--div", "div", type=click.Choice(DIVERSIFICATIONS), default="none", show_default=True,
              help="Diversify the card keys from the KMC given with --key.")
@click.option("--kvn", type=HexByte(), default="00", show_default=True,
              help="Key version number for INITIALIZE UPDATE, hex, 0x accepted (00: the card's default key set).")
@click.option("--level", type=HexByte(), default="01", show_default=True,
              help="Security level, hex, 0x accepted: 00 none, 01 C-MAC, 03 +C-DEC, 13 +R-MAC, 33 +R-ENC (SCP03); "
                   "checked against the SCP and \"i\" the card names before anything is sent to authenticate.")
@json_option
def list_command(reader: str | None, card_path: Path | None, relay: str | None,
                 relay_listen: tuple[str, int] | None, keys: tuple[str, ...], div: str, kvn: int, level: int,
                 as_json: bool) -> None:
    """Authenticate to the ISD through the key service and list the card's Registry (like `gp -l`).

    The ISD's AID, SCP and "i" are read from the card (SELECT, GET DATA 66), never assumed. Not over --relay (a
    relay session is bound to a registered SE: `tsm se show SE --relay SESSION` lists it side by side).
    """
    require_card(reader, card_path, relay, se_known=False)
    spec = ChannelSpec(keys, None if div == "none" else DivMethod(div), level, kvn)
    request = Request(console_officer(), Purpose.SE_MANAGEMENT, target_of(reader, card_path))
    channels = key_service().channels

    def open_channel(isd: IsdInfo) -> ChannelSessionLike:
        return channels.open(request, replace(spec, aid=isd.aid, i=isd.i))

    with card_transport(reader, card_path) as transport:
        found = list_content(transport, level, open_channel)
    if as_json:
        emit_json({kind: [_entry_json(entry) for entry in entries] for kind, entries in
                   (("isd", found.isd), ("applications", found.applications), ("load_files", found.load_files))})
    else:
        _print_registry(found)


@gp_group.command("diagnose")
@click.option("--init-update-response", "response", type=HexData(), required=True,
              help="The card's INITIALIZE UPDATE response, hex, without the status word "
                   "(`tsm cardsim initialize-update` gives it for a simulated card).")
@click.option("--host-challenge", type=HexData(), required=True, help="The 8-byte host challenge that was sent, hex.")
@click.option("--key", "labels", metavar="LABEL", multiple=True, required=True,
              help="Label of a key to try (repeatable).")
@json_option
def diagnose_command(response: bytes, host_challenge: bytes, labels: tuple[str, ...], as_json: bool) -> None:
    """Which key and diversification give the card cryptogram (exit 1 if none). Never sends or builds EXTERNAL
    AUTHENTICATE."""
    if response[-2:] == b"\x90\x00" and len(response) in (30, 31, 34, 47, 50):
        response = response[:-2]  # a pasted response with its status word
    trials = key_service().channels.diagnose(Request(console_officer(), Purpose.DIAGNOSTIC, "diagnose"),
                                             list(labels), response, host_challenge)
    matches = [t for t in trials if t.matched]
    if as_json:
        emit_json({"trials": trials, "match": {"key": matches[0].key, "diversification": matches[0].diversification}
                   if matches else None})
    else:
        table(("MATCH", "KEY", "DIVERSIFICATION", "RESULT"),
              [("yes" if t.matched else "no", t.key, t.diversification, t.result) for t in trials])
        if matches:
            click.echo(f"use: --key {matches[0].key} --div {matches[0].diversification}")
        else:
            click.echo("no key and diversification reproduces the card cryptogram")
    if not matches:
        raise SystemExit(1)
